"""The store: per-table SQLite databases under the data directory.

Each top-level table has its own database file (``paths.table_path``), opened once and kept in a
bounded LRU pool: one connection, and the one thread that uses it (``thread.py``), per open
table, so requests
for different tables commit in parallel. An ``asyncio.Lock`` per table serialises transactions on
its connection. A request's data for a table waits in the table's queue; the table's committer
task commits what waits, every request's data in one ``BEGIN IMMEDIATE … COMMIT`` run on the
table's thread in one trip (``writer.py``), then what arrived meanwhile.

Storage raises ``ServiceUnavailable`` (503) for faults of the disk or database (full, read-only,
I/O error, locked) and lets anything else through as a bug; ``disk.DiskHealth`` remembers them for
``problem()``. ``remove`` deletes files for a reset after closing their connections;
``next_change`` lets a reader wait for the next commit.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ...models import LoadResult, TableBatch
from ...observe.rejection_log import RejectionLog
from ...plan.plans import (
    Layout,
    LoadPlan,
    Rejection,
    now_text,
    raw_record,
    table_name_problem,
)
from . import sql, writer
from .disk import DiskHealth
from .paths import REJECTED_TABLE, NameTooLong, integration_dir, rejected_path, table_path
from .staging import StagedLoad
from .thread import ConnectionThread

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

    load: writer.Load
    done: asyncio.Future[tuple[LoadPlan, int]]  # its plan and rows changed, once committed

    @property
    def is_staged(self) -> bool:
        return isinstance(self.load.batch, StagedLoad)


@dataclass(eq=False)
class _TableDb:
    path: Path
    conn: ConnectionThread
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    state: writer.TableState = field(default_factory=writer.TableState)
    closed: bool = False  # by a reset, while someone waited for the lock: open the file afresh


class Store:
    def __init__(
        self,
        data_dir: Path,
        *,
        max_open_tables: int = 64,
        durability: str = "fsync",
        cache_mib: int = 0,
    ) -> None:
        self.data_dir = data_dir
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
        self._open: OrderedDict[Path, _TableDb] = OrderedDict()
        self._pool_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.is_stopping = False
        self.disk = DiskHealth(data_dir)
        self._waiting: dict[Path, list[_Job]] = {}  # loads waiting for each table's commit
        self._committers: dict[Path, asyncio.Task[None]] = {}  # each table's, while it has loads
        self.rejection_log = RejectionLog()

    async def close(self) -> None:
        # Loads already queued commit first; no request can queue more by now (aiohttp's
        # cleanup runs after its handlers).
        await asyncio.gather(*self._committers.values(), return_exceptions=True)
        self.rejection_log.flush()
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
            layout = tdb.state.layout  # as last committed; set on the table's thread
            if path.parent == folder and layout:
                top = next(name for name, info in layout.items() if info.parent is None)
                found[top] = layout
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
        job = _Job(writer.Load(batch, received_at), asyncio.get_running_loop().create_future())
        waiting = self._waiting.setdefault(path, [])
        waiting.append(job)
        if path not in self._committers:
            self._committers[path] = asyncio.create_task(self._commit_waiting(path, waiting))
        try:
            with self.disk.guard():
                plan, accepted = await job.done  # raised inside our disk guard
        except asyncio.CancelledError:
            if job in waiting:
                waiting.remove(job)  # not taken by the committer yet: it never runs
            raise
        await self._log_rejections(client_id, integration, batch.table_name, plan.rejected)
        self._notify_change()
        return LoadResult(
            batch.table_name, accepted, plan.accepted_upserts - accepted, len(plan.rejected)
        )

    async def _commit_waiting(self, path: Path, waiting: list[_Job]) -> None:
        """A table's committer: while loads wait for the table, commit them, a group at a time.

        Its own task, not any request's: a request that goes away cancels no commit, and the
        loads that arrive while a group commits wait for the next group on their futures alone.
        """
        try:
            while waiting:
                try:
                    async with self._table_db(path) as tdb:
                        group = _take_group(waiting)  # taken once the table is ours
                        if group:  # else each load that waited went away meanwhile
                            await _commit_group(tdb, group)
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
            async with self._table_db(path, (_REJECTED_DDL,)) as tdb:
                await tdb.conn.run(partial(writer.append_rows, statement=insert, rows=rows))
        reasons = Counter(r.reason for r in rejections)
        self.rejection_log.rejected(client_id, integration, table_name, reasons)

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

    async def forget_rejections(self, client_id: int, integration: str, table_name: str) -> bool:
        """Delete a table's records from ``_sdc_rejected`` (part of resetting that table);
        False if it had none."""
        try:
            path = rejected_path(self.data_dir, client_id, integration)
        except NameTooLong:
            return False  # no integration of that name can hold anything
        if not path.is_file():
            return False
        with self.disk.guard():
            async with self._table_db(path, (_REJECTED_DDL,)) as tdb:
                delete = f"DELETE FROM {sql.q(REJECTED_TABLE)} WHERE table_name = ?"
                deleted = await tdb.conn.run(lambda db: db.execute(delete, (table_name,)).rowcount)
                return deleted > 0

    @asynccontextmanager
    async def _table_db(
        self, path: Path, ddl: tuple[str, ...] = sql.METADATA_DDL
    ) -> AsyncIterator[_TableDb]:
        """The open database at ``path`` (opened, with ``ddl`` run, on first use), locked."""
        while True:
            async with self._pool_lock:
                tdb = self._open.get(path)
                if tdb is None:
                    conn = await _connect(path, ddl, self._synchronous, self._pragmas)
                    tdb = _TableDb(path, conn)
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


def _fail(waiting: list[_Job], exc: Exception | None) -> None:
    """Every job still waiting ends: with ``exc``, or cancelled; none is left waiting."""
    jobs, waiting[:] = waiting[:], []
    for job in jobs:
        if job.done.done():
            continue
        if exc is None:
            job.done.cancel()
        else:
            job.done.set_exception(exc)


def _take_group(waiting: list[_Job]) -> list[_Job]:
    """The loads to commit together, taken out of ``waiting``: a staged load alone (its file is
    attached for its transaction), else every load of the request kind that waits."""
    if not waiting:
        return []
    if waiting[0].is_staged:
        return [waiting.pop(0)]
    group = [j for j in waiting if not j.is_staged]
    waiting[:] = [j for j in waiting if j.is_staged]
    return group


async def _commit_group(tdb: _TableDb, group: list[_Job]) -> None:
    """Group commit: every load waiting for this table, in arrival order, in one transaction
    on the table's thread (``writer.commit_group``).

    Concurrent small pushes to one table would otherwise each pay a transaction and an fsync
    in turn. Each job's future is set only after the COMMIT, so a 2xx still means committed.
    Once handed to the thread the group runs to its end, even if the server is stopping.
    """
    loads = [job.load for job in group]
    running = asyncio.ensure_future(
        tdb.conn.run(partial(writer.commit_group, state=tdb.state, loads=loads))
    )
    running.add_done_callback(partial(_settle, group))
    with suppress(Exception):  # each job of the group has the failure (``_settle``)
        await asyncio.shield(running)


def _settle(group: list[_Job], running: asyncio.Future[list[writer.Outcome]]) -> None:
    """Each job's future, from its outcome or from how the whole run ended."""
    if running.cancelled():  # the loop is shutting down
        for job in group:
            job.done.cancel()
        return
    failure = running.exception()  # the connection failed, not a load
    outcomes: list[writer.Outcome | BaseException]
    outcomes = [failure] * len(group) if failure is not None else list(running.result())
    for job, outcome in zip(group, outcomes, strict=True):
        if job.done.done():
            continue
        if isinstance(outcome, BaseException):
            job.done.set_exception(outcome)
        else:
            job.done.set_result(outcome)
