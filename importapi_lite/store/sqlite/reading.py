"""Reading the store for the admin API and the CLI: what exists, a table's shape, its rows, and
the records rejected while loading (``_sdc_rejected``), which a user must find without digging.

Reads use their own read-only connections (``mode=ro``), never the writers' pool: in WAL mode
they see the last commit without waiting for a load, and a table that is gone (reset) is
reported as missing instead of being created afresh as an empty file. Each connection runs on
a thread of its own (``thread.py``), so a read never blocks the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..destination import (
    Column,
    IntegrationSummary,
    RejectedRecord,
    RejectionReason,
    TableDescription,
    TableSummary,
    UnknownColumn,
    Where,
)
from .paths import (
    DB_SUFFIX,
    REJECTED_TABLE,
    NameTooLong,
    decode_name,
    integration_dir,
    rejected_path,
    table_path,
)
from .sql import COLUMNS_TABLE, META_TABLE, PRIMARY_KEY, q
from .thread import ConnectionThread

_CLIENT_FOLDER = re.compile(r"-?[0-9]+")  # str(int(client_id)), as paths.integration_dir writes


def client_dirs(data_dir: Path) -> list[tuple[int, Path]]:
    """Every client folder, by client id (other entries of the data directory are not clients)."""
    found = []
    if data_dir.is_dir():
        for entry in data_dir.iterdir():
            if entry.is_dir() and _CLIENT_FOLDER.fullmatch(entry.name):
                found.append((int(entry.name), entry))
    return sorted(found)


def table_files(integration_dir: Path) -> list[Path]:
    """The top-level tables' database files of one integration folder."""
    return sorted(
        p
        for p in integration_dir.glob("*" + DB_SUFFIX)
        if p.name != REJECTED_TABLE + DB_SUFFIX and p.is_file()
    )


async def list_integrations(data_dir: Path) -> list[IntegrationSummary]:
    """Every client's integrations that hold data, with their tables and row counts."""
    found = []
    for client_id, folder in client_dirs(data_dir):
        for integration in sorted(p for p in folder.iterdir() if p.is_dir()):
            tables = await _tables_in(integration)
            found.append(IntegrationSummary(client_id, decode_name(integration.name), tables))
    return found


async def list_tables(data_dir: Path, client_id: int, integration: str) -> list[TableSummary]:
    """One integration's tables with row counts; empty if it holds no data."""
    try:
        folder = integration_dir(data_dir, client_id, integration)
    except NameTooLong:
        return []
    return await _tables_in(folder)


async def _tables_in(folder: Path) -> list[TableSummary]:
    """The folder's tables, each with its rejected count; then, by name, the tables that have
    only rejected records (no row ever loaded, so no file)."""
    rejected = {r.table_name: r.count for r in await _reasons_in(folder, None, by_reason=False)}
    tables = []
    for path in table_files(folder):
        summary = await _summarise(path)
        if summary is not None:
            count = rejected.pop(summary.name, 0)
            tables.append(dataclasses.replace(summary, rejected=count))
    tables += [TableSummary(name, 0, rejected=count) for name, count in sorted(rejected.items())]
    return tables


async def _summarise(path: Path) -> TableSummary | None:
    async with _read_only(path) as db:
        if db is None:
            return None
        meta = await _fetchall(
            db, f"SELECT table_name, parent_table FROM {q(META_TABLE)} ORDER BY rowid"
        )
        counts = {name: await _count(db, name, ()) for name, _ in meta}
    top = [name for name, parent in meta if parent is None]
    if not top:
        return None
    children = [TableSummary(n, counts[n], path=path) for n, parent in meta if parent is not None]
    return TableSummary(top[0], counts[top[0]], children, path=path)


