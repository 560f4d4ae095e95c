"""Reading the PostgreSQL destination for the admin API and the CLI: integrations, tables, rows
and rejected records, with each value as the SQLite destination shows it (timestamps and decimals
as text, booleans as 0 and 1), so a test or a tool reads both alike.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Any

from psycopg import AsyncConnection

from ...plan.names import PRIMARY_KEY
from ...plan.shape import decimal_text, utc_text
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
from .sql import OURS, REJECTED_TABLE, quote, table_ref


async def list_integrations(conn: AsyncConnection[Any]) -> list[IntegrationSummary]:
    """Every integration that holds tables or rejected records, with its tables."""
    cursor = await conn.execute(f"SELECT client_id, name FROM {OURS}.integrations ORDER BY 1, 2")
    found = []
    for client_id, name in await cursor.fetchall():
        tables = await list_tables(conn, client_id, name)
        if tables:
            found.append(IntegrationSummary(int(client_id), name, tables))
    return found


async def _owner(conn: AsyncConnection[Any], integration: str) -> int | None:
    cursor = await conn.execute(
        f"SELECT client_id FROM {OURS}.integrations WHERE name = $1", (integration,)
    )
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def list_tables(
    conn: AsyncConnection[Any], client_id: int, integration: str
) -> list[TableSummary]:
    """One integration's tables with row and rejected counts; then, by name, the tables that
    have only rejected records."""
    if await _owner(conn, integration) != client_id:
        return []
    cursor = await conn.execute(
        f"SELECT table_name, parent_table FROM {OURS}.tables WHERE schema_name = $1 "
        "ORDER BY table_name",
        (integration,),
    )
    meta = await cursor.fetchall()
    rejected = {r.table_name: r.count for r in await _reasons(conn, integration, None, False)}
    tables = []
    for name, parent in meta:
        if parent is not None:
            continue
        children = [
            TableSummary(child, await _count(conn, integration, child, ()))
            for child, of in meta
            if of == name
        ]
        rows = await _count(conn, integration, name, ())
        tables.append(TableSummary(name, rows, children, rejected.pop(name, 0)))
    tables += [TableSummary(n, 0, rejected=count) for n, count in sorted(rejected.items())]
    return tables


async def open_table(
    conn: AsyncConnection[Any], client_id: int, integration: str, table: str
) -> PostgresTableReader | None:
    """A reader for one table (top-level or subtable), or None if it does not exist."""
    if await _owner(conn, integration) != client_id:
        return None
    cursor = await conn.execute(
        f"SELECT column_name, type FROM {OURS}.columns WHERE schema_name = $1 "
        "AND table_name = $2 ORDER BY position",
        (integration, table),
    )
    columns = await cursor.fetchall()
    if not columns:
        return None
    return PostgresTableReader(conn, integration, table, [(c, t) for c, t in columns])


class PostgresTableReader:
    """One table of an open connection: its description and rows."""

    path = None  # not a file of its own

    def __init__(
        self,
        conn: AsyncConnection[Any],
        schema: str,
        table: str,
        columns: list[tuple[str, str]],
    ) -> None:
        self._conn = conn
        self._schema = schema
        self.table = table
        self.columns = [name for name, _ in columns]
        self._types = dict(columns)

    async def count(self, where: Where = ()) -> int:
        self._check(where)
        return await _count(self._conn, self._schema, self.table, where)

    async def rows(self, where: Where = (), *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        self._check(where)
        sql, params = await self._query(where)
        n = len(params)
        cursor = await self._conn.execute(
            f"{sql} LIMIT ${n + 1} OFFSET ${n + 2}", [*params, limit, offset]
        )
        return [
            dict(zip(self.columns, self._shown(row), strict=True))
            for row in await cursor.fetchall()
        ]

    async def chunks(self, where: Where = (), size: int = 500) -> AsyncIterator[list[Any]]:
        self._check(where)
        sql, params = await self._query(where)
        cursor = self._conn.cursor(name="export")  # server-side: the table is never all in memory
        async with self._conn.transaction():
            await cursor.execute(sql, params)
            while rows := await cursor.fetchmany(size):
                yield [tuple(self._shown(row)) for row in rows]
            await cursor.close()

    async def describe(self) -> TableDescription:
        cursor = await self._conn.execute(
            f"SELECT table_name, parent_table, key_names, active_version, bookmark_names, "
            f"created_at FROM {OURS}.tables WHERE schema_name = $1 "
            "AND (table_name = $2 OR parent_table = $2 OR table_name = "
            f"(SELECT parent_table FROM {OURS}.tables WHERE schema_name = $1 AND table_name = $2))",
            (self._schema, self.table),
        )
        meta = await cursor.fetchall()
        mine = next(m for m in meta if m[0] == self.table)
        top = next(m for m in meta if m[1] is None)
        return TableDescription(
            name=self.table,
            parent=mine[1],
            key_names=json.loads(top[2]),
            active_version=top[3],
            bookmark_names=None if top[4] is None else json.loads(top[4]),
            created_at=mine[5],
            columns=[Column(name, self._types[name]) for name in self.columns],
            rows=await self.count(),
            subtables=sorted(m[0] for m in meta if m[1] == self.table),
        )

    async def _query(self, where: Where) -> tuple[str, list[Any]]:
        clause, params = _where_sql(where)
        order = await self._order()
        order_by = f" ORDER BY {', '.join(quote(c) for c in order)}" if order else ""
        names = ", ".join(quote(c) for c in self.columns)
        return (
            f"SELECT {names} FROM {table_ref(self._schema, self.table)}{clause}{order_by}",
            params,
        )

    async def _order(self) -> list[str]:
        """Key order, which pages stably; an append-only table's key is random: insertion."""
        cursor = await self._conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            (table_ref(self._schema, self.table),),
        )
        keys = [row[0] for row in await cursor.fetchall()]
        return [] if keys == [PRIMARY_KEY] else keys

    def _shown(self, row: Sequence[Any]) -> list[Any]:
        return [as_sqlite_holds(value) for value in row]

    def _check(self, where: Where) -> None:
        for column, _ in where:
            if column not in self.columns:
                raise UnknownColumn(column)


