"""The PostgreSQL destination: the loading model in a PostgreSQL database, as Stitch loads one.

Each integration is a schema named as the integration; each table is named exactly as the Stitch
table, with the SQLite layout's columns in PostgreSQL's types (``sql.SQL_TYPES``); subtables and
``_sdc_rejected`` sit beside them. Our bookkeeping (tables' layouts, tokens) is in the schema
``_importapi``. Any number of server processes may share the database:

- one table's load is one transaction, which first takes a transaction-scoped advisory lock on
  the table, so loads of one table (from any process) go one after another and loads of
  different tables never wait on each other, nor deadlock (each takes one lock);
- each process keeps a copy of each table's layout with the layout version it read; a load
  reads the version (one row) under its lock and reads the layout again when another process
  changed it;
- the sequence rule and table versions are decided in the statements that write (``sql.py``);
  a step of a few data points without subtables goes in one statement a point, a bigger one
  (or any with subtables) through COPY into a temp table and one upsert of each key's newest row.

A value PostgreSQL refuses (a numeric past its range, text with a NUL) fails the statement with
a data exception (SQLSTATE class 22): the table's data points are then loaded again one by one,
each in a savepoint, and those refused go to ``_sdc_rejected`` with PostgreSQL's words. A lost
connection or a server that is down is a 503; the clients retry, and the sequence rule makes a
retry harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import psycopg
import psycopg_pool
from psycopg import AsyncConnection
from psycopg.errors import DataError
from psycopg_pool import AsyncConnectionPool

from ...clock import now_text
from ...errors import ServiceUnavailable
from ...models import ActivateVersion, LoadResult, TableBatch
from ...observe.metrics import COMMIT_GROUP_SIZE, COMMIT_SECONDS
from ...plan.model import (
    Layout,
    LoadPlan,
    Rejection,
    RowsStep,
    TableInfo,
    cells,
    layout_from_rows,
    ordered_columns,
    raw_record,
)
from ...plan.names import CHILD_SYSTEM, PARENT_SYSTEM, Limits
from ...plan.plans import plan_load
from ..destination import (
    DestinationUnavailable,
    IntegrationSummary,
    RejectedRecord,
    RejectionReason,
    Staged,
    Stager,
    StalePlan,
    TableReader,
    TableSummary,
)
from . import reading, sql, staging
from .sql import OURS, quote, table_ref
from .staging import CopyRows, StagedLoad, copy_rows
from .tokens import unreachable

logger = logging.getLogger(__name__)

# Stitch's PostgreSQL limits (SPEC §13.9): 63-byte table names, 59-character column names
# (a split suffix still fits PostgreSQL's 63 bytes), 1,600 columns a table less room for ours.
LIMITS = Limits(
    max_columns=1600 - 16, max_table_name_bytes=63, max_column_name=59, empty_column_name=False
)
SMALL_STEP = 32  # data points a statement each; a bigger step goes through COPY


class PostgresDestination:
    """The ``destination.Destination`` of a PostgreSQL database (libpq URL)."""

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        self._url = url
        self._pool = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            # Raw cursors: PostgreSQL's own $1 placeholders, so nothing parses the statements,
            # whose table and column names (ours to quote) may hold a "%".
            # Never prepared: a table is dropped and made again with other types (a reset, another
            # process), and a statement prepared for the old one would fail on the new.
            kwargs={
                "autocommit": True,
                "cursor_factory": psycopg.AsyncRawCursor,
                "prepare_threshold": None,
            },
            check=AsyncConnectionPool.check_connection,  # no dead connection handed out
            timeout=5,  # waiting longer for a connection: PostgreSQL is down, or swamped
        )
        self._opened = False
        # Each table family's layout, with the layout version it was read at.
        self._layouts: dict[tuple[str, str], tuple[int, Layout]] = {}
        self._schemas: set[str] = set()  # made: no CREATE SCHEMA again
        self._changed = asyncio.Event()
        self._stopping = False

    # --- lifetime -----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._open()

    async def _open(self) -> None:
        """On first use: our schema made, then the pool opened. PostgreSQL unreachable then is
        ``DestinationUnavailable``, at once (the pool would keep trying, and logging it)."""
        if self._opened:
            return
        try:
            async with await AsyncConnection.connect(
                self._url, autocommit=True, connect_timeout=5
            ) as conn:
                await ensure_metadata(conn)
        except psycopg.OperationalError as exc:
            raise DestinationUnavailable(unreachable(self._url, exc)) from None
        await self._pool.open(wait=False)
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False

    @contextlib.contextmanager
    def guard_writes(self) -> Iterator[None]:
        """PostgreSQL down, restarting or refusing connections: a 503 (the clients retry)."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            logger.warning("PostgreSQL unavailable: %s", _first_line(exc))
            raise ServiceUnavailable() from exc
        except psycopg_pool.PoolTimeout as exc:  # no connection from the pool in time
            logger.warning("PostgreSQL unavailable: no connection in time")
            raise ServiceUnavailable() from exc

    async def problem(self) -> str | None:
        try:
            await self._open()
            async with self._pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # anything: the answer is "not ready", with why
            return f"PostgreSQL unavailable: {_first_line(exc)}"
        return None

    def next_change(self) -> asyncio.Event:
        return self._changed

    def stop_waiters(self) -> None:
        self._stopping = True
        self._changed.set()

    @property
    def is_stopping(self) -> bool:
        return self._stopping

    def _notify_change(self) -> None:
        self._changed.set()
        if not self._stopping:
            self._changed = asyncio.Event()

    # --- loading ------------------------------------------------------------------------------

    def layouts(self, client_id: int, integration: str) -> dict[str, Layout]:
        return {
            top: layout
            for (schema, top), (_, layout) in self._layouts.items()
            if schema == integration
        }

    def stager(self, client_id: int, integration: str) -> Stager:
        return partial(staging.stage, limits=LIMITS)  # a module function: it pickles

    async def load(
        self, client_id: int, integration: str, load: TableBatch | Staged, received_at: str
    ) -> LoadResult:
        """Load one table's data points in one transaction; rejected ones go to _sdc_rejected.

        A ``StagedLoad`` (planned in a worker) raises ``StalePlan`` if the table's layout is no
        longer the one it was planned against, or if PostgreSQL refuses a value in it (which
        only a load one data point at a time, planned here, can find); nothing is written then.
        """
        if not isinstance(load, (TableBatch, StagedLoad)):  # noqa: UP038 - a tuple is faster
            raise TypeError(f"not a load for PostgreSQL: {type(load).__name__}")
        await self._open()
        name = load.table_name
        problem = LIMITS.table_problem(name)
        if problem is not None:
            assert isinstance(load, TableBatch)  # a worker leaves such a batch as it is
            rejections = [Rejection(problem, raw_record(m)) for m in load.messages]
            await self._log_rejections(integration, name, rejections)
            return _result(name, 0, 0, rejections)
        with self.guard_writes():
            plan, accepted = await self._load(integration, load, received_at)
        await self._log_rejections(integration, name, plan.rejected)
        self._notify_change()
        return _result(name, accepted, plan.accepted_upserts - accepted, plan.rejected)

    async def _load(
        self, schema: str, load: TableBatch | StagedLoad, received_at: str
    ) -> tuple[LoadPlan, int]:
        async with self._pool.connection() as conn:
            await self._ensure_schema(conn, schema)
            try:
                return await self._load_in_one(conn, schema, load, received_at)
            except DataError:  # a value PostgreSQL refuses: find which, one by one
                if isinstance(load, StagedLoad):
                    raise StalePlan(load.table_name, here=True) from None
                return await self._load_one_by_one(conn, schema, load, received_at)

    async def _load_in_one(
        self,
        conn: AsyncConnection[Any],
        schema: str,
        load: TableBatch | StagedLoad,
        received_at: str,
    ) -> tuple[LoadPlan, int]:
        name = load.table_name
        started = time.perf_counter()
        async with conn.transaction():
            layout, version = await self._lock_table(conn, schema, name)
            if isinstance(load, StagedLoad):
                if layout != load.planned_for:
                    self._layouts[(schema, name)] = (version, layout)  # to plan against again
                    raise StalePlan(name)
                plan = load.plan
            else:
                plan = plan_load(load, layout, received_at, now_text(), limits=LIMITS)
            version = await self._apply(conn, schema, load, plan, version)
            accepted = await _run_steps(conn, schema, plan) if plan.table is not None else 0
        COMMIT_SECONDS.labels("postgresql").observe(time.perf_counter() - started)
        COMMIT_GROUP_SIZE.labels("postgresql").observe(1)
        self._layouts[(schema, name)] = (version, plan.layout)
        return plan, accepted

    async def _load_one_by_one(
        self, conn: AsyncConnection[Any], schema: str, batch: TableBatch, received_at: str
    ) -> tuple[LoadPlan, int]:
        """The batch again, each data point in a savepoint: the ones PostgreSQL refuses are
        rejected with its words, the rest load as they would have."""
        accepted = upserts = 0
        refused: list[Rejection] = []
        rejected: list[Rejection] = []
        async with conn.transaction():
            layout, version = await self._lock_table(conn, schema, batch.table_name)
            for message in batch.messages:
                one = TableBatch(batch.table_name, [message], batch.bookmark_names, batch.schema)
                plan = plan_load(one, layout, received_at, now_text(), limits=LIMITS)
                try:
                    async with conn.transaction():  # a savepoint
                        new_version = await self._apply(conn, schema, one, plan, version)
                        if plan.table is not None:
                            accepted += await _run_steps(conn, schema, plan)
                except DataError as exc:
                    refused.append(Rejection(_words(exc), raw_record(message)))
                    continue
                layout, version = plan.layout, new_version
                upserts += plan.accepted_upserts
                rejected += plan.rejected
        self._layouts[(schema, batch.table_name)] = (version, layout)
        whole = LoadPlan(
            table=layout.get(batch.table_name),
            layout=layout,
            new_tables=[],
            new_columns=[],
            steps=[],
            rejected=rejected + refused,
            accepted_upserts=upserts,
        )
        return whole, accepted

    async def _ensure_schema(self, conn: AsyncConnection[Any], schema: str) -> None:
        """The integration's schema, made (and committed) before any load needs it."""
        if schema not in self._schemas:
            await create_schema(conn, schema)
            self._schemas.add(schema)

    async def _lock_table(
        self, conn: AsyncConnection[Any], schema: str, table: str
    ) -> tuple[Layout, int]:
        """Take the table's lock for this transaction; its layout as committed, and version."""
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (f"table {schema}.{table}",)
        )
        cursor = await conn.execute(
            f"SELECT layout_version FROM {OURS}.tables WHERE schema_name = $1 AND table_name = $2",
            (schema, table),
        )
        found = await cursor.fetchone()
        if found is None:
            return {}, -1  # a new table
        version = int(found[0])
        cached = self._layouts.get((schema, table))
        if cached is not None and cached[0] == version:
            return cached[1], version
        return await read_layout(conn, schema, table), version

    async def _apply(
        self,
        conn: AsyncConnection[Any],
        schema: str,
        batch: TableBatch | StagedLoad,
        plan: LoadPlan,
        version: int,
    ) -> int:
        """Create what the plan needs and record it; the table's layout version after."""
        if plan.new_tables or plan.new_columns:
            await _apply_ddl(conn, schema, plan)
            cursor = await conn.execute(
                f"UPDATE {OURS}.tables SET layout_version = layout_version + 1 "
                "WHERE schema_name = $1 AND table_name = $2 RETURNING layout_version",
                (schema, batch.table_name),
            )
            row = await cursor.fetchone()
            assert row is not None
            version = int(row[0])
        if plan.table is not None and batch.bookmark_names is not None:
            await conn.execute(
                f"UPDATE {OURS}.tables SET bookmark_names = $1 "
                "WHERE schema_name = $2 AND table_name = $3",
                (json.dumps(list(batch.bookmark_names)), schema, batch.table_name),
            )
        return version

    async def _log_rejections(
        self, schema: str, table_name: str, rejections: list[Rejection]
    ) -> None:
        if not rejections:
            return
        at = now_text()
        rows = [
            # ensure_ascii: no NUL reaches a text column (the codec refused lone surrogates).
            (at, without_nul(table_name), without_nul(r.reason), json.dumps(r.record, default=str))
            for r in rejections
        ]
        with self.guard_writes():
            async with self._pool.connection() as conn:
                await self._ensure_schema(conn, schema)
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        f"INSERT INTO {table_ref(schema, sql.REJECTED_TABLE)} "
                        "VALUES ($1::timestamp, $2, $3, $4)",
                        rows,
                    )

    # --- reading ------------------------------------------------------------------------------

    async def integrations(self) -> list[IntegrationSummary]:
        await self._open()
        with self.guard_writes():
            async with self._pool.connection() as conn:
                return await reading.list_integrations(conn)

    async def tables(self, client_id: int, integration: str) -> list[TableSummary]:
        await self._open()
        with self.guard_writes():
            async with self._pool.connection() as conn:
                return await reading.list_tables(conn, client_id, integration)

    def open_table(
        self, client_id: int, integration: str, table: str
    ) -> AbstractAsyncContextManager[TableReader | None]:
        return self._open_table(client_id, integration, table)

    @asynccontextmanager
    async def _open_table(
        self, client_id: int, integration: str, table: str
    ) -> AsyncIterator[TableReader | None]:
        await self._open()
        async with self._pool.connection() as conn:
            yield await reading.open_table(conn, client_id, integration, table)

    async def rejection_reasons(
        self, client_id: int, integration: str, table: str | None = None
    ) -> list[RejectionReason]:
        await self._open()
        async with self._pool.connection() as conn:
            return await reading.rejection_reasons(conn, client_id, integration, table)

    async def rejected_records(
        self,
        client_id: int,
        integration: str,
        table: str | None = None,
        *,
        limit: int,
        offset: int = 0,
    ) -> tuple[int, list[RejectedRecord]]:
        await self._open()
        async with self._pool.connection() as conn:
            return await reading.rejected_records(
                conn, client_id, integration, table, limit=limit, offset=offset
            )

    # --- resetting ----------------------------------------------------------------------------

    async def reset_everything(self) -> int:
        clients = set()
        for summary in await self.integrations():
            if await self._drop_integration_data(summary.integration):
                clients.add(summary.client_id)
        return len(clients)

    async def reset_client(self, client_id: int) -> bool:
        await self._open()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(
                f"SELECT name FROM {OURS}.integrations WHERE client_id = $1", (client_id,)
            )
            names = [row[0] for row in await cursor.fetchall()]
        removed = 0
        for name in names:
            removed += await self._drop_integration_data(name)
        return removed > 0

    async def reset_table(self, client_id: int, integration: str, table: str) -> bool:
        await self._open()
        with self.guard_writes():
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    (f"table {integration}.{table}",),
                )
                family = await _family(conn, integration, table)
                for name in family:
                    await conn.execute(f"DROP TABLE IF EXISTS {table_ref(integration, name)}")
                await conn.execute(
                    f"DELETE FROM {OURS}.columns WHERE schema_name = $1 AND table_name = ANY($2)",
                    (integration, family),
                )
                await conn.execute(
                    f"DELETE FROM {OURS}.tables WHERE schema_name = $1 AND table_name = ANY($2)",
                    (integration, family),
                )
                forgotten = 0
                if await _exists(conn, integration, sql.REJECTED_TABLE):
                    cursor = await conn.execute(
                        f"DELETE FROM {table_ref(integration, sql.REJECTED_TABLE)} "
                        "WHERE table_name = $1",
                        (table,),
                    )
                    forgotten = cursor.rowcount
        self._layouts.pop((integration, table), None)
        return bool(family) or forgotten > 0

    async def _drop_integration_data(self, schema: str) -> int:
        """Every table of an integration's schema dropped, and its ``_sdc_rejected`` emptied
        (the schema and that table stay: every process may have seen them made); 1 if it held
        any."""
        with self.guard_writes():
            async with self._pool.connection() as conn, conn.transaction():
                cursor = await conn.execute(
                    f"SELECT table_name FROM {OURS}.tables WHERE schema_name = $1 "
                    "ORDER BY table_name",  # locks in one order: two resets never deadlock
                    (schema,),
                )
                names = [row[0] for row in await cursor.fetchall()]
                for name in names:
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                        (f"table {schema}.{name}",),
                    )
                    await conn.execute(f"DROP TABLE IF EXISTS {table_ref(schema, name)}")
                await conn.execute(f"DELETE FROM {OURS}.columns WHERE schema_name = $1", (schema,))
                await conn.execute(f"DELETE FROM {OURS}.tables WHERE schema_name = $1", (schema,))
                forgotten = 0
                if await _exists(conn, schema, sql.REJECTED_TABLE):
                    cursor = await conn.execute(
                        f"DELETE FROM {table_ref(schema, sql.REJECTED_TABLE)}"
                    )
                    forgotten = cursor.rowcount
        for key in [k for k in self._layouts if k[0] == schema]:
            del self._layouts[key]
        return 1 if names or forgotten else 0


