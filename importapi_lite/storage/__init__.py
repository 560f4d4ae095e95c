"""The store: per-table SQLite databases under the data directory. The only aiosqlite user.

Each top-level table has its own database file (``paths.table_path``), opened once and kept in a
bounded LRU pool: one aiosqlite connection, hence one writer thread, per open table, so requests
for different tables commit in parallel. An ``asyncio.Lock`` per table serialises transactions on
its connection; each request's data for a table is one ``BEGIN IMMEDIATE … COMMIT``.

Storage raises ``ServiceUnavailable`` (503) for faults of the disk or database (full, read-only,
I/O error, locked) and lets anything else through as a bug; ``disk.DiskHealth`` remembers them for
``problem()``. ``remove`` deletes files for a reset after closing their connections;
``next_change`` lets a reader wait for the next commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from ..models import ActivateVersion, LoadResult, TableBatch
from . import sql
from .disk import DiskHealth
from .loading import (
    CHILD_SYSTEM,
    PARENT_SYSTEM,
    Layout,
    LoadPlan,
    Rejection,
    RowsStep,
    StagedRows,
    TableInfo,
    layout_from_rows,
    now_text,
    plan_load,
    raw_record,
    rebase,
    table_name_problem,
)
from .paths import REJECTED_TABLE, NameTooLong, integration_dir, table_path
from .shape import SQL_TYPES
from .staging import StagedLoad, StalePlan

logger = logging.getLogger(__name__)

# --durability: FULL syncs the WAL on every commit, so a 2xx survives power loss; NORMAL syncs
# only at checkpoints, so a 2xx survives a crash of the process but not of the machine.
_SYNCHRONOUS = {"fsync": "FULL", "fast": "NORMAL"}

_REJECTED_DDL = (
    f"CREATE TABLE IF NOT EXISTS {sql.q(REJECTED_TABLE)} ("
    "_sdc_rejected_at TEXT NOT NULL, table_name TEXT NOT NULL, reason TEXT NOT NULL, "
    "record TEXT NOT NULL)"
)


@dataclass(eq=False)
class _Job:
    """One request's data for a table, waiting for the transaction that will commit it."""

    batch: TableBatch | StagedLoad
    received_at: str
    done: asyncio.Future[tuple[LoadPlan, int]]  # its plan and rows changed, once committed

    @property
    def is_staged(self) -> bool:
        return isinstance(self.batch, StagedLoad)


@dataclass(eq=False)
class _TableDb:
    path: Path
    conn: aiosqlite.Connection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    # The tables and columns as of the last commit: only this connection writes the file, so
    # loads need not read it back each time. None: read it (first use, or after a failure).
    layout: Layout | None = None
    # The layout as of the last commit, for plans made elsewhere (``layout_snapshots``).
    snapshot: Layout | None = None
    closed: bool = False  # by a reset, while someone waited for the lock: open the file afresh


