"""Staged loads: a table batch planned, and its rows written to a staging file, off the event loop.

Runs in a worker process (``offload.py``), synchronously: ``stage_batch`` plans a batch against a
copy of the table's layout, exactly as ``Store.load`` would, and writes every row the plan makes
to a file of its own. ``Store.load`` then moves the rows in with one ``INSERT … SELECT`` per step
(``sql.staged_upsert_sql``): SQLite reads them from the attached file, so the event loop spends
no Python per row and the GIL is free while they load. The sequence and table-version rules are
the same statements' (SPEC §10.1, §10.5). A plan is only valid for the layout it was made
against; the store refuses a stale one (``StalePlan``) and the caller plans it again.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...models import ActivateVersion, TableBatch
from ...plan.plans import (
    Layout,
    LoadPlan,
    RowsStep,
    StagedRows,
    cells,
    now_text,
    plan_load,
    table_name_problem,
)
from . import sql


@dataclass(frozen=True)
class StagedLoad:
    """A table batch, planned and staged: what ``Store.load`` takes instead of the batch."""

    table_name: str
    bookmark_names: tuple[str, ...] | None
    plan: LoadPlan  # its steps are StagedRows and ActivateVersion, its rows are in ``path``
    planned_for: Layout  # the layout the plan was made against
    path: Path
    # Each table's staged table in the file, and the columns staged there, in order.
    staged: dict[str, tuple[str, tuple[str, ...]]]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class StalePlan(Exception):
    """The table's layout changed since the plan was made: plan the batch again."""

    def __init__(self, table_name: str) -> None:
        super().__init__(table_name)
        self.table_name = table_name


def stage_batch(
    batch: TableBatch, layout: Layout, directory: Path, received_at: str
) -> StagedLoad | None:
    """Plan ``batch`` against ``layout`` and stage its rows in a new file under ``directory``.

    None for a table whose name cannot be loaded: the store logs its records as rejected.
    """
    if table_name_problem(batch.table_name) is not None:
        return None
    return stage_plan(batch, plan_load(batch, layout, received_at, now_text()), layout, directory)


def stage_plan(batch: TableBatch, plan: LoadPlan, layout: Layout, directory: Path) -> StagedLoad:
    """A plan made for ``batch`` against ``layout``, its rows staged in a new file."""
    path = directory / f"{uuid.uuid4().hex}.sqlite3"
    staged = _staged_tables(plan)
    try:
        steps = _write(plan, path, staged)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    staged_plan = dataclasses.replace(plan, steps=steps)
    return StagedLoad(batch.table_name, batch.bookmark_names, staged_plan, layout, path, staged)


def _staged_tables(plan: LoadPlan) -> dict[str, tuple[str, tuple[str, ...]]]:
    if plan.table is None:
        return {}
    staged = {plan.table.name: (sql.STAGED_PARENT, tuple(plan.table.columns))}
    for index, subtable in enumerate(plan.subtables):
        staged[subtable.name] = (sql.staged_child(index), tuple(subtable.columns))
    return staged


def _write(
    plan: LoadPlan, path: Path, staged: dict[str, tuple[str, tuple[str, ...]]]
) -> list[StagedRows | ActivateVersion]:
    """The plan's rows into a new staging file; the plan's steps with their rows replaced.

    Rows go in in request order, so each step's rows are a range of ``_sdc_row`` in each staged
    table: its parent rows and data points are those of its ordinals, its subtable rows follow.
    """
    table = plan.table
    if table is None:  # nothing accepted into a table that does not exist: no rows to stage
        return [s for s in plan.steps if isinstance(s, ActivateVersion)]
    columns = list(table.columns)
    subtables = [
        (name, staged[name][0], list(staged[name][1])) for name in staged if name != table.name
    ]
    identity = [*table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
    steps: list[StagedRows | ActivateVersion] = []
    # A scratch file read once, moments later: no journal and no sync, a crash just loses it.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        for statement in sql.staging_file_sql(columns, identity, [c for _, _, c in subtables]):
            db.execute(statement)
        insert_parent = sql.insert_sql(sql.STAGED_PARENT, columns)
        insert_point = sql.insert_sql(sql.STAGED_POINTS, [sql.ORDINAL, *identity])
        child_rows = dict.fromkeys((name for name, _, _ in subtables), 0)
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
                db.executemany(
                    insert_point,
                    [(ordinal + i, *c) for i, c in enumerate(cells(points, identity))],
                )
                for name, staged_table, child in subtables:
                    rows = [
                        (ordinal + i, *map(row.get, child))
                        for i, point in enumerate(points)
                        for row in point.children.get(name, ())
                    ]
                    insert = sql.insert_sql(staged_table, [sql.ORDINAL, *child])
                    db.executemany(insert, rows)
                    ranges[name] = (child_rows[name], len(rows))
                    child_rows[name] += len(rows)
            steps.append(StagedRows(ordinal, len(points), ranges))
            ordinal += len(points)
        db.execute("COMMIT")
    finally:
        db.close()
    return steps