def without_nul(text: str) -> str:
    """``text`` for a text column, which cannot hold a NUL: each written as JSON does, ``\\u0000``
    (a rejected name may hold one; the record itself is JSON already)."""
    return text.replace("\x00", "\\u0000")


def _first_line(exc: BaseException) -> str:
    """An error's first line (never more: a libpq message may go on with the connection's
    details), or its class."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _words(exc: psycopg.Error) -> str:
    """PostgreSQL's own words for a refused value, as a rejection's reason."""
    diag = exc.diag
    return diag.message_primary or str(exc).strip().splitlines()[0]


def _result(table_name: str, accepted: int, stale: int, rejections: list[Rejection]) -> LoadResult:
    if not rejections:
        return LoadResult(table_name, accepted, stale)
    reasons = Counter(r.reason for r in rejections)
    return LoadResult(table_name, accepted, stale, len(rejections), reasons)


async def ensure_metadata(conn: AsyncConnection[Any]) -> None:
    """Our schema and its tables, made once by whichever process comes first."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('importapi-lite', 0))")
        for statement in sql.METADATA_DDL:
            await conn.execute(statement)


async def create_schema(conn: AsyncConnection[Any], schema: str) -> None:
    """An integration's schema, with its ``_sdc_rejected``; under a lock, since two processes'
    CREATE SCHEMA IF NOT EXISTS can still collide."""
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (f"schema {schema}",)
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
        await conn.execute(sql.rejected_ddl(schema))