class Store:
    def __init__(
        self, data_dir: Path, *, max_open_tables: int = 64, durability: str = "fsync"
    ) -> None:
        self.data_dir = data_dir
        self._max_open = max_open_tables
        self._synchronous = _SYNCHRONOUS[durability]
        self._open: OrderedDict[Path, _TableDb] = OrderedDict()
        self._pool_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.is_stopping = False
        self.disk = DiskHealth(data_dir)
        self._waiting: dict[Path, list[_Job]] = {}  # loads waiting for each table's lock

    async def close(self) -> None:
        async with self._pool_lock:
            while self._open:
                _, tdb = self._open.popitem(last=False)
                async with tdb.lock:
                    await tdb.conn.close()

    async def problem(self) -> str | None:
        """Why the store cannot take writes now, or None (for ``/v2/import/status``, readyz)."""
        return await self.disk.problem()

    def layout_snapshots(self, client_id: int, integration: str) -> dict[str, Layout]:
        """The committed layouts of an integration's open tables, by table name: what a plan
        made elsewhere (``staging.stage_batch``) is made against. Tables not here plan as new."""
        folder = integration_dir(self.data_dir, client_id, integration)
        found = {}
        for path, tdb in self._open.items():
            if path.parent == folder and tdb.snapshot:
                top = next(name for name, info in tdb.snapshot.items() if info.parent is None)
                found[top] = tdb.snapshot
        return found

    async def load(
        self,
        client_id: int,
        integration: str,
        batch: TableBatch | StagedLoad,
        received_at: str,
    ) -> LoadResult:
        """Load one table's data points in one transaction; rejected ones go to _sdc_rejected.

        A ``StagedLoad`` (planned and staged in a worker) raises ``StalePlan`` if the table's
        layout is no longer the one it was planned against; nothing is written then.
        """
        if isinstance(batch, StagedLoad):
            return await self._load_job(
                table_path(self.data_dir, client_id, integration, batch.table_name),
                client_id,
                integration,
                batch,
                received_at,
            )
        problem = table_name_problem(batch.table_name)
        path = None
        if problem is None:
            try:
                path = table_path(self.data_dir, client_id, integration, batch.table_name)
            except NameTooLong:
                problem = "Table name is too long to store"
        if path is None:
            rejections = [Rejection(problem or "", raw_record(m)) for m in batch.messages]
            await self._log_rejections(client_id, integration, batch.table_name, rejections)
            return LoadResult(batch.table_name, 0, 0, len(rejections))
        return await self._load_job(path, client_id, integration, batch, received_at)

    async def _load_job(
        self,
        path: Path,
        client_id: int,
        integration: str,
        batch: TableBatch | StagedLoad,
        received_at: str,
    ) -> LoadResult:
        job = _Job(batch, received_at, asyncio.get_running_loop().create_future())
        waiting = self._waiting.setdefault(path, [])
        waiting.append(job)
        try:
            with self.disk.guard():
                async with self._table_db(path) as tdb:
                    if not job.done.done():  # else a load before ours committed it with its own
                        group = _take_group(waiting, job)
                        if not waiting and self._waiting.get(path) is waiting:
                            del self._waiting[path]
                        await _load_group(tdb, group, job, waiting)
                plan, accepted = job.done.result()  # its failure, raised inside our disk guard
        except asyncio.CancelledError:
            if job in waiting:
                waiting.remove(job)  # not taken by anyone yet: it never runs
            elif job.done.done() and not job.done.cancelled():
                job.done.exception()  # taken and finished: nobody else will look
            raise
        await self._log_rejections(client_id, integration, batch.table_name, plan.rejected)
        self._notify_change()
        return LoadResult(
            batch.table_name, accepted, plan.accepted_upserts - accepted, len(plan.rejected)
        )

    async def _log_rejections(
        self, client_id: int, integration: str, table_name: str, rejections: list[Rejection]
    ) -> None:
        if not rejections:
            return
        path = integration_dir(self.data_dir, client_id, integration) / (
            REJECTED_TABLE + ".sqlite3"
        )
        at = now_text()
        rows = [
            (at, table_name, r.reason, json.dumps(r.record, default=str, ensure_ascii=False))
            for r in rejections
        ]
        with self.disk.guard():
            async with self._table_db(path, (_REJECTED_DDL,)) as tdb:
                await tdb.conn.execute("BEGIN IMMEDIATE")
                try:
                    await tdb.conn.executemany(
                        f"INSERT INTO {sql.q(REJECTED_TABLE)} VALUES (?, ?, ?, ?)", rows
                    )
                    await tdb.conn.execute("COMMIT")
                except BaseException:
                    await _rollback(tdb.conn)
                    raise
        logger.info("rejected %d record(s) for table %r", len(rows), table_name)

    def _notify_change(self) -> None:
        self._changed.set()
        if not self.is_stopping:
            self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """An event set when the next load commits. Take it *before* reading what a load may
        change, so a commit that lands during the read is not missed."""
        return self._changed

    def stop_waiters(self) -> None:
        """Wake every reader waiting for a change, for good: the server is shutting down and
        would otherwise wait for each long-poll to time out."""
        self.is_stopping = True
        self._changed.set()

    async def remove(self, target: Path) -> bool:
        """Delete a table's database file (with its WAL files) or a whole folder; True if
        anything was there. Its open connections are closed first, waiting for their
        transactions, and the pool stays locked until the files are gone, so no load can
        reopen them half-deleted."""
        async with self._pool_lock:
            for path, tdb in list(self._open.items()):
                if path == target or target in path.parents:
                    del self._open[path]
                    async with tdb.lock:
                        tdb.closed = True
                        await tdb.conn.close()
            with self.disk.guard(commits=False):
                return await asyncio.to_thread(_delete, target)

    async def forget_rejections(self, client_id: int, integration: str, table_name: str) -> None:
        """Delete a table's records from ``_sdc_rejected`` (part of resetting that table)."""
        path = integration_dir(self.data_dir, client_id, integration) / (
            REJECTED_TABLE + ".sqlite3"
        )
        if not path.is_file():
            return
        with self.disk.guard():
            async with self._table_db(path, (_REJECTED_DDL,)) as tdb:
                await tdb.conn.execute(
                    f"DELETE FROM {sql.q(REJECTED_TABLE)} WHERE table_name = ?", (table_name,)
                )

    @asynccontextmanager
    async def _table_db(
        self, path: Path, ddl: tuple[str, ...] = sql.METADATA_DDL
    ) -> AsyncIterator[_TableDb]:
        """The open database at ``path`` (opened, with ``ddl`` run, on first use), locked."""
        while True:
            async with self._pool_lock:
                tdb = self._open.get(path)
                if tdb is None:
                    tdb = _TableDb(path, await _connect(path, ddl, self._synchronous))
                    self._open[path] = tdb
                    await self._evict_idle()
                else:
                    self._open.move_to_end(path)
                tdb.users += 1
            try:
                async with tdb.lock:
                    if tdb.closed:
                        continue  # a reset closed it while we waited: open the file afresh
                    yield tdb
                    return
            finally:
                tdb.users -= 1

    async def _evict_idle(self) -> None:
        """Close least-recently-used databases that nobody is using, down to the pool size."""
        for path, tdb in list(self._open.items()):
            if len(self._open) <= self._max_open:
                return
            if tdb.users == 0:
                del self._open[path]
                await tdb.conn.close()


