"""A table's transactions as plain ``sqlite3`` calls, run on the table's own connection thread.

Each trip to the thread costs a wake-up of the thread and one of the event loop; on a 2-core
virtual machine each wake-up costs tens of microseconds of the kernel's time. So a whole group
commit (``commit_group``) is one function, handed to the thread in one trip
(``ConnectionThread.run``): the loop's share of a one-record push does not grow with the
statements it takes.

Nothing here touches the event loop or its futures: outcomes are returned, and the store sets
them. ``TableState`` is read and written on the thread only, where the connection's calls run
one after another, so no lock guards it; the loop only reads its ``layout`` reference.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from ...clock import now_text
from ...models import ActivateVersion, TableBatch
from ...plan.model import (
    Layout,
    LoadPlan,
    Plans,
    RowsStep,
    ScratchRows,
    TableInfo,
    cells,
    child_rows,
    layout_from_rows,
    point_rows,
)
from ...plan.names import CHILD_SYSTEM, PARENT_SYSTEM
from ...plan.plans import plan_load, rebase
from ..destination import StalePlan
from . import sql
from .scratch import ScratchLoad


@dataclass(eq=False)
class TableState:
    """What a table's thread remembers of its file between transactions."""

    # The tables and columns as of the last commit, so loads need not read them back each
    # time. None: read them (first use, or after a failure).
    layout: Layout | None = None
    # Whether other server processes write the file too (``serve --processes``): then one may
    # have added tables or columns since, and ``schema_version`` says whether it did. A
    # process alone skips that check, a statement per transaction.
    shared: bool = False
    schema_version: int = -1  # the file's PRAGMA schema_version that ``layout`` belongs to


@dataclass(slots=True)  # not frozen: one a request, and frozen costs (see ``models.Upsert``)
class Load:
    """One request's data for a table, as a transaction takes it."""

    batch: TableBatch | ScratchLoad
    received_at: str


Outcome = tuple[LoadPlan, int] | Exception  # a load's plan and rows changed, or its failure


def commit_group(db: sqlite3.Connection, state: TableState, loads: list[Load]) -> list[Outcome]:
    """Group commit: the loads, in order, in one transaction; each one's outcome.

    A load that fails while loading takes the transaction down with it: it gets its failure,
    and the others run again without it, in a new transaction (rare, and dearer than
    savepoints only then). A failed BEGIN or COMMIT fails every load still in the group:
    nothing of theirs was committed.
    """
    outcomes: dict[int, Outcome] = {}
    pending = list(range(len(loads)))
    while pending:
        done = _try_group(db, state, [loads[i] for i in pending])
        if isinstance(done, tuple):
            position, exc = done
            outcomes[pending.pop(position)] = exc
            continue
        outcomes.update(zip(pending, done, strict=True))
        pending = []
    return [outcomes[i] for i in range(len(loads))]


def _try_group(
    db: sqlite3.Connection, state: TableState, loads: list[Load]
) -> list[Outcome] | tuple[int, Exception]:
    """The loads in one transaction: every outcome (committed, or all failed with BEGIN or
    COMMIT), or the position of the one load whose failure rolled the others back."""
    layout = state.layout
    results: list[Outcome] = []
    loading: int | None = None  # the load being loaded, to blame for a failure
    scratch = loads[0].batch if isinstance(loads[0].batch, ScratchLoad) else None  # then alone
    try:
        if scratch is not None:  # not inside a transaction: SQLite refuses there
            db.execute(f"ATTACH DATABASE ? AS {sql.SCRATCH}", (str(scratch.path),))
        db.execute("BEGIN IMMEDIATE")
        version = _schema_version(db) if state.shared else -1
        if layout is None or version != state.schema_version:
            layout = read_layout(db)  # as committed, by us or by another process
        batched_at = now_text()  # one transaction: one time its rows were loaded
        plans: Plans = {}  # the pushes' record plans, shared: each push is a batch of its own
        for load in loads:
            loading = len(results)
            plan, accepted = _load_batch(db, load, layout, batched_at, plans)
            if state.shared and (plan.new_tables or plan.new_columns):
                version = _schema_version(db)  # ours, committed next
            layout = plan.layout
            results.append((plan, accepted))
        loading = None
        db.execute("COMMIT")
    except Exception as exc:
        rollback(db)
        state.layout = None  # whatever failed, read it afresh next time
        if loading is not None and len(loads) > 1:
            return loading, exc
        return [exc] * len(loads)  # nothing was committed, and no one load is to blame
    except BaseException:
        rollback(db)
        state.layout = None
        raise
    finally:
        if scratch is not None:
            _detach(db)
    state.layout = layout
    state.schema_version = version
    return results