async def read_layout(conn: AsyncConnection[Any], schema: str, table: str) -> Layout:
    family = await conn.execute(
        f"SELECT table_name, parent_table, key_names FROM {OURS}.tables "
        "WHERE schema_name = $1 AND (table_name = $2 OR parent_table = $2) "
        "ORDER BY parent_table NULLS FIRST, table_name",
        (schema, table),
    )
    meta = [(n, p, json.loads(k)) for n, p, k in await family.fetchall()]
    found = await conn.execute(
        f"SELECT table_name, column_name, type FROM {OURS}.columns "
        "WHERE schema_name = $1 AND table_name = ANY($2) ORDER BY table_name, position",
        (schema, [n for n, _, _ in meta]),
    )
    columns: dict[str, list[tuple[str, str]]] = {}
    for name, column, type_ in await found.fetchall():
        columns.setdefault(name, []).append((column, type_))
    return layout_from_rows(meta, columns)


async def _family(conn: AsyncConnection[Any], schema: str, table: str) -> list[str]:
    cursor = await conn.execute(
        f"SELECT table_name FROM {OURS}.tables WHERE schema_name = $1 "
        "AND (table_name = $2 OR parent_table = $2)",
        (schema, table),
    )
    return [row[0] for row in await cursor.fetchall()]