def _delete(target: Path) -> bool:
    if target.is_dir():
        shutil.rmtree(target)
        return True
    found = False
    for path in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        try:
            path.unlink()
            found = True
        except FileNotFoundError:
            pass
    return found


async def _connect(path: Path, ddl: tuple[str, ...], synchronous: str) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    is_new = not path.exists()
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA synchronous={synchronous}")
        await conn.execute("PRAGMA busy_timeout=5000")
        for statement in ddl:
            await conn.execute(statement)
    except BaseException:
        await conn.close()
        if is_new:
            # Created, then the disk filled up: a file without its metadata tables would read as
            # a broken table (admin API, CLI) until the retry; the retry creates it afresh.
            with suppress(OSError):
                await asyncio.to_thread(_delete, path)
                await asyncio.to_thread(Path(f"{path}-journal").unlink, missing_ok=True)
        raise
    return conn


def _take_group(waiting: list[_Job], mine: _Job) -> list[_Job]:
    """The loads to commit together, taken out of ``waiting``: a staged load alone (its file is
    attached for its transaction), else every load of the request kind that waits."""
    if mine.is_staged:
        waiting.remove(mine)
        return [mine]
    group = [j for j in waiting if not j.is_staged]
    waiting[:] = [j for j in waiting if j.is_staged]
    return group


async def _load_group(tdb: _TableDb, group: list[_Job], mine: _Job, waiting: list[_Job]) -> None:
    """Group commit: every load waiting for this table, in arrival order, in one transaction.

    Concurrent small pushes to one table would otherwise each pay a transaction and an fsync
    in turn. Each job's future is set only after the COMMIT, so a 2xx still means committed.
    A job that fails while loading takes the transaction down with it: it gets its failure,
    and the others run again without it, in a new transaction (rare, and dearer than
    savepoints only then). A failed COMMIT fails every job: nothing of theirs was committed.
    If the request running the group (``mine``) is cancelled, the others go back to
    ``waiting`` for the next holder of the lock.
    """
    pending = list(group)
    try:
        while pending:
            blamed = await _try_group(tdb, pending)
            if blamed is None:
                return
            job, exc = blamed
            job.done.set_exception(exc)
            pending.remove(job)
    except BaseException:
        waiting[:0] = [j for j in pending if j is not mine and not j.done.done()]
        raise


