"""Loads planned in a worker process, their rows already in COPY's text form.

Runs in a worker (``ingest/workers.py``), synchronously, as SQLite's scratch loads do: ``stage``
plans a table batch against the table's layout as the event loop last saw it, exactly as a load
there would, and writes each step's rows as one block of COPY text a table (the parent's rows,
each subtable's). ``PostgresDestination.load`` then only sends the blocks: the event loop spends
no Python per row. A plan is valid for the layout it was made against only; the destination
refuses a stale one (``StalePlan``) and the caller plans it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...clock import now_text
from ...models import TableBatch
from ...plan.model import Layout, LoadPlan, RowsStep, cells, child_rows
from ...plan.names import Limits
from ...plan.plans import plan_load

# COPY's text form: a backslash escapes, a tab separates, a newline ends a row (PostgreSQL's
# "COPY ... FROM STDIN" text format); \N is NULL.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


@dataclass(frozen=True, slots=True)
class CopyRows:
    """A step's rows as COPY text: the parent's (its columns, then the ordinal) and by subtable
    name each subtable's (the ordinal of its data point, then its columns)."""

    count: int
    parent: bytes
    children: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedLoad:
    """A table batch planned in a worker, its rows as COPY text (a ``destination.Staged``)."""

    table_name: str
    bookmark_names: tuple[str, ...] | None
    plan: LoadPlan  # its ``steps`` are these CopyRows and ActivateVersion
    planned_for: Layout  # the layout the plan was made against

    def discard(self) -> None:
        """Nothing to free: the rows are in memory."""


def stage(batch: TableBatch, layout: Layout, received_at: str, *, limits: Limits) -> Any:
    """``batch`` planned against ``layout``, each step's rows as COPY text; the batch itself if
    its table cannot be stored (the destination rejects its records)."""
    if limits.table_problem(batch.table_name) is not None:
        return batch
    plan = plan_load(batch, layout, received_at, now_text(), limits=limits)
    steps: list[Any] = [copy_rows(plan, s) if isinstance(s, RowsStep) else s for s in plan.steps]
    plan.steps = steps
    return StagedLoad(batch.table_name, batch.bookmark_names, plan, layout)


def copy_rows(plan: LoadPlan, step: RowsStep) -> CopyRows:
    table = plan.table
    assert table is not None
    columns = list(table.columns)
    parent = [(*row, ordinal) for ordinal, row in enumerate(cells(step.points, columns))]
    children = {
        sub.name: copy_text(child_rows(step.points, sub.name, list(sub.columns), 0))
        for sub in plan.subtables
    }
    return CopyRows(len(step.points), copy_text(parent), children)


def copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """Rows in COPY's text form."""
    return "".join(["\t".join(map(_field, row)) + "\n" for row in rows]).encode()


def _field(value: Any) -> str:
    kind = type(value)
    if kind is str:
        text: str = value
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            return text.translate(_ESCAPES)
        return text
    if value is None:
        return _NULL
    if kind is bool:
        return "t" if value else "f"
    if kind is float:
        return repr(value)
    return str(value)
