"""The SQLite destination: one database file per top-level table under the data directory.

Each top-level table has its own database file (``paths.table_path``), opened once and kept in a
bounded LRU pool: one connection, and the one thread that uses it (``thread.py``), per open
table, so requests for different tables commit in parallel. An ``asyncio.Lock`` per table
serialises transactions on its connection. A request's data for a table waits in the table's
queue; the table's committer task commits what waits, every request's data in one
``BEGIN IMMEDIATE … COMMIT`` run on the table's thread in one trip (``writer.py``), then what
arrived meanwhile.

It raises ``ServiceUnavailable`` (503) for faults of the disk or database (full, read-only, I/O
error, locked) and lets anything else through as a bug; ``disk.DiskHealth`` remembers them for
``problem()``. A reset deletes files after closing their connections; ``next_change`` lets a
reader wait for the next commit. Reads go through ``reading.py``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    suppress,
)
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ...clock import now_text
from ...models import LoadResult, TableBatch
from ...observe.metrics import COMMIT_GROUP_SIZE, COMMIT_SECONDS
from ...plan.model import Layout, LoadPlan, Rejection, raw_record
from ..destination import (
    IntegrationSummary,
    RejectedRecord,
    RejectionReason,
    Staged,
    Stager,
    TableReader,
    TableSummary,
)
from . import reading, sql, writer
from .disk import DiskHealth
from .paths import (
    REJECTED_TABLE,
    NameTooLong,
    integration_dir,
    rejected_path,
    table_path,
    table_problem,
)
from .scratch import ScratchLoad, stage
from .thread import ConnectionThread

SCRATCH_DIR = ".scratch"  # under the data directory: never a client's folder (digits only)

# --durability: FULL syncs the WAL on every commit, so a 2xx survives power loss; NORMAL syncs
# only at checkpoints, so a 2xx survives a crash of the process but not of the machine.
_SYNCHRONOUS = {"fsync": "FULL", "fast": "NORMAL"}

_REJECTED_DDL = (
    f"CREATE TABLE IF NOT EXISTS {sql.q(REJECTED_TABLE)} ("
    "_sdc_rejected_at TEXT NOT NULL, table_name TEXT NOT NULL, reason TEXT NOT NULL, "
    "record TEXT NOT NULL)"
)


@dataclass(eq=False)
class _QueuedLoad:
    """One request's data for a table, waiting for the transaction that will commit it."""

    load: writer.Load
    done: asyncio.Future[tuple[LoadPlan, int]]  # its plan and rows changed, once committed

    @property
    def is_scratch(self) -> bool:
        return isinstance(self.load.batch, ScratchLoad)


@dataclass(eq=False)
class _OpenTable:
    path: Path
    conn: ConnectionThread
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    state: writer.TableState = field(default_factory=writer.TableState)  # the thread's alone
    # The layout as of the last commit, copied from ``state`` on the event loop once the
    # commit's call returned: what workers plan against (``layouts``).
    layout: Layout | None = None
    closed: bool = False  # by a reset, while someone waited for the lock: open the file afresh