async def _try_group(tdb: _TableDb, group: list[_Job]) -> tuple[_Job, Exception] | None:
    """Run the jobs in one transaction. None when done: committed, or failed as a whole (BEGIN
    or COMMIT), with every future set; else the job whose load failed, futures left unset."""
    db = tdb.conn
    outcomes: list[tuple[LoadPlan, int]] = []
    layout, tdb.layout = tdb.layout, None  # set again only once this transaction commits
    loading: _Job | None = None  # the job being loaded, to blame for a failure
    staged = group[0].batch if group[0].is_staged else None  # alone in its group (_take_group)
    try:
        if isinstance(staged, StagedLoad):  # not inside a transaction: SQLite refuses there
            await db.execute(f"ATTACH DATABASE ? AS {sql.STAGED}", (str(staged.path),))
        await db.execute("BEGIN IMMEDIATE")
        if layout is None:
            layout = tdb.snapshot = await _read_layout(db)  # as committed: we hold the lock
        for loading in group:
            plan, accepted = await _load_batch(db, loading, layout)
            layout = plan.layout
            outcomes.append((plan, accepted))
        loading = None
        await db.execute("COMMIT")
    except Exception as exc:
        await _rollback(db)
        if loading is not None and len(group) > 1:
            return loading, exc
        for job in group:  # nothing was committed, and no one job is to blame
            job.done.set_exception(exc)
        return None
    except BaseException:
        await _rollback(db)
        raise
    finally:
        if staged is not None:
            await _detach(db)
    tdb.layout = tdb.snapshot = layout
    for job, outcome in zip(group, outcomes, strict=True):
        job.done.set_result(outcome)
    return None


async def _load_batch(db: aiosqlite.Connection, job: _Job, layout: Layout) -> tuple[LoadPlan, int]:
    batch = job.batch
    if isinstance(batch, StagedLoad):
        rebased = rebase(batch.plan, batch.table_name, batch.planned_for, layout)
        if rebased is None:
            raise StalePlan(batch.table_name)
        plan = rebased
    else:
        plan = plan_load(batch, layout, job.received_at, now_text())
    await _apply_ddl(db, plan)
    accepted = 0
    if plan.table is not None:
        staged = batch if isinstance(batch, StagedLoad) else None
        accepted = await _run_steps(db, plan, plan.table, staged)
        if batch.bookmark_names is not None:
            bookmarks = json.dumps(list(batch.bookmark_names))
            await db.execute(sql.SET_BOOKMARKS, (bookmarks, batch.table_name))
    return plan, accepted


async def _detach(db: aiosqlite.Connection) -> None:
    try:
        await db.execute(f"DETACH DATABASE {sql.STAGED}")
    except sqlite3.Error:
        pass  # never attached (ATTACH failed); a connection that fails here is failing anyway


async def _rollback(db: aiosqlite.Connection) -> None:
    # After a failed COMMIT (disk full, I/O error) SQLite may have rolled back already.
    try:
        await db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


async def _read_layout(db: aiosqlite.Connection) -> Layout:
    meta = await db.execute_fetchall(sql.SELECT_META)
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in await db.execute_fetchall(sql.SELECT_COLUMNS):
        columns.setdefault(table, []).append((column, type_))
    return layout_from_rows([(n, p, json.loads(k)) for n, p, k in meta], columns)


def _system_columns(info: TableInfo) -> list[str]:
    return list(PARENT_SYSTEM if info.parent is None else CHILD_SYSTEM)


async def _apply_ddl(db: aiosqlite.Connection, plan: LoadPlan) -> None:
    """Create the tables and add the columns the plan needs, recording their Stitch types."""
    for name in plan.new_tables:
        info = plan.layout[name]
        system = _system_columns(info)
        sql_types = {c: SQL_TYPES[t] for c, t in info.columns.items()}
        await db.execute(sql.create_table_sql(name, sql_types, info.key_columns, system))
        keys = json.dumps(list(info.key_names))
        await db.execute(sql.INSERT_META, (name, info.parent, keys, now_text()))
        ordered = sql.ordered_columns(list(info.columns), info.key_columns, system)
        await db.executemany(sql.INSERT_COLUMN, [(name, c, info.columns[c]) for c in ordered])
    for name, column in plan.new_columns:
        type_ = plan.layout[name].columns[column]
        await db.execute(sql.add_column_sql(name, column, SQL_TYPES[type_]))
        await db.execute(sql.INSERT_COLUMN, (name, column, type_))