async def _exists(conn: AsyncConnection[Any], schema: str, table: str) -> bool:
    cursor = await conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2", (schema, table)
    )
    return await cursor.fetchone() is not None


def _system(info: TableInfo) -> list[str]:
    return list(PARENT_SYSTEM if info.parent is None else CHILD_SYSTEM)


async def _apply_ddl(conn: AsyncConnection[Any], schema: str, plan: LoadPlan) -> None:
    """Create the tables and add the columns the plan needs, recording their Stitch types."""
    now = now_text()
    for name in plan.new_tables:
        info = plan.layout[name]
        system = _system(info)
        await conn.execute(
            sql.create_table_sql(schema, name, info.columns, info.key_columns, system)
        )
        await conn.execute(
            f"INSERT INTO {OURS}.tables (schema_name, table_name, parent_table, key_names, "
            "created_at) VALUES ($1, $2, $3, $4, $5)",
            (schema, name, info.parent, json.dumps(list(info.key_names)), now),
        )
        ordered = ordered_columns(list(info.columns), info.key_columns, system)
        async with conn.cursor() as cursor:
            await cursor.executemany(
                f"INSERT INTO {OURS}.columns VALUES ($1, $2, $3, $4, $5)",
                [(schema, name, c, info.columns[c], i) for i, c in enumerate(ordered)],
            )
    for name, column in plan.new_columns:
        type_ = plan.layout[name].columns[column]
        await conn.execute(sql.add_column_sql(schema, name, column, type_))
        await conn.execute(
            f"INSERT INTO {OURS}.columns VALUES ($1, $2, $3, $4, "
            f"(SELECT count(*) FROM {OURS}.columns WHERE schema_name = $1 AND table_name = $2))",
            (schema, name, column, type_),
        )