def as_sqlite_holds(value: Any) -> Any:
    """A value as the SQLite destination holds it (booleans as 0/1, decimals and timestamps as
    text), so what either destination stored reads alike."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    return value


def _where_sql(where: Where) -> tuple[str, list[str]]:
    if not where:
        return "", []
    clauses = " AND ".join(
        f"CAST({quote(column)} AS text) = ${n}" for n, (column, _) in enumerate(where, 1)
    )
    return f" WHERE {clauses}", [value for _, value in where]


async def _count(conn: AsyncConnection[Any], schema: str, table: str, where: Where) -> int:
    clause, params = _where_sql(where)
    cursor = await conn.execute(f"SELECT count(*) FROM {table_ref(schema, table)}{clause}", params)
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def _rejected_exists(conn: AsyncConnection[Any], schema: str) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2",
        (schema, REJECTED_TABLE),
    )
    return await cursor.fetchone() is not None


async def _reasons(
    conn: AsyncConnection[Any], schema: str, table: str | None, by_reason: bool
) -> list[RejectionReason]:
    if not await _rejected_exists(conn, schema):
        return []
    group = "table_name, reason" if by_reason else "table_name"
    reason = "reason" if by_reason else "''"
    clause, params = ("WHERE table_name = $1 ", [table]) if table is not None else ("", [])
    cursor = await conn.execute(
        f"SELECT table_name, {reason}, count(*), max(_sdc_rejected_at) "
        f"FROM {table_ref(schema, REJECTED_TABLE)} {clause}GROUP BY {group} "
        "ORDER BY count(*) DESC, table_name, 2",
        params,
    )
    return [
        RejectionReason(name, why, int(count), utc_text(at))
        for name, why, count, at in await cursor.fetchall()
    ]


async def rejection_reasons(
    conn: AsyncConnection[Any], client_id: int, integration: str, table: str | None
) -> list[RejectionReason]:
    if await _owner(conn, integration) != client_id:
        return []
    return await _reasons(conn, integration, table, True)


async def rejected_records(
    conn: AsyncConnection[Any],
    client_id: int,
    integration: str,
    table: str | None,
    *,
    limit: int,
    offset: int,
) -> tuple[int, list[RejectedRecord]]:
    if await _owner(conn, integration) != client_id or not await _rejected_exists(
        conn, integration
    ):
        return 0, []
    clause, params = ("WHERE table_name = $1 ", [table]) if table is not None else ("", [])
    rejected = table_ref(integration, REJECTED_TABLE)
    cursor = await conn.execute(f"SELECT count(*) FROM {rejected} {clause}", params)
    row = await cursor.fetchone()
    total = int(row[0]) if row else 0
    cursor = await conn.execute(
        f"SELECT _sdc_rejected_at, table_name, reason, record FROM {rejected} {clause}"
        f"ORDER BY _sdc_rejected_at DESC, ctid DESC LIMIT ${len(params) + 1} "
        f"OFFSET ${len(params) + 2}",
        [*params, limit, offset],
    )
    return total, [
        RejectedRecord(utc_text(at), name, why, json.loads(raw))
        for at, name, why, raw in await cursor.fetchall()
    ]