async def _run_steps(
    db: aiosqlite.Connection, plan: LoadPlan, table: TableInfo, staged: StagedLoad | None
) -> int:
    """Apply upserts and activations in request order; the number of rows the upserts changed.
    The rows of a ``staged`` plan are in its attached file."""
    columns = list(table.columns)
    keys = table.key_columns if table.key_names else ()
    upsert = sql.upsert_sql(table.name, columns, keys)
    subtables = [(t.name, list(t.columns)) for t in plan.subtables]
    if subtables:
        for statement in sql.staging_sql(table.name, table.key_columns, subtables):
            await db.execute(statement)
    changed = 0
    ordinal = 0
    for step in plan.steps:
        if isinstance(step, ActivateVersion):
            tables = [*(name for name, _ in subtables), table.name]
            for statement in sql.activate_version_sql(tables, table.name):
                await db.execute(statement, (step.table_version, table.name))
            continue
        if isinstance(step, StagedRows):
            assert staged is not None
            changed += await _move_staged(db, step, table, columns, keys, subtables, staged)
            continue
        if subtables:
            await _stage_children(db, step, table, subtables, ordinal)
        name = table.name
        params = [(*map(p.row.get, columns), name) for p in step.points]
        cursor = await db.executemany(upsert, params)
        changed += cursor.rowcount
        ordinal += len(step.points)
    if subtables:
        for statement in sql.drop_staging_sql(len(subtables)):
            await db.execute(statement)
    return changed


async def _move_staged(
    db: aiosqlite.Connection,
    step: StagedRows,
    table: TableInfo,
    columns: list[str],
    keys: tuple[str, ...],
    subtables: list[tuple[str, list[str]]],
    load: StagedLoad,
) -> int:
    """A staged step's rows in: data points and subtable rows to the temp staging tables of
    the children triggers, then the parent rows through the upsert; the rows it changed."""
    points = (step.first, step.first + step.count)
    if subtables:
        await db.execute(f"DELETE FROM temp.{sql.q(sql.POINTS_TABLE)}")
        identity = [sql.ORDINAL, *table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
        copy = sql.copy_staged_sql(sql.STAGED_POINTS, sql.POINTS_TABLE, identity, identity)
        await db.execute(copy, points)
        for index, (name, child_columns) in enumerate(subtables):
            stage = sql.stage_table(index)
            await db.execute(f"DELETE FROM temp.{sql.q(stage)}")
            if name not in step.children:
                continue  # a subtable the plan did not know: no rows for it in this step
            offset, count = step.children[name]
            staged_table, staged = load.staged[name]
            wanted = [sql.ORDINAL, *child_columns]
            copy = sql.copy_staged_sql(staged_table, stage, wanted, {sql.ORDINAL, *staged})
            await db.execute(copy, (offset, offset + count))
    upsert = sql.staged_upsert_sql(table.name, columns, keys, load.staged[table.name][1])
    cursor = await db.execute(upsert, (*points, table.name))
    return cursor.rowcount


async def _stage_children(
    db: aiosqlite.Connection,
    step: RowsStep,
    table: TableInfo,
    subtables: list[tuple[str, list[str]]],
    first: int,
) -> None:
    """Stage a step's data points and their subtable rows for the children triggers."""
    await db.execute(f"DELETE FROM temp.{sql.q(sql.POINTS_TABLE)}")
    identity = [*table.key_columns, sql.SEQUENCE, sql.TABLE_VERSION]
    await db.executemany(
        sql.insert_sql(sql.POINTS_TABLE, [sql.ORDINAL, *identity]),
        [(first + i, *map(p.row.get, identity)) for i, p in enumerate(step.points)],
    )
    for index, (name, columns) in enumerate(subtables):
        stage = sql.stage_table(index)
        await db.execute(f"DELETE FROM temp.{sql.q(stage)}")
        rows = [
            (first + i, *map(row.get, columns))
            for i, point in enumerate(step.points)
            for row in point.children.get(name, ())
        ]
        if rows:
            await db.executemany(sql.insert_sql(stage, [sql.ORDINAL, *columns]), rows)