@asynccontextmanager
async def open_table(
    data_dir: Path, client_id: int, integration: str, table: str
) -> AsyncIterator[TableReader | None]:
    """A reader for one table (top-level or subtable), or None if it does not exist."""
    for path in _candidate_files(data_dir, client_id, integration, table):
        async with _read_only(path) as db:
            if db is None:
                continue
            columns = [
                row[0]
                for row in await _fetchall(
                    db,
                    f"SELECT column_name FROM {q(COLUMNS_TABLE)} WHERE table_name = ? "
                    "ORDER BY position",
                    (table,),
                )
            ]
            if columns:
                keys = await _fetchall(
                    db, "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)
                )
                yield TableReader(db, path, table, columns, [k[0] for k in keys])
                return
    yield None


def _candidate_files(data_dir: Path, client_id: int, integration: str, table: str) -> list[Path]:
    # A subtable lives in its top-level table's file, and "a__b__c" may be table "a__b"'s
    # subtable "c" or table "a"'s subtable "b__c": try every prefix, longest first.
    # The rejected records' file holds no table: a rejected record may be named after it.
    parts = table.split("__")
    paths = []
    for n in range(len(parts), 0, -1):
        top = "__".join(parts[:n])
        if top == REJECTED_TABLE:
            continue
        try:
            paths.append(table_path(data_dir, client_id, integration, top))
        except NameTooLong:
            continue
    return paths


@asynccontextmanager
async def _read_only(path: Path) -> AsyncIterator[ConnectionThread | None]:
    if not path.is_file():
        yield None
        return
    # as_uri() percent-encodes the path, so an encoded file name (%55sers) stays itself.
    uri = path.resolve().as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        db = sqlite3.connect(uri, uri=True)
        db.execute("PRAGMA busy_timeout=5000")
        return db

    try:
        db = await ConnectionThread.open(connect, name=f"sqlite read {path.name}")
    except sqlite3.OperationalError:
        yield None  # deleted between the check and the open
        return
    try:
        yield db
    finally:
        await db.close()