class SqliteDestination:
    """The ``destination.Destination`` of SQLite files under ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        max_open_tables: int = 64,
        durability: str = "fsync",
        cache_mib: int = 0,
        shared: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self._shared = shared  # other server processes write the same files
        self._max_open = max_open_tables
        self._synchronous = _SYNCHRONOUS[durability]
        # A table's upserts land all over its primary-key index; with SQLite's 2 MiB cache a
        # table of a million rows reads most of those pages from the OS for every batch. Each
        # table may cache up to ``cache_mib``; SQLite's soft heap limit, process-wide, holds
        # all of them together near it, recycling the least recently used pages.
        self._pragmas = (
            (f"PRAGMA cache_size=-{cache_mib * 1024}", f"PRAGMA soft_heap_limit={cache_mib << 20}")
            if cache_mib
            else ()
        )
        self._open: OrderedDict[Path, _OpenTable] = OrderedDict()
        self._pool_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.is_stopping = False
        self.disk = DiskHealth(data_dir)
        self._waiting: dict[Path, list[_QueuedLoad]] = {}  # loads waiting for each table
        self._committers: dict[Path, asyncio.Task[None]] = {}  # each table's, while it has loads

    async def start(self) -> None:
        """Before serving: the data directory made, and an empty scratch folder (files a crash
        left there belong to no request now)."""
        scratch = self.data_dir / SCRATCH_DIR
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)
        await asyncio.to_thread(scratch.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        # Loads already queued commit first; no request can queue more by now (aiohttp's
        # cleanup runs after its handlers).
        await asyncio.gather(*self._committers.values(), return_exceptions=True)
        async with self._pool_lock:
            while self._open:
                _, table_db = self._open.popitem(last=False)
                async with table_db.lock:
                    await table_db.conn.close()

    async def problem(self) -> str | None:
        """Why the store cannot take writes now, or None (for ``/v2/import/status``, readyz)."""
        return await self.disk.problem()

    # --- loading ------------------------------------------------------------------------------

    def layouts(self, client_id: int, integration: str) -> dict[str, Layout]:
        """The committed layouts of an integration's open tables, by table name: what a worker
        plans against (``scratch.stage``). Tables not here are planned as new."""
        folder = integration_dir(self.data_dir, client_id, integration)
        found = {}
        for path, table_db in self._open.items():
            if path.parent == folder and table_db.layout:
                layout = table_db.layout
                top = next(name for name, info in layout.items() if info.parent is None)
                found[top] = layout
        return found

    def stager(self, client_id: int, integration: str) -> Stager:
        return partial(  # a module function and plain values: it pickles for the worker
            stage,
            directory=self.data_dir / SCRATCH_DIR,
            data_dir=self.data_dir,
            client_id=client_id,
            integration=integration,
        )

    def guard_writes(self) -> AbstractContextManager[None]:
        return self.disk.guard(commits=False)

    async def load(
        self,
        client_id: int,
        integration: str,
        load: TableBatch | Staged,
        received_at: str,
    ) -> LoadResult:
        """Load one table's data points in one transaction; rejected ones go to _sdc_rejected.

        A ``ScratchLoad`` (planned in a worker) raises ``StalePlan`` if the table's layout is no
        longer the one it was planned against; nothing is written then.
        """
        if not isinstance(load, (TableBatch, ScratchLoad)):  # noqa: UP038 - a tuple is faster
            raise TypeError(f"not a load for SQLite: {type(load).__name__}")
        name = load.table_name
        problem = table_problem(self.data_dir, client_id, integration, name)
        if problem is not None:  # no file for it: never even opened
            assert isinstance(load, TableBatch)  # a worker leaves such a batch as it is
            rejections = [Rejection(problem, raw_record(m)) for m in load.messages]
            await self._log_rejections(client_id, integration, name, rejections)
            return _result(name, 0, 0, rejections)
        path = table_path(self.data_dir, client_id, integration, name)
        queued = _QueuedLoad(
            writer.Load(load, received_at), asyncio.get_running_loop().create_future()
        )
        waiting = self._waiting.setdefault(path, [])
        waiting.append(queued)
        if path not in self._committers:
            self._committers[path] = asyncio.create_task(self._commit_waiting(path, waiting))
        try:
            with self.disk.guard():
                plan, accepted = await queued.done  # raised inside our disk guard
        except asyncio.CancelledError:
            if queued in waiting:
                waiting.remove(queued)  # not taken by the committer yet: it never runs
            raise
        await self._log_rejections(client_id, integration, name, plan.rejected)
        self._notify_change()
        return _result(name, accepted, plan.accepted_upserts - accepted, plan.rejected)

    async def _commit_waiting(self, path: Path, waiting: list[_QueuedLoad]) -> None:
        """A table's committer: while loads wait for the table, commit them, a group at a time.

        Its own task, not any request's: a request that goes away cancels no commit, and the
        loads that arrive while a group commits wait for the next group on their futures alone.
        """
        try:
            while waiting:
                try:
                    async with self._table_db(path) as table_db:
                        group = _take_group(waiting)  # taken once the table is ours
                        if group:  # else each load that waited went away meanwhile
                            await _commit_group(table_db, group)
                except Exception as exc:  # the file would not open: fail what waited for it
                    _fail(waiting, exc)
        except BaseException:  # cancelled (the loop is closing): nobody is left to commit these
            _fail(waiting, None)
            raise
        finally:
            del self._committers[path]
            if not waiting and self._waiting.get(path) is waiting:
                del self._waiting[path]

    async def _log_rejections(
        self, client_id: int, integration: str, table_name: str, rejections: list[Rejection]
    ) -> None:
        if not rejections:
            return
        path = rejected_path(self.data_dir, client_id, integration)
        at = now_text()
        rows = [
            (at, table_name, r.reason, json.dumps(r.record, default=str, ensure_ascii=False))
            for r in rejections
        ]
        insert = f"INSERT INTO {sql.q(REJECTED_TABLE)} VALUES (?, ?, ?, ?)"
        with self.disk.guard():
            async with self._table_db(path, (_REJECTED_DDL,)) as table_db:
                await table_db.conn.run(partial(writer.append_rows, statement=insert, rows=rows))

    def _notify_change(self) -> None:
        self._changed.set()
        if not self.is_stopping:
            self._changed = asyncio.Event()

    # --- reading: read-only connections of their own (``reading.py``) --------------------------

    async def integrations(self) -> list[IntegrationSummary]:
        return await reading.list_integrations(self.data_dir)

    async def tables(self, client_id: int, integration: str) -> list[TableSummary]:
        return await reading.list_tables(self.data_dir, client_id, integration)

    def open_table(
        self, client_id: int, integration: str, table: str
    ) -> AbstractAsyncContextManager[TableReader | None]:
        return reading.open_table(self.data_dir, client_id, integration, table)

    async def rejection_reasons(
        self, client_id: int, integration: str, table: str | None = None
    ) -> list[RejectionReason]:
        return await reading.rejection_reasons(self.data_dir, client_id, integration, table)

    async def rejected_records(
        self,
        client_id: int,
        integration: str,
        table: str | None = None,
        *,
        limit: int,
        offset: int = 0,
    ) -> tuple[int, list[RejectedRecord]]:
        where = (self.data_dir, client_id, integration, table)
        return await reading.rejected_records(*where, limit=limit, offset=offset)

    # --- resetting ----------------------------------------------------------------------------

    async def reset_everything(self) -> int:
        removed = 0
        for _, folder in reading.client_dirs(self.data_dir):
            removed += await self._remove(folder)
        return removed

    async def reset_client(self, client_id: int) -> bool:
        return await self._remove(self.data_dir / str(int(client_id)))

    async def reset_table(self, client_id: int, integration: str, table: str) -> bool:
        # A table whose every record was rejected (its name too long, say) has no file, only
        # its rejected records.
        try:
            removed = await self._remove(table_path(self.data_dir, client_id, integration, table))
        except NameTooLong:
            removed = False
        forgotten = await self._forget_rejections(client_id, integration, table)
        return removed or forgotten

    # --- health and lifetime ------------------------------------------------------------------

    def next_change(self) -> asyncio.Event:
        """An event set when the next load commits. Take it *before* reading what a load may
        change, so a commit that lands during the read is not missed."""
        return self._changed

    def stop_waiters(self) -> None:
        """Wake every reader waiting for a change, for good: the server is shutting down and
        would otherwise wait for each long-poll to time out."""
        self.is_stopping = True
        self._changed.set()

    async def _remove(self, target: Path) -> bool:
        """Delete a table's database file (with its WAL files) or a whole folder; True if
        anything was there. Its open connections are closed first, waiting for their
        transactions, and the pool stays locked until the files are gone, so no load can
        reopen them half-deleted."""
        async with self._pool_lock:
            for path, table_db in list(self._open.items()):
                if path == target or target in path.parents:
                    del self._open[path]
                    async with table_db.lock:
                        table_db.closed = True
                        await table_db.conn.close()
            with self.disk.guard(commits=False):
                return await asyncio.to_thread(_delete, target)

    async def _forget_rejections(self, client_id: int, integration: str, table_name: str) -> bool:
        """Delete a table's records from ``_sdc_rejected`` (part of resetting that table);
        False if it had none."""
        try:
            path = rejected_path(self.data_dir, client_id, integration)
        except NameTooLong:
            return False  # no integration of that name can hold anything
        if not path.is_file():
            return False
        with self.disk.guard():
            async with self._table_db(path, (_REJECTED_DDL,)) as table_db:
                delete = f"DELETE FROM {sql.q(REJECTED_TABLE)} WHERE table_name = ?"
                found = await table_db.conn.run(lambda db: db.execute(delete, (table_name,)))
                return found.rowcount > 0

    @asynccontextmanager
    async def _table_db(
        self, path: Path, ddl: tuple[str, ...] = sql.METADATA_DDL
    ) -> AsyncIterator[_OpenTable]:
        """The open database at ``path`` (opened, with ``ddl`` run, on first use), locked."""
        while True:
            async with self._pool_lock:
                table_db = self._open.get(path)
                if table_db is None:
                    conn = await _connect(path, ddl, self._synchronous, self._pragmas)
                    table_db = _OpenTable(path, conn, state=writer.TableState(shared=self._shared))
                    self._open[path] = table_db
                    await self._evict_idle()
                else:
                    self._open.move_to_end(path)
                table_db.users += 1
            try:
                async with table_db.lock:
                    if table_db.closed:
                        continue  # a reset closed it while we waited: open the file afresh
                    yield table_db
                    return
            finally:
                table_db.users -= 1

    async def _evict_idle(self) -> None:
        """Close least-recently-used databases that nobody is using, down to the pool size."""
        for path, table_db in list(self._open.items()):
            if len(self._open) <= self._max_open:
                return
            if table_db.users == 0:
                del self._open[path]
                await table_db.conn.close()


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


async def _connect(
    path: Path, ddl: tuple[str, ...], synchronous: str, pragmas: tuple[str, ...]
) -> ConnectionThread:
    path.parent.mkdir(parents=True, exist_ok=True)
    is_new = not path.exists()
    statements = (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        "PRAGMA busy_timeout=5000",
        *pragmas,
        *ddl,
    )

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
        try:
            for statement in statements:
                db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    try:
        return await ConnectionThread.open(connect, name=f"sqlite {path.name}")
    except BaseException:
        if is_new:
            # Created, then the disk filled up: a file without its metadata tables would read as
            # a broken table (admin API, CLI) until the retry; the retry creates it afresh.
            with suppress(OSError):
                await asyncio.to_thread(_delete, path)
                await asyncio.to_thread(Path(f"{path}-journal").unlink, missing_ok=True)
        raise


def _fail(waiting: list[_QueuedLoad], exc: Exception | None) -> None:
    """Every load still waiting ends: with ``exc``, or cancelled; none is left waiting."""
    failed, waiting[:] = waiting[:], []
    for queued in failed:
        if queued.done.done():
            continue
        if exc is None:
            queued.done.cancel()
        else:
            queued.done.set_exception(exc)


def _take_group(waiting: list[_QueuedLoad]) -> list[_QueuedLoad]:
    """The loads to commit together, taken out of ``waiting``: a scratch load alone (its file
    is attached for its transaction), else every load of the request kind that waits."""
    if not waiting:
        return []
    if waiting[0].is_scratch:
        return [waiting.pop(0)]
    group = [queued for queued in waiting if not queued.is_scratch]
    waiting[:] = [queued for queued in waiting if queued.is_scratch]
    return group


async def _commit_group(table_db: _OpenTable, group: list[_QueuedLoad]) -> None:
    """Group commit: every load waiting for this table, in arrival order, in one transaction
    on the table's thread (``writer.commit_group``).

    Concurrent small pushes to one table would otherwise each pay a transaction and an fsync
    in turn. Each load's future is set only after the COMMIT, so a 2xx still means committed.
    Once handed to the thread the group runs to its end, even if the server is stopping.
    """
    loads = [queued.load for queued in group]
    started = time.perf_counter()
    running = asyncio.ensure_future(
        table_db.conn.run(partial(writer.commit_group, state=table_db.state, loads=loads))
    )
    running.add_done_callback(partial(_settle_group, table_db, group))
    with suppress(Exception):  # each load of the group has the failure (``_settle_group``)
        await asyncio.shield(running)
    if running.exception() is None:
        COMMIT_SECONDS.labels("sqlite").observe(time.perf_counter() - started)
        COMMIT_GROUP_SIZE.labels("sqlite").observe(len(group))


def _settle_group(
    table_db: _OpenTable,
    group: list[_QueuedLoad],
    running: asyncio.Future[list[writer.Outcome]],
) -> None:
    """Each load's future, from its outcome or from how the whole run ended; and the table's
    committed layout, which the thread no longer touches until the next group."""
    table_db.layout = None if running.cancelled() else table_db.state.layout
    if running.cancelled():  # the loop is shutting down
        for queued in group:
            queued.done.cancel()
        return
    failure = running.exception()  # the connection failed, not a load
    outcomes: list[writer.Outcome | BaseException]
    outcomes = [failure] * len(group) if failure is not None else list(running.result())
    for queued, outcome in zip(group, outcomes, strict=True):
        if queued.done.done():
            continue
        if isinstance(outcome, BaseException):
            queued.done.set_exception(outcome)
        else:
            queued.done.set_result(outcome)


def _result(table_name: str, accepted: int, stale: int, rejections: list[Rejection]) -> LoadResult:
    reasons = Counter(r.reason for r in rejections)
    return LoadResult(table_name, accepted, stale, len(rejections), reasons)
