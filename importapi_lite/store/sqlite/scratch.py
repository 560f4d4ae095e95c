"""Scratch loads: a table batch planned, and its rows written to a scratch file, off the event loop.

Runs in a worker process (``ingest/workers.py``), synchronously: ``stage`` plans a batch against
the table's committed layout, exactly as a load on the event loop would, and writes every row the
plan makes to a file of its own. ``SqliteDestination.load`` then moves the rows in with one
``INSERT … SELECT`` per step (``sql.scratch_upsert_sql``): SQLite reads them from the attached
file, so the event loop spends no Python per row and the GIL is free while they load. The
sequence and table-version rules are the same statements' (SPEC §10.1, §10.5). A plan is only
valid for the layout it was made against; the destination refuses a stale one (``StalePlan``)
and the caller plans it again.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...clock import now_text
from ...models import ActivateVersion, TableBatch
from ...plan.model import Layout, LoadPlan, RowsStep, ScratchRows, cells, child_rows, point_rows
from ...plan.plans import plan_load
from . import sql
from .paths import table_problem


@dataclass(frozen=True)
class ScratchLoad:
    """A table batch, planned, its rows in a scratch file: what the destination loads instead
    of the batch (a ``destination.Staged``)."""

    table_name: str
    bookmark_names: tuple[str, ...] | None
    plan: LoadPlan  # its steps are ScratchRows and ActivateVersion, its rows are in ``path``
    planned_for: Layout  # the layout the plan was made against
    path: Path
    # Each table's table in the file, and the columns written there, in order.
    tables: dict[str, tuple[str, tuple[str, ...]]]

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def stage(
    batch: TableBatch,
    layout: Layout,
    received_at: str,
    *,
    directory: Path,
    data_dir: Path,
    client_id: int,
    integration: str,
) -> ScratchLoad | TableBatch:
    """``batch`` planned against ``layout``, its rows in a new file under ``directory``; the
    batch itself if its table cannot be stored (the destination rejects its records)."""
    if table_problem(data_dir, client_id, integration, batch.table_name) is not None:
        return batch
    plan = plan_load(batch, layout, received_at, now_text())
    return write_scratch(batch, plan, layout, directory)


def write_scratch(
    batch: TableBatch, plan: LoadPlan, layout: Layout, directory: Path
) -> ScratchLoad:
    """A plan made for ``batch`` against ``layout``, its rows in a new scratch file."""
    path = directory / f"{uuid.uuid4().hex}.sqlite3"
    tables = _scratch_tables(plan)
    try:
        steps = _write(plan, path, tables)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    scratch_plan = dataclasses.replace(plan, steps=steps)
    return ScratchLoad(batch.table_name, batch.bookmark_names, scratch_plan, layout, path, tables)


def _scratch_tables(plan: LoadPlan) -> dict[str, tuple[str, tuple[str, ...]]]:
    if plan.table is None:
        return {}
    tables = {plan.table.name: (sql.SCRATCH_PARENT, tuple(plan.table.columns))}
    for index, subtable in enumerate(plan.subtables):
        tables[subtable.name] = (sql.scratch_child(index), tuple(subtable.columns))
    return tables


def _write(
    plan: LoadPlan, path: Path, tables: dict[str, tuple[str, tuple[str, ...]]]
) -> list[ScratchRows | ActivateVersion]:
    """The plan's rows into a new scratch file; the plan's steps with their rows replaced.

    Rows go in in request order, so each step's rows are a range of ``_sdc_row`` in each of the
    file's tables: its parent rows and data points are those of its ordinals, its subtable rows
    follow.
    """
    table = plan.table
    if table is None:  # nothing accepted into a table that does not exist: no rows to write
        return [s for s in plan.steps if isinstance(s, ActivateVersion)]
    columns = list(table.columns)
    subtables = [
        (name, tables[name][0], list(tables[name][1])) for name in tables if name != table.name
    ]
    identity = [*table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
    steps: list[ScratchRows | ActivateVersion] = []
    # A scratch file read once, moments later: no journal and no sync, a crash just loses it.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        for statement in sql.scratch_file_sql(columns, identity, [c for _, _, c in subtables]):
            db.execute(statement)
        insert_parent = sql.insert_sql(sql.SCRATCH_PARENT, columns)
        insert_point = sql.insert_sql(sql.SCRATCH_POINTS, [sql.ORDINAL, *identity])
        written = dict.fromkeys((name for name, _, _ in subtables), 0)
        ordinal = 0
        db.execute("BEGIN")
        for step in plan.steps:
            if not isinstance(step, RowsStep):
                steps.append(step)
                continue
            points = step.points
            db.executemany(insert_parent, cells(points, columns))
            ranges = {}
            if subtables:
                db.executemany(insert_point, point_rows(points, identity, ordinal))
                for name, scratch_table, child in subtables:
                    rows = child_rows(points, name, child, ordinal)
                    db.executemany(sql.insert_sql(scratch_table, [sql.ORDINAL, *child]), rows)
                    ranges[name] = (written[name], len(rows))
                    written[name] += len(rows)
            steps.append(ScratchRows(ordinal, len(points), ranges))
            ordinal += len(points)
        db.execute("COMMIT")
    finally:
        db.close()
    return steps