async def _fetchall(db: ConnectionThread, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    return await db.run(lambda connection: connection.execute(sql, params).fetchall())


async def _count(db: ConnectionThread, table: str, where: Where) -> int:
    sql, params = count_query(table, where)
    rows = await _fetchall(db, sql, params)
    return int(rows[0][0])


class TableReader:
    """One table of an open read-only connection: its description and rows."""

    def __init__(
        self,
        db: ConnectionThread,
        path: Path,
        table: str,
        columns: list[str],
        key_columns: list[str],
    ) -> None:
        self._db = db
        self.path = path  # the database file (a subtable's is its top-level table's)
        self.table = table
        self.columns = columns
        # Key order pages stably; an append-only table's key is random, so it keeps arrival order.
        self._order = [] if key_columns == [PRIMARY_KEY] else key_columns

    async def count(self, where: Where = ()) -> int:
        self._check(where)
        return await _count(self._db, self.table, where)

    async def rows(self, where: Where = (), *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        self._check(where)
        sql, params = rows_query(
            self.table, self.columns, where, self._order, limit=limit, offset=offset
        )
        return [dict(zip(self.columns, row, strict=True)) for row in await self._fetch(sql, params)]

    async def chunks(self, where: Where = (), size: int = 500) -> AsyncIterator[list[Any]]:
        """Every matching row as a value tuple in ``columns`` order, ``size`` rows at a time."""
        self._check(where)
        sql, params = rows_query(self.table, self.columns, where, self._order)
        cursor = await self._db.run(lambda connection: connection.execute(sql, params))
        try:
            while rows := await self._db.run(lambda _: cursor.fetchmany(size)):
                yield rows
        finally:
            await self._db.run(lambda _: cursor.close())

    async def describe(self) -> TableDescription:
        meta = await self._fetch(
            f"SELECT table_name, parent_table, key_names, active_version, bookmark_names, "
            f"created_at FROM {q(META_TABLE)} ORDER BY rowid",
            (),
        )
        mine = next(m for m in meta if m[0] == self.table)
        top = next(m for m in meta if m[1] is None)
        types = await self._fetch(
            f"SELECT column_name, type FROM {q(COLUMNS_TABLE)} WHERE table_name = ? "
            "ORDER BY position",
            (self.table,),
        )
        return TableDescription(
            name=self.table,
            parent=mine[1],
            key_names=json.loads(top[2]),
            active_version=top[3],
            bookmark_names=None if top[4] is None else json.loads(top[4]),
            created_at=mine[5],
            columns=[Column(name, type_) for name, type_ in types],
            rows=await self.count(),
            subtables=[m[0] for m in meta if m[1] == self.table],
        )

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return await _fetchall(self._db, sql, params)

    def _check(self, where: Where) -> None:
        for column, _ in where:
            if column not in self.columns:
                raise UnknownColumn(column)


def _where_sql(where: Where) -> tuple[str, list[str]]:
    if not where:
        return "", []
    # CAST AS TEXT: a filter value arrives as text; 1, 1.5 and 'a' compare as written.
    clauses = " AND ".join(f"CAST({q(column)} AS TEXT) = ?" for column, _ in where)
    return f" WHERE {clauses}", [value for _, value in where]


def count_query(table: str, where: Where) -> tuple[str, list[Any]]:
    clause, params = _where_sql(where)
    return f"SELECT count(*) FROM {q(table)}{clause}", params


def rows_query(
    table: str,
    columns: Sequence[str],
    where: Where,
    order: Sequence[str] = (),
    *,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[str, list[Any]]:
    """Rows ordered by the ``order`` columns, or in arrival order (rowid) if there are none."""
    clause, params = _where_sql(where)
    # A user column may be called rowid; SQLite's other names for it are the fallbacks.
    rowid = next((n for n in ("rowid", "_rowid_", "oid") if n not in columns), "rowid")
    order_by = ", ".join(q(c) for c in order) or rowid
    sql = f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)}{clause} ORDER BY {order_by}"
    if limit is None:
        return sql, params
    return sql + " LIMIT ? OFFSET ?", [*params, limit, offset]


async def rejection_reasons(
    data_dir: Path, client_id: int, integration: str, table: str | None = None
) -> list[RejectionReason]:
    """Why records were rejected, by table and reason, most frequent first; one table's only
    if ``table`` is given."""
    try:
        folder = integration_dir(data_dir, client_id, integration)
    except NameTooLong:
        return []
    return await _reasons_in(folder, table, by_reason=True)


async def _reasons_in(folder: Path, table: str | None, *, by_reason: bool) -> list[RejectionReason]:
    """Rejected counts by table (and reason, if ``by_reason``; else ``reason`` is "")."""
    group = "table_name, reason" if by_reason else "table_name"
    reason = "reason" if by_reason else "''"
    clause, params = ("WHERE table_name = ? ", [table]) if table is not None else ("", [])
    query = (
        f"SELECT table_name, {reason}, count(*), max(_sdc_rejected_at) FROM {q(REJECTED_TABLE)} "
        f"{clause}GROUP BY {group} ORDER BY count(*) DESC, table_name, 2"
    )
    async with _read_only(folder / (REJECTED_TABLE + DB_SUFFIX)) as db:
        if db is None:
            return []
        found = await _fetchall(db, query, params)
    return [RejectionReason(*row) for row in found]


async def rejected_records(
    data_dir: Path,
    client_id: int,
    integration: str,
    table: str | None = None,
    *,
    limit: int,
    offset: int = 0,
) -> tuple[int, list[RejectedRecord]]:
    """The total and one page of rejected records (one table's if ``table``), newest first."""
    try:
        path = rejected_path(data_dir, client_id, integration)
    except NameTooLong:
        return 0, []
    clause, params = ("WHERE table_name = ? ", [table]) if table is not None else ("", [])
    async with _read_only(path) as db:
        if db is None:
            return 0, []
        [(total,)] = await _fetchall(
            db, f"SELECT count(*) FROM {q(REJECTED_TABLE)} {clause}", params
        )
        page = await _fetchall(
            db,
            "SELECT _sdc_rejected_at, table_name, reason, record "
            f"FROM {q(REJECTED_TABLE)} {clause}ORDER BY rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
    return int(total), [
        RejectedRecord(at, name, why, json.loads(raw)) for at, name, why, raw in page
    ]