async def _run_steps(conn: AsyncConnection[Any], schema: str, plan: LoadPlan) -> int:
    """Apply upserts and activations in request order; the rows the upserts wrote."""
    table = plan.table
    assert table is not None
    columns = list(table.columns)
    subtables = plan.subtables
    written = 0
    for step in plan.steps:
        if isinstance(step, ActivateVersion):
            names = [*(t.name for t in subtables), table.name]
            for statement in sql.activate_version_sql(schema, names, table.name):
                await conn.execute(statement, (step.table_version,))
        elif isinstance(step, RowsStep) and not subtables and len(step.points) <= SMALL_STEP:
            written += await _upsert_each(conn, schema, table, columns, step)
        else:
            rows: CopyRows
            if isinstance(step, CopyRows):  # planned in a worker, which made its COPY text
                rows = step
            else:
                assert isinstance(step, RowsStep)
                rows = copy_rows(plan, step)
            written += await _upsert_copied(conn, schema, table, columns, subtables, rows)
    return written


async def _upsert_each(
    conn: AsyncConnection[Any],
    schema: str,
    table: TableInfo,
    columns: list[str],
    step: RowsStep,
) -> int:
    """A few data points, a statement each: exactly one data point after another."""
    types = [table.columns[c] for c in columns]
    statement = sql.upsert_sql(schema, table.name, columns, types, table.key_names)
    async with conn.cursor() as cursor:
        await cursor.executemany(statement, cells(step.points, columns))
        return max(cursor.rowcount, 0)