def _schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA schema_version").fetchone()[0])


def _load_batch(
    db: sqlite3.Connection, load: Load, layout: Layout, batched_at: str, plans: Plans
) -> tuple[LoadPlan, int]:
    batch = load.batch
    if isinstance(batch, ScratchLoad):
        rebased = rebase(batch.plan, batch.table_name, batch.planned_for, layout)
        if rebased is None:
            raise StalePlan(batch.table_name)
        plan = rebased
    else:
        shared = plans if batch.schema is None else None  # a plan holds its schema's types
        plan = plan_load(batch, layout, load.received_at, batched_at, plans=shared)
    _apply_ddl(db, plan)
    accepted = 0
    if plan.table is not None:
        scratch = batch if isinstance(batch, ScratchLoad) else None
        accepted = _run_steps(db, plan, plan.table, scratch)
        if batch.bookmark_names is not None:
            bookmarks = json.dumps(list(batch.bookmark_names))
            db.execute(sql.SET_BOOKMARKS, (bookmarks, batch.table_name))
    return plan, accepted


def append_rows(db: sqlite3.Connection, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    """``rows`` inserted with ``statement`` in a transaction of their own."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(statement, rows)
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise


def _detach(db: sqlite3.Connection) -> None:
    try:
        db.execute(f"DETACH DATABASE {sql.SCRATCH}")
    except sqlite3.Error:
        pass  # never attached (ATTACH failed); a connection that fails here is failing anyway


def rollback(db: sqlite3.Connection) -> None:
    # After a failed COMMIT (disk full, I/O error) SQLite may have rolled back already.
    try:
        db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def read_layout(db: sqlite3.Connection) -> Layout:
    meta = db.execute(sql.SELECT_META).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in db.execute(sql.SELECT_COLUMNS):
        columns.setdefault(table, []).append((column, type_))
    return layout_from_rows([(n, p, json.loads(k)) for n, p, k in meta], columns)


def _system_columns(info: TableInfo) -> list[str]:
    return list(PARENT_SYSTEM if info.parent is None else CHILD_SYSTEM)


def _apply_ddl(db: sqlite3.Connection, plan: LoadPlan) -> None:
    """Create the tables and add the columns the plan needs, recording their Stitch types."""
    for name in plan.new_tables:
        info = plan.layout[name]
        system = _system_columns(info)
        sql_types = {c: sql.SQL_TYPES[t] for c, t in info.columns.items()}
        db.execute(sql.create_table_sql(name, sql_types, info.key_columns, system))
        keys = json.dumps(list(info.key_names))
        db.execute(sql.INSERT_META, (name, info.parent, keys, now_text()))
        ordered = sql.ordered_columns(list(info.columns), info.key_columns, system)
        db.executemany(sql.INSERT_COLUMN, [(name, c, info.columns[c]) for c in ordered])
    for name, column in plan.new_columns:
        type_ = plan.layout[name].columns[column]
        db.execute(sql.add_column_sql(name, column, sql.SQL_TYPES[type_]))
        db.execute(sql.INSERT_COLUMN, (name, column, type_))


def _run_steps(
    db: sqlite3.Connection, plan: LoadPlan, table: TableInfo, scratch: ScratchLoad | None
) -> int:
    """Apply upserts and activations in request order; the number of rows the upserts changed.
    The rows of a ``scratch`` plan are in its attached file."""
    columns = list(table.columns)
    keys = table.key_columns if table.key_names else ()
    upsert = sql.upsert_sql(table.name, columns, keys)
    subtables = [(t.name, list(t.columns)) for t in plan.subtables]
    if subtables:
        for statement in sql.handoff_sql(table.name, table.key_columns, subtables):
            db.execute(statement)
    changed = 0
    ordinal = 0
    for step in plan.steps:
        if isinstance(step, ActivateVersion):
            tables = [*(name for name, _ in subtables), table.name]
            for statement in sql.activate_version_sql(tables, table.name):
                db.execute(statement, (step.table_version, table.name))
            continue
        if isinstance(step, ScratchRows):
            assert scratch is not None
            changed += _move_scratch(db, step, table, columns, keys, subtables, scratch)
            continue
        if subtables:
            _hand_off_children(db, step, table, subtables, ordinal)
        name = table.name
        params = [(*c, name) for c in cells(step.points, columns)]
        changed += db.executemany(upsert, params).rowcount
        ordinal += len(step.points)
    if subtables:
        for statement in sql.drop_handoff_sql(len(subtables)):
            db.execute(statement)
    return changed


def _move_scratch(
    db: sqlite3.Connection,
    step: ScratchRows,
    table: TableInfo,
    columns: list[str],
    keys: tuple[str, ...],
    subtables: list[tuple[str, list[str]]],
    load: ScratchLoad,
) -> int:
    """A scratch step's rows in: data points and subtable rows to the handoff tables of the
    children triggers, then the parent rows through the upsert; the rows it changed."""
    points = (step.first, step.first + step.count)
    if subtables:
        db.execute(f"DELETE FROM temp.{sql.q(sql.HANDOFF_POINTS)}")
        identity = [sql.ORDINAL, *table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
        copy = sql.copy_scratch_sql(sql.SCRATCH_POINTS, sql.HANDOFF_POINTS, identity, identity)
        db.execute(copy, points)
        for index, (name, child_columns) in enumerate(subtables):
            handoff = sql.handoff_table(index)
            db.execute(f"DELETE FROM temp.{sql.q(handoff)}")
            if name not in step.children:
                continue  # a subtable the plan did not know: no rows for it in this step
            offset, count = step.children[name]
            scratch_table, written = load.tables[name]
            wanted = [sql.ORDINAL, *child_columns]
            copy = sql.copy_scratch_sql(scratch_table, handoff, wanted, {sql.ORDINAL, *written})
            db.execute(copy, (offset, offset + count))
    upsert = sql.scratch_upsert_sql(table.name, columns, keys, load.tables[table.name][1])
    return db.execute(upsert, (*points, table.name)).rowcount


def _hand_off_children(
    db: sqlite3.Connection,
    step: RowsStep,
    table: TableInfo,
    subtables: list[tuple[str, list[str]]],
    first: int,
) -> None:
    """A step's data points and their subtable rows, into the children triggers' handoff
    tables."""
    db.execute(f"DELETE FROM temp.{sql.q(sql.HANDOFF_POINTS)}")
    identity = [*table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
    insert_points = sql.insert_sql(sql.HANDOFF_POINTS, [sql.ORDINAL, *identity])
    db.executemany(insert_points, point_rows(step.points, identity, first))
    for index, (name, columns) in enumerate(subtables):
        handoff = sql.handoff_table(index)
        db.execute(f"DELETE FROM temp.{sql.q(handoff)}")
        rows = child_rows(step.points, name, columns, first)
        if rows:
            db.executemany(sql.insert_sql(handoff, [sql.ORDINAL, *columns]), rows)
