"""The store: per-table SQLite databases under the data directory. The only aiosqlite user.

Each top-level table has its own database file (``paths.table_path``), opened once and kept in a
bounded LRU pool: one aiosqlite connection, hence one writer thread, per open table, so requests
for different tables commit in parallel. An ``asyncio.Lock`` per table serialises transactions on
its connection; each request's data for a table is one ``BEGIN IMMEDIATE … COMMIT``.

Storage raises ``ServiceUnavailable`` (503) for faults of the disk or database (full, read-only,
I/O error, locked) and lets anything else through as a bug.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from ..errors import ServiceUnavailable
from ..models import ActivateVersion, LoadResult, TableBatch
from . import sql
from .loading import (
    LoadPlan,
    Rejection,
    RowsStep,
    TableState,
    now_text,
    plan_load,
    raw_record,
    row_params,
    table_name_problem,
)
from .paths import REJECTED_TABLE, NameTooLong, integration_dir, table_path

logger = logging.getLogger(__name__)

# SQLite primary result codes that mean "the disk or database cannot take writes right now".
_UNAVAILABLE_CODES = {
    3,  # SQLITE_PERM
    5,  # SQLITE_BUSY
    6,  # SQLITE_LOCKED
    8,  # SQLITE_READONLY
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
}

_REJECTED_DDL = (
    f"CREATE TABLE IF NOT EXISTS {sql.q(REJECTED_TABLE)} ("
    "_sdc_rejected_at TEXT NOT NULL, table_name TEXT NOT NULL, reason TEXT NOT NULL, "
    "record TEXT NOT NULL)"
)


@dataclass(eq=False)
class _TableDb:
    path: Path
    conn: aiosqlite.Connection
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Store:
    def __init__(self, data_dir: Path, *, max_open_tables: int = 64) -> None:
        self.data_dir = data_dir
        self._max_open = max_open_tables
        self._open: OrderedDict[Path, _TableDb] = OrderedDict()
        self._pool_lock = asyncio.Lock()

    async def close(self) -> None:
        async with self._pool_lock:
            while self._open:
                _, tdb = self._open.popitem(last=False)
                async with tdb.lock:
                    await tdb.conn.close()

    def problem(self) -> str | None:
        """Why the store cannot take writes now, or None (for ``/v2/import/status``)."""
        if not self.data_dir.is_dir():
            return f"data directory {self.data_dir} does not exist"
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            return f"data directory {self.data_dir} is not writable"
        return None

    async def load(
        self, client_id: int, integration: str, batch: TableBatch, received_at: str
    ) -> LoadResult:
        """Load one table's data points in one transaction; rejected ones go to _sdc_rejected."""
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

        with _unavailable_on_disk_faults():
            async with self._table_db(path) as tdb:
                plan, accepted = await self._load_in_transaction(tdb.conn, batch, received_at)
        await self._log_rejections(client_id, integration, batch.table_name, plan.rejected)
        return LoadResult(
            batch.table_name, accepted, plan.accepted_upserts - accepted, len(plan.rejected)
        )

    async def _load_in_transaction(
        self, db: aiosqlite.Connection, batch: TableBatch, received_at: str
    ) -> tuple[LoadPlan, int]:
        table = batch.table_name
        await db.execute("BEGIN IMMEDIATE")
        try:
            state = await _table_state(db, table)
            plan = plan_load(batch, state, received_at, now_text())
            if not state.exists and plan.accepted_upserts:
                await db.execute(sql.create_table_sql(table, plan.key_names, plan.create_columns))
                keys = json.dumps(list(plan.key_names))
                await db.execute(sql.INSERT_META, (table, keys, now_text()))
            for column in plan.add_columns:
                await db.execute(sql.add_column_sql(table, column))
            accepted = 0
            if state.exists or plan.accepted_upserts:
                accepted = await _run_steps(db, table, plan)
                if batch.bookmark_names is not None:
                    bookmarks = json.dumps(list(batch.bookmark_names))
                    await db.execute(sql.SET_BOOKMARKS, (bookmarks, table))
            await db.execute("COMMIT")
        except BaseException:
            await _rollback(db)
            raise
        return plan, accepted

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
        with _unavailable_on_disk_faults():
            async with self._table_db(path) as tdb:
                await tdb.conn.execute(_REJECTED_DDL)
                await tdb.conn.executemany(
                    f"INSERT INTO {sql.q(REJECTED_TABLE)} VALUES (?, ?, ?, ?)", rows
                )
        logger.info("rejected %d record(s) for table %r", len(rows), table_name)

    @asynccontextmanager
    async def _table_db(self, path: Path) -> AsyncIterator[_TableDb]:
        async with self._pool_lock:
            tdb = self._open.get(path)
            if tdb is None:
                tdb = _TableDb(path, await _connect(path))
                self._open[path] = tdb
                await self._evict_idle()
            else:
                self._open.move_to_end(path)
            tdb.users += 1
        try:
            async with tdb.lock:
                yield tdb
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


async def _connect(path: Path) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path, isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a 2xx means the data survives power loss, not just a process crash.
        await conn.execute("PRAGMA synchronous=FULL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute(sql.META_DDL)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _rollback(db: aiosqlite.Connection) -> None:
    # After a failed COMMIT (disk full, I/O error) SQLite may have rolled back already.
    try:
        await db.execute("ROLLBACK")
    except sqlite3.Error:
        pass


async def _table_state(db: aiosqlite.Connection, table: str) -> TableState:
    cursor = await db.execute(
        f"SELECT key_names FROM {sql.q(sql.META_TABLE)} WHERE table_name = ?", (table,)
    )
    row = await cursor.fetchone()
    if row is None:
        return TableState(exists=False)
    columns = await db.execute_fetchall("SELECT name FROM pragma_table_info(?)", (table,))
    system = set(sql.SYSTEM_COLUMNS) | {sql.PRIMARY_KEY}
    return TableState(
        exists=True,
        key_names=tuple(json.loads(row[0])),
        columns=tuple(c[0] for c in columns if c[0] not in system),
    )


async def _run_steps(db: aiosqlite.Connection, table: str, plan: LoadPlan) -> int:
    """Apply upserts and activations in request order; the number of rows the upserts changed."""
    columns = [
        c[0] for c in await db.execute_fetchall("SELECT name FROM pragma_table_info(?)", (table,))
    ]
    upsert = sql.upsert_sql(table, columns, plan.key_names)
    delete, activate = sql.activate_version_sql(table)
    changed = 0
    for step in plan.steps:
        if isinstance(step, RowsStep):
            cursor = await db.executemany(
                upsert, [row_params(r, columns, table) for r in step.rows]
            )
            changed += cursor.rowcount
        else:
            assert isinstance(step, ActivateVersion)
            await db.execute(delete, (step.table_version, table))
            await db.execute(activate, (step.table_version, table))
    return changed


class _unavailable_on_disk_faults:
    """Turn disk and database faults into 503s; anything else is a bug and propagates."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, sqlite3.Error) and (
            getattr(exc, "sqlite_errorcode", 0) & 0xFF in _UNAVAILABLE_CODES
        ):
            logger.warning("storage unavailable: %s", exc)
            raise ServiceUnavailable() from exc
        if isinstance(exc, OSError):
            logger.warning("storage unavailable: %s", exc)
            raise ServiceUnavailable() from exc