async def _upsert_copied(
    conn: AsyncConnection[Any],
    schema: str,
    table: TableInfo,
    columns: list[str],
    subtables: Sequence[TableInfo],
    rows: CopyRows,
) -> int:
    """A step through COPY: its rows into a temp table, each key's newest picked, the picked
    upserted; the subtable rows of the keys written replaced by the picked data points'."""
    for statement in sql.load_table_sql(schema, table.name):
        await conn.execute(statement)
    picked = sql.picked_sql(schema, table.name, columns, table.key_columns)
    async with conn.cursor() as cursor:
        async with cursor.copy(sql.copy_sql(sql.LOAD_TABLE, [*columns, sql.ORDINAL])) as copy:
            await copy.write(rows.parent)
        if not subtables:
            await cursor.execute(
                sql.upsert_picked_sql(schema, table.name, columns, picked, table.key_names)
            )
            return max(cursor.rowcount, 0)
        for statement in [
            *sql.pick_table_sql(picked),
            *sql.won_table_sql(schema, table.name, table.key_columns),
        ]:
            await cursor.execute(statement)
        await cursor.execute(
            sql.upsert_picked_sql(
                schema,
                table.name,
                columns,
                f"SELECT * FROM {quote(sql.PICK_TABLE)}",
                table.key_names,
                won=table.key_columns,
            )
        )
        written = max(cursor.rowcount, 0)
        for index, subtable in enumerate(subtables):
            child_columns = list(subtable.columns)
            for statement in sql.child_table_sql(schema, subtable.name, index):
                await cursor.execute(statement)
            temp = sql.child_temp(index)
            async with cursor.copy(sql.copy_sql(temp, [sql.ORDINAL, *child_columns])) as copy:
                await copy.write(rows.children[subtable.name])
            for statement in sql.replace_children_sql(
                schema, subtable.name, index, child_columns, table.key_columns
            ):
                await cursor.execute(statement)
    return written
