"""asyncpg vs psycopg 3 (async) for the PostgreSQL destination: which driver, measured.

Standalone: it needs the standard library, ``asyncpg``, ``psycopg`` and ``psycopg_pool`` only,
and imports nothing of importapi_lite. Every case runs the same SQL through both drivers (``$1``
for asyncpg, ``%s`` for psycopg); runs are interleaved (the driver order turns every run), the
first run of each case is a warm-up, and the medians of ``--runs`` runs are printed.

(a) batches, the shape of ``/batch``: ``--rows`` rows of 13 columns (a bigint key, text,
    double precision, numeric, boolean, timestamp, nullable text, bigint, and the system columns
    ``_sdc_sequence``, ``_sdc_table_version``, ``_sdc_received_at``, ``_sdc_batched_at``,
    ``_sdc_extracted_at``) go, in one transaction, through

        CREATE TEMP TABLE bench_stage (LIKE bench_t) ON COMMIT DROP
        COPY bench_stage (...) FROM STDIN
        INSERT INTO bench_t (...) SELECT ... FROM bench_stage
            ON CONFLICT (id) DO UPDATE SET ... WHERE excluded._sdc_sequence >= bench_t._sdc_sequence
        COMMIT

    for three cases: ``insert`` (empty table), ``update`` (every key there, newer sequence) and
    ``stale`` (every key there, older sequence: the command tag must say 0 rows). The table is
    reset, vacuumed and checkpointed before every timed batch, outside the timing. Timed: turning
    the loader's values into what the driver takes, the COPY, the upsert and the commit. The
    values arrive as the loader holds them: int, float, Decimal, str, bool, None, and timestamps
    as ISO-8601 UTC text (``2026-01-02T03:04:05.000000Z``). Drivers:

      asyncpg      ``copy_records_to_table`` (binary COPY); the timestamps must be ``datetime``
                   (asyncpg refuses str, and refuses aware datetimes for ``timestamp``), so each
                   row's two timestamps are converted with ``datetime.fromisoformat`` (the batch's
                   received/batched times once per batch) inside the timing.
      psycopg      ``cursor.copy()`` + ``write_row`` in text format: the ISO text goes through as
                   is and the server parses it (no conversion).
      psycopg-bin  ``cursor.copy()`` + ``set_types`` + ``write_row`` in binary format, with the
                   same ``datetime`` conversion as asyncpg.

    Printed per case and driver: seconds per batch, rows/s, and the Python process's CPU time
    (``time.process_time``, i.e. the event loop's work; the server's CPU is not counted).

(b) pushes, the shape of ``/push``: ``--concurrency`` tasks share one pool of ``--pool-size``
    connections for ``--seconds``; each task loops on a one-row transaction

        BEGIN; INSERT INTO bench_t (...) VALUES (...) ON CONFLICT (id) DO UPDATE SET ...
               WHERE excluded._sdc_sequence >= bench_t._sdc_sequence; COMMIT

    (mode ``tx``), or the same INSERT alone in autocommit, its own implicit transaction (mode
    ``single``, one round trip instead of three). Keys are drawn from twice the preloaded rows, so
    about half insert and half update; the sequence only grows. Printed: transactions/s and the
    process's CPU µs per transaction. asyncpg converts the four timestamps of each push to
    ``datetime`` inside the timing; psycopg passes the ISO text (sent as an untyped parameter, the
    server parses it). Each run gets a new pool, opened before the timing (two pools of 64 would
    pass the default max_connections of 100). Pools are the drivers' own with their defaults:
    ``asyncpg.create_pool``, which runs a reset query (``pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL``) on every release, and ``psycopg_pool.AsyncConnectionPool`` (autocommit
    connections, no reset, no check before handing a connection out unless ``--pool-check``).
    ``--drivers`` may add ``asyncpg-noreset``, an asyncpg pool made with ``reset=`` a no-op, to show
    what that reset costs, and ``psycopg-pipeline``, the psycopg transaction inside
    ``conn.pipeline()`` (mode ``tx`` only), in case pipelining BEGIN, INSERT and COMMIT saved round
    trips: with psycopg 3.3.9 it does not (strace: 7 writes and 4 reads per transaction against 3
    and 3, and more CPU). Errors do not stop a push run: they are counted by exception class, with
    the time of the first and last error and of the first commit after the last error, which is how
    a server restart mid-run is observed
    (``--cases push --seconds 40`` and ``pg_ctl restart`` from another shell).

(c) ``synchronous_commit`` is never touched: every measured commit waits for its WAL flush, as
    "2xx means committed" requires. The script prints the server's setting.

``--probe`` runs behaviour checks instead of the timings: the command tag / row count of the
upsert (insert, update and stale rows mixed), how each driver reports a bigint or numeric
overflow and an out-of-range or malformed timestamp (by parameter and inside a COPY), which
Python types each COPY path accepts for each column type, prepared statements after
``ALTER TABLE`` (asyncpg's statement cache, psycopg's ``prepare_threshold``), and what a pool does
with a session advisory lock left held by a released connection.

Running it (as root; initdb/pg_ctl must run as the postgres user)::

    python3 -m venv /tmp/pgbench-venv
    /tmp/pgbench-venv/bin/pip install asyncpg "psycopg[binary]" psycopg-pool
    mkdir -p /tmp/pgbench && chown postgres /tmp/pgbench
    runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /tmp/pgbench/data \\
        -A trust -U postgres
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgbench/data \\
        -o "-p 55432 -k /tmp/pgbench -c listen_addresses=127.0.0.1" -l /tmp/pgbench/log start
    /tmp/pgbench-venv/bin/python bench/pg_drivers.py                  # all timings, ~10 minutes
    /tmp/pgbench-venv/bin/python bench/pg_drivers.py --probe          # behaviour checks
    /tmp/pgbench-venv/bin/python bench/pg_drivers.py --cases push --drivers asyncpg \\
        --runs 1 --warmup 0 --seconds 40 &  sleep 15; \\
        runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgbench/data restart \\
        -o "-p 55432 -k /tmp/pgbench -c listen_addresses=127.0.0.1"
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /tmp/pgbench/data stop

The script creates and drops its own tables (``bench_t``, ``probe_t``) in the target database.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import decimal
import itertools
import platform
import random
import re
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psycopg
import psycopg_pool

TABLE = "bench_t"
STAGE = "bench_stage"
COLUMNS: list[tuple[str, str]] = [
    ("id", "bigint"),
    ("name", "text"),
    ("score", "double precision"),
    ("price", "numeric"),
    ("active", "boolean"),
    ("created_at", "timestamp"),
    ("note", "text"),
    ("qty", "bigint"),
    ("_sdc_sequence", "bigint"),
    ("_sdc_table_version", "bigint"),
    ("_sdc_received_at", "timestamp"),
    ("_sdc_batched_at", "timestamp"),
    ("_sdc_extracted_at", "timestamp"),
]
NAMES = [name for name, _ in COLUMNS]
TYPES = [kind for _, kind in COLUMNS]
COLS = ", ".join(NAMES)
UPDATES = ", ".join(f"{n} = excluded.{n}" for n in NAMES if n != "id")


def ddl(table: str) -> str:
    body = ", ".join(f"{n} {t}" + (" PRIMARY KEY" if n == "id" else "") for n, t in COLUMNS)
    return f"CREATE TABLE {table} ({body})"


def upsert_tail(table: str) -> str:
    return (
        f"ON CONFLICT (id) DO UPDATE SET {UPDATES} "
        f"WHERE excluded._sdc_sequence >= {table}._sdc_sequence"
    )


# The same statements for both drivers; only the placeholders differ.
CREATE_STAGE = f"CREATE TEMP TABLE {STAGE} (LIKE {TABLE}) ON COMMIT DROP"
COPY_TEXT = f"COPY {STAGE} ({COLS}) FROM STDIN"
COPY_BINARY = f"COPY {STAGE} ({COLS}) FROM STDIN (FORMAT BINARY)"  # asyncpg builds this one itself
MERGE = f"INSERT INTO {TABLE} ({COLS}) SELECT {COLS} FROM {STAGE} {upsert_tail(TABLE)}"


def push_sql(style: str, table: str = TABLE) -> str:
    marks = [f"${i + 1}" for i in range(len(NAMES))] if style == "$" else ["%s"] * len(NAMES)
    return f"INSERT INTO {table} ({COLS}) VALUES ({', '.join(marks)}) {upsert_tail(table)}"


PUSH_A = push_sql("$")
PUSH_P = push_sql("%s")

# ---------------------------------------------------------------------------------------------
# Values as the loader holds them, and the conversion a driver may need (timed).

TS_CREATED, TS_RECEIVED, TS_BATCHED, TS_EXTRACTED = 5, 10, 11, 12
BASE = datetime.datetime(2026, 1, 2, 3, 4, 5)


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def loader_rows(count: int, sequence: int, start: int = 1, salt: str = "") -> list[tuple]:
    """Rows as the loader would have them after decoding a body: timestamps are ISO text."""
    received = iso(BASE + datetime.timedelta(days=1))
    batched = iso(BASE + datetime.timedelta(days=1, seconds=1))
    rows = []
    for i in range(start, start + count):
        rows.append(
            (
                i,
                f"name {i}{salt}",
                i * 1.5,
                decimal.Decimal(i) / 100,
                i % 2 == 0,
                iso(BASE + datetime.timedelta(seconds=i, microseconds=i % 1000)),
                None if i % 3 else f"note {i}",
                i % 97,
                sequence,
                1,
                received,
                batched,
                iso(BASE + datetime.timedelta(seconds=i // 2)),
            )
        )
    return rows


_fromiso = datetime.datetime.fromisoformat


def to_datetime(text: str | None) -> datetime.datetime | None:
    """ISO-8601 UTC text to the naive UTC datetime a ``timestamp`` column takes."""
    return None if text is None else _fromiso(text[:-1] if text.endswith("Z") else text)


def typed_rows(rows: list[tuple]) -> list[tuple]:
    """The batch with datetimes: the batch-wide received/batched times are converted once."""
    if not rows:
        return []
    received, batched = to_datetime(rows[0][TS_RECEIVED]), to_datetime(rows[0][TS_BATCHED])
    fi = _fromiso
    return [
        (
            r[0], r[1], r[2], r[3], r[4],
            None if r[5] is None else fi(r[5][:-1]),
            r[6], r[7], r[8], r[9], received, batched,
            None if r[12] is None else fi(r[12][:-1]),
        )
        for r in rows
    ]  # fmt: skip


def typed_row(r: tuple) -> tuple:
    """One push: all four timestamps converted."""
    return (
        r[0], r[1], r[2], r[3], r[4], to_datetime(r[5]), r[6], r[7], r[8], r[9],
        to_datetime(r[10]), to_datetime(r[11]), to_datetime(r[12]),
    )  # fmt: skip


def affected(tag: str) -> int:
    """Rows counted by a command tag such as ``INSERT 0 20000`` or ``COPY 20000``."""
    return int(tag.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------------------------------------
# (a) batches


async def batch_asyncpg(con: asyncpg.Connection, rows: list[tuple]) -> int:
    records = typed_rows(rows)
    async with con.transaction():
        await con.execute(CREATE_STAGE)
        await con.copy_records_to_table(STAGE, records=records, columns=NAMES)
        tag = await con.execute(MERGE)
    return affected(tag)


async def batch_psycopg(con: psycopg.AsyncConnection, rows: list[tuple]) -> int:
    async with con.transaction():
        await con.execute(CREATE_STAGE)
        async with con.cursor() as cur:
            async with cur.copy(COPY_TEXT) as copy:
                for row in rows:
                    await copy.write_row(row)
            await cur.execute(MERGE)
            return cur.rowcount


async def batch_psycopg_binary(con: psycopg.AsyncConnection, rows: list[tuple]) -> int:
    records = typed_rows(rows)
    async with con.transaction():
        await con.execute(CREATE_STAGE)
        async with con.cursor() as cur:
            async with cur.copy(COPY_BINARY) as copy:
                copy.set_types(TYPES)
                for row in records:
                    await copy.write_row(row)
            await cur.execute(MERGE)
            return cur.rowcount


BATCH_DRIVERS: dict[str, Callable] = {
    "asyncpg": batch_asyncpg,
    "psycopg": batch_psycopg,
    "psycopg-bin": batch_psycopg_binary,
}
BATCH_CASES = {  # case: (sequence preloaded or None for an empty table, sequence sent, expected)
    "insert": (None, 1, "all"),
    "update": (10, 11, "all"),
    "stale": (10, 5, "none"),
}


async def reset_table(dsn: str, rows: int, preload: int | None) -> None:
    """Empty the table, or fill it at sequence ``preload``; a connection of its own, so a
    server restarted during the previous run does not matter."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"TRUNCATE {TABLE}")
        if preload is not None:
            await admin.copy_records_to_table(
                TABLE, records=typed_rows(loader_rows(rows, preload)), columns=NAMES
            )
        await admin.execute(f"VACUUM (ANALYZE) {TABLE}")
        try:
            await admin.execute("CHECKPOINT")  # the same WAL state before every timed batch
        except asyncpg.PostgresError:
            pass  # not a superuser: the runs only get noisier
    finally:
        await admin.close()


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def run_batches(args: argparse.Namespace) -> dict:
    drivers = [d for d in BATCH_DRIVERS if d in args.drivers or d.split("-")[0] in args.drivers]
    cons: dict[str, Any] = {}
    for d in drivers:
        if d == "asyncpg":
            cons[d] = await asyncpg.connect(args.dsn)
        else:
            cons[d] = await psycopg.AsyncConnection.connect(args.dsn, autocommit=True)
    payload = {  # made before any timing, per case: new values so updates really write
        case: loader_rows(args.rows, sent, salt=f" v{sent}")
        for case, (_, sent, _) in BATCH_CASES.items()
    }
    results: dict[tuple[str, str], Sample] = {}
    for run in range(args.warmup + args.runs):
        for case in [c for c in BATCH_CASES if c in args.cases]:
            preload, _, expect = BATCH_CASES[case]
            shift = run % len(drivers)
            for d in drivers[shift:] + drivers[:shift]:
                await reset_table(args.dsn, args.rows, preload)
                t0, c0 = time.perf_counter(), time.process_time()
                count = await BATCH_DRIVERS[d](cons[d], payload[case])
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                want = args.rows if expect == "all" else 0
                if count != want:
                    raise SystemExit(f"{d} {case}: the upsert counted {count} rows, not {want}")
                if run >= args.warmup:
                    s = results.setdefault((case, d), Sample())
                    s.wall.append(wall)
                    s.cpu.append(cpu)
                print(
                    f"  run {run}{' (warm-up)' if run < args.warmup else ''} {case:6} {d:11} "
                    f"{wall:7.3f} s  cpu {cpu:6.3f} s  rows {count}",
                    flush=True,
                )
    for con in cons.values():
        await con.close()
    return results


# ---------------------------------------------------------------------------------------------
# (b) pushes


@dataclass
class PushStats:
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    first_error: float | None = None
    last_error: float | None = None
    first_ok_after: float | None = None
    start: float = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic() - self.start
        msg = str(exc).strip().splitlines()[0][:110] if str(exc).strip() else ""
        key = f"{type(exc).__module__}.{type(exc).__qualname__}: {msg}"
        self.errors[key] = self.errors.get(key, 0) + 1
        if self.first_error is None:
            self.first_error = now
        self.last_error = now
        self.first_ok_after = None

    def committed(self) -> None:
        self.ok += 1
        if self.last_error is not None and self.first_ok_after is None:
            self.first_ok_after = time.monotonic() - self.start


class PushSource:
    """Push rows made ahead of time; only the key and the growing sequence are drawn per push."""

    def __init__(self, keys: int, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.keys = keys
        self.sequence = itertools.count(1000)
        now = iso(BASE + datetime.timedelta(days=2))
        self.templates = [
            (f"push {i}", i * 0.25, decimal.Decimal(i) / 7, i % 2 == 1,
             iso(BASE + datetime.timedelta(minutes=i)), None if i % 2 else "n", i,
             ) for i in range(512)
        ]  # fmt: skip
        self.now = now

    def next(self) -> tuple:
        t = self.templates[self.rnd.randrange(512)]
        n = self.now
        return (self.rnd.randrange(1, self.keys + 1), *t, next(self.sequence), 1, n, n, n)


async def push_worker_asyncpg(pool, src: PushSource, stop: float, st: PushStats, tx: bool):
    while time.monotonic() < stop:
        try:
            args = typed_row(src.next())
            async with pool.acquire() as con:
                if tx:
                    async with con.transaction():
                        await con.execute(PUSH_A, *args)
                else:
                    await con.execute(PUSH_A, *args)
            st.committed()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            st.failed(exc)
            await asyncio.sleep(0.05)


async def push_worker_psycopg(pool, src: PushSource, stop: float, st: PushStats, tx: bool):
    while time.monotonic() < stop:
        try:
            args = src.next()
            async with pool.connection() as con:
                if tx and pipelined(pool):  # BEGIN, INSERT, COMMIT in one round trip
                    async with con.pipeline(), con.transaction():
                        await con.execute(PUSH_P, args)
                elif tx:
                    async with con.transaction():
                        await con.execute(PUSH_P, args)
                else:
                    await con.execute(PUSH_P, args)
            st.committed()
        except Exception as exc:  # noqa: BLE001 - counted and reported
            st.failed(exc)
            await asyncio.sleep(0.05)


async def no_reset(con: asyncpg.Connection) -> None:
    """asyncpg-noreset: skip the reset query asyncpg's pool sends on every release."""


def pipelined(pool: psycopg_pool.AsyncConnectionPool) -> bool:
    return pool.name == "psycopg-pipeline"


async def open_pool(driver: str, args: argparse.Namespace):
    if driver.startswith("asyncpg"):
        return await asyncpg.create_pool(
            args.dsn,
            min_size=args.pool_size,
            max_size=args.pool_size,
            reset=no_reset if driver == "asyncpg-noreset" else None,
        )
    pool = psycopg_pool.AsyncConnectionPool(
        args.dsn,
        min_size=args.pool_size,
        max_size=args.pool_size,
        kwargs={"autocommit": True},
        check=psycopg_pool.AsyncConnectionPool.check_connection if args.pool_check else None,
        name=driver,
        open=False,
    )
    await pool.open(wait=True)
    return pool


PUSH_DRIVERS = ("asyncpg", "psycopg", "asyncpg-noreset", "psycopg-pipeline")


async def run_pushes(args: argparse.Namespace) -> dict:
    drivers = [d for d in PUSH_DRIVERS if d in args.drivers]
    results: dict[tuple[str, str], Sample] = {}
    for run in range(args.warmup + args.runs):
        for mode in args.push_modes:
            shift = run % len(drivers)
            for d in drivers[shift:] + drivers[:shift]:
                await reset_table(args.dsn, args.rows, 1)
                pool = await open_pool(d, args)  # a pool per run: two of 64 would pass 100 clients
                src = PushSource(2 * args.rows, seed=run)
                st = PushStats(start=time.monotonic())
                worker = push_worker_asyncpg if d.startswith("asyncpg") else push_worker_psycopg
                stop = time.monotonic() + args.seconds
                t0, c0 = time.perf_counter(), time.process_time()
                tx = mode == "tx"
                tasks = [worker(pool, src, stop, st, tx) for _ in range(args.concurrency)]
                await asyncio.gather(*tasks)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                await pool.close()
                tps = st.ok / wall
                us = cpu / st.ok * 1e6 if st.ok else float("nan")
                if run >= args.warmup:
                    s = results.setdefault((mode, d), Sample())
                    s.wall.append(tps)
                    s.cpu.append(us)
                print(
                    f"  run {run}{' (warm-up)' if run < args.warmup else ''} push/{mode:6} {d:15} "
                    f"{tps:8.0f} tx/s  cpu {us:6.0f} µs/tx  committed {st.ok}"
                    + (f"  errors {sum(st.errors.values())}" if st.errors else ""),
                    flush=True,
                )
                report_errors(st)
    return results


def report_errors(st: PushStats) -> None:
    if not st.errors:
        return
    after = "never" if st.first_ok_after is None else f"{st.first_ok_after:.2f} s"
    print(
        f"    errors from {st.first_error:.2f} s to {st.last_error:.2f} s; "
        f"first commit after the last error: {after}"
    )
    for key, n in sorted(st.errors.items(), key=lambda kv: -kv[1]):
        print(f"    {n:6} × {key}")


# ---------------------------------------------------------------------------------------------
# --probe: behaviour, not speed


def describe(exc: BaseException) -> str:
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    state = getattr(exc, "sqlstate", None)
    msg = " ".join(str(exc).split())[:160]
    where = None
    if isinstance(exc, asyncpg.PostgresError):
        where = getattr(exc, "context", None) or getattr(exc, "where", None)
    elif isinstance(exc, psycopg.Error) and exc.diag is not None:
        where = exc.diag.context
    out = f"{kind} [{state}] {msg}"
    if where:
        out += f" | context: {' '.join(where.split())[:120]}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None and not isinstance(exc, psycopg.Error):
        out += f" | from {type(cause).__name__}: {str(cause)[:80]}"
    return out


async def outcome(coro) -> str:
    try:
        value = await coro
        return f"ok: {value!r}"[:200]
    except Exception as exc:  # noqa: BLE001
        return describe(exc)


def dollars(sql: str) -> str:
    """The same statement with asyncpg's placeholders."""
    count = itertools.count(1)
    return re.sub("%s", lambda _: f"${next(count)}", sql)


class ProbeDriver:
    """One connection of a driver, with the few operations the probes need."""

    def __init__(self, name: str, con: Any) -> None:
        self.name, self.con = name, con

    @classmethod
    async def open(cls, name: str, dsn: str) -> ProbeDriver:
        if name == "asyncpg":
            return cls(name, await asyncpg.connect(dsn))
        return cls(name, await psycopg.AsyncConnection.connect(dsn, autocommit=True))

    async def execute(self, sql: str, *params: Any) -> str:
        """Run one statement; the command tag and the rows it says it touched."""
        if self.name == "asyncpg":
            return await self.con.execute(dollars(sql), *params)
        cur = await self.con.execute(sql, params or None)
        return f"{cur.statusmessage} (rowcount {cur.rowcount})"

    async def fetch(self, sql: str, *params: Any) -> list:
        if self.name == "asyncpg":
            return [tuple(r) for r in await self.con.fetch(dollars(sql), *params)]
        cur = await self.con.execute(sql, params or None)
        return await cur.fetchall()

    async def copy(self, table: str, rows: list[tuple], binary: bool = False) -> str:
        """COPY rows into table in one transaction; the tag and the rows counted."""
        if self.name == "asyncpg":
            async with self.con.transaction():
                return await self.con.copy_records_to_table(table, records=rows, columns=NAMES)
        async with self.con.transaction():
            async with self.con.cursor() as cur:
                fmt = " (FORMAT BINARY)" if binary else ""
                async with cur.copy(f"COPY {table} ({COLS}) FROM STDIN{fmt}") as cp:
                    if binary:
                        cp.set_types(TYPES)
                    for r in rows:
                        await cp.write_row(r)
                return f"{cur.statusmessage} (rowcount {cur.rowcount})"

    async def alive(self) -> str:
        return await outcome(self.fetch("SELECT 1"))

    async def close(self) -> None:
        await self.con.close()


async def probe(args: argparse.Namespace) -> None:
    admin = await asyncpg.connect(args.dsn)
    variants = ["asyncpg", "psycopg", "psycopg-bin"]

    def fresh_probe_table() -> Any:
        return admin.execute(f"DROP TABLE IF EXISTS probe_t; {ddl('probe_t')}")

    def row(i: int, seq: int, **over: Any) -> tuple:
        r = list(loader_rows(1, seq, start=min(i, 10**6))[0])
        r[0] = i
        for k, v in over.items():
            r[NAMES.index(k)] = v
        return tuple(r)

    def as_driver(variant: str, rows: list[tuple]) -> list[tuple]:
        return rows if variant == "psycopg" else typed_rows(rows)

    async def each(title: str, body: Callable) -> None:
        print(f"\n## {title}")
        for v in variants:
            d = await ProbeDriver.open(v.split("-")[0], args.dsn)
            try:
                for line in await body(v, d):
                    print(f"  {v:11} {line}")
            finally:
                await d.close()

    # 1. Row counts of COPY and of the upsert with new, newer and stale rows mixed.
    async def counts(v: str, d: ProbeDriver) -> list[str]:
        await fresh_probe_table()
        out = [
            "COPY 2 rows (keys 1, 2 at seq 10): "
            + await d.copy(
                "probe_t", as_driver(v, [row(1, 10), row(2, 10)]), binary=v.endswith("bin")
            )
        ]
        stage = [row(1, 11, name="newer"), row(2, 5, name="stale"), row(3, 1, name="new")]
        await admin.execute("DROP TABLE IF EXISTS probe_stage")
        await admin.execute("CREATE TABLE probe_stage (LIKE probe_t)")
        await admin.copy_records_to_table("probe_stage", records=typed_rows(stage), columns=NAMES)
        merge = (
            f"INSERT INTO probe_t ({COLS}) SELECT {COLS} FROM probe_stage {upsert_tail('probe_t')}"
        )
        out.append("upsert of 1 newer + 1 stale + 1 new (want 2): " + await d.execute(merge))
        out.append(
            "same again (newer is now equal: >= counts it; want 2): " + await d.execute(merge)
        )
        names = await d.fetch("SELECT id, name FROM probe_t ORDER BY id")
        out.append(f"table after: {names}")
        one = push_sql("%s", "probe_t")
        out.append(
            "one-row stale push (want 0): " + await outcome(d.execute(one, *typed_row(row(1, 1))))
        )
        return out

    await each("row counts (command tags)", counts)

    # 2. Errors: overflow and out-of-range values, by parameter and inside a COPY.
    async def errors(v: str, d: ProbeDriver) -> list[str]:
        await fresh_probe_table()
        one = push_sql("%s", "probe_t")
        out: list[str] = []

        async def push_one(r: tuple) -> str:
            return await d.execute(one, *(r if v == "psycopg" else typed_row(r)))

        if not v.endswith("bin"):
            for label, r in [
                ("bigint 2**63", row(2**63, 1)),
                ("numeric 9e131072", row(1, 1, price=decimal.Decimal("9e131072"))),
                (
                    "timestamp '294277-01-01T00:00:00Z'",
                    row(1, 1, created_at="294277-01-01T00:00:00.000000Z"),
                ),
                ("timestamp 'not a date'", row(1, 1, created_at="not a dateZ")),
            ]:
                res = await outcome(push_one(r))
                if res.startswith("ok") and "numeric" in label:
                    stored = await admin.fetchval("SELECT price::text FROM probe_t WHERE id = 1")
                    res += f" -> stored {stored!r}"
                out.append(f"push with {label}: {res}")
            if v == "asyncpg":
                out.append(
                    "push with a str timestamp, unconverted: "
                    + await outcome(d.execute(one, *row(1, 1)))
                )
            out.append("alive after errors: " + await d.alive())
        rows = [row(i, 1) for i in range(1, 6)]
        for label, col, value in [
            ("bigint 2**63", "qty", 2**63),
            ("numeric 9e131072", "price", decimal.Decimal("9e131072")),
            ("numeric NaN", "price", decimal.Decimal("NaN")),
            ("numeric Infinity", "price", decimal.Decimal("Infinity")),
            ("double inf", "score", float("inf")),
            ("timestamp year 294277 (text)", "created_at", "294277-01-01T00:00:00.000000Z"),
        ]:
            bad = list(rows)
            bad[3] = row(4, 1, **{col: value})
            try:
                typed = as_driver(v, bad)
            except Exception as exc:  # noqa: BLE001 - the loader's own conversion
                out.append(f"COPY with {label} in row 4: conversion fails first: {describe(exc)}")
                continue
            res = await outcome(d.copy("probe_t", typed, binary=v.endswith("bin")))
            if res.startswith("ok"):  # what landed, read back as text
                stored = await admin.fetchval(
                    f"SELECT left({col}::text, 20) FROM probe_t WHERE id = 4"
                )
                res += f" -> stored {stored!r}"
            out.append(f"COPY with {label} in row 4: {res}")
            await admin.execute("TRUNCATE probe_t")
        out.append("alive after COPY errors: " + await d.alive())
        for label, sql in [
            ("read 'infinity'::timestamp", "SELECT 'infinity'::timestamp"),
            ("read '10000-01-01'::timestamp", "SELECT '10000-01-01'::timestamp"),
            ("read 'NaN'::numeric", "SELECT 'NaN'::numeric"),
        ]:
            out.append(f"{label}: " + await outcome(d.fetch(sql)))
        return out

    await each("errors", errors)

    # 3. Which Python types each COPY path takes for each column type.
    async def leniency(v: str, d: ProbeDriver) -> list[str]:
        await fresh_probe_table()
        out = []
        for col, value in [
            ("qty", "5"),
            ("qty", 5.0),
            ("qty", decimal.Decimal(5)),
            ("qty", True),
            ("score", 5),
            ("score", decimal.Decimal("1.5")),
            ("score", "1.5"),
            ("price", 5),
            ("price", 1.1),
            ("price", "1.5"),
            ("active", 1),
            ("active", "true"),
            ("name", 5),
            ("note", None),
            ("created_at", "2026-01-02T03:04:05.000000Z"),
            ("created_at", datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)),
            ("created_at", datetime.date(2026, 1, 2)),
        ]:
            r = list(as_driver(v, [row(1, 1)])[0])
            r[NAMES.index(col)] = value
            res = await outcome(d.copy("probe_t", [tuple(r)], binary=v.endswith("bin")))
            if res.startswith("ok"):
                got = await d.fetch(f"SELECT {col}::text FROM probe_t")
                res = f"ok -> {got[0][0]!r}"
            else:
                res = "ERR " + res
            out.append(f"{col:10} ← {type(value).__name__:8} {value!r:.40}: {res}")
            await admin.execute("TRUNCATE probe_t")
        return out

    await each("COPY leniency (a value of another type in each column)", leniency)

    # 4. Prepared statements vs ALTER TABLE.
    async def schema_change(v: str, d: ProbeDriver) -> list[str]:
        if v.endswith("bin"):
            return ["(same as psycopg)"]
        await fresh_probe_table()
        await admin.copy_records_to_table("probe_t", records=typed_rows([row(1, 1)]), columns=NAMES)
        select = "SELECT * FROM probe_t WHERE id = %s"
        one = push_sql("%s", "probe_t")
        for _ in range(6):  # past psycopg's prepare_threshold (5)
            await d.fetch(select, 1)
            await d.execute(one, *(row(2, 1) if v == "psycopg" else typed_row(row(2, 1))))
        out = []
        await admin.execute("ALTER TABLE probe_t ADD COLUMN extra text")
        out.append("SELECT * after ADD COLUMN (autocommit): " + await outcome(d.fetch(select, 1)))
        again = [(await outcome(d.fetch(select, 1))).split(" ")[0] for _ in range(3)]
        out.append(f"SELECT * three more times: {again}")
        await admin.execute("ALTER TABLE probe_t ADD COLUMN extra2 text")

        async def in_tx() -> list:
            async with d.con.transaction():
                return await d.fetch(select, 1)

        out.append("SELECT * after ADD COLUMN, inside a transaction: " + await outcome(in_tx()))
        out.append("SELECT * after that: " + await outcome(d.fetch(select, 1)))
        push = row(3, 1) if v == "psycopg" else typed_row(row(3, 1))
        out.append(
            "cached INSERT ... VALUES after ADD COLUMN: " + await outcome(d.execute(one, *push))
        )
        await admin.execute("ALTER TABLE probe_t ALTER COLUMN qty TYPE numeric")
        out.append(
            "cached INSERT after ALTER COLUMN qty TYPE numeric: "
            + await outcome(
                d.execute(one, *(row(4, 1) if v == "psycopg" else typed_row(row(4, 1))))
            )
        )
        await admin.execute("ALTER TABLE probe_t ALTER COLUMN name TYPE varchar(20)")
        out.append(
            "SELECT * after ALTER COLUMN name TYPE varchar: " + await outcome(d.fetch(select, 1))
        )
        return out

    await each("prepared statements vs ALTER TABLE (another connection alters)", schema_change)

    # 5. Pools and session advisory locks left held.
    print("\n## a released pool connection still holding pg_advisory_lock(42)")
    count_locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
    apool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=1)
    async with apool.acquire() as con:
        await con.execute("SELECT pg_advisory_lock(42)")
    held = await admin.fetchval(count_locks)
    print(
        f"  asyncpg     advisory locks held after release: {held} (the pool's reset query runs "
        "pg_advisory_unlock_all(), CLOSE ALL, UNLISTEN *, RESET ALL)"
    )
    await apool.close()
    ppool = psycopg_pool.AsyncConnectionPool(
        args.dsn, min_size=1, max_size=1, kwargs={"autocommit": True}, open=False
    )
    await ppool.open(wait=True)
    async with ppool.connection() as con:
        await con.execute("SELECT pg_advisory_lock(42)")
    await asyncio.sleep(0.2)
    print(
        f"  psycopg     advisory locks held after release: {await admin.fetchval(count_locks)}"
        " (no reset unless the pool is given reset=...)"
    )
    async with ppool.connection() as con:
        await con.execute("SET work_mem = '1MB'")
    async with ppool.connection() as con:
        wm = (await (await con.execute("SHOW work_mem")).fetchone())[0]
    print(f"  psycopg     a SET made by the last borrower is still there: work_mem = {wm}")
    await ppool.close()
    await admin.execute("DROP TABLE IF EXISTS probe_t; DROP TABLE IF EXISTS probe_stage")
    await admin.close()


# ---------------------------------------------------------------------------------------------


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{min(xs):.3f}–{max(xs):.3f}"


async def versions(args: argparse.Namespace, admin: asyncpg.Connection) -> None:
    server = await admin.fetchval("SHOW server_version")
    sync = await admin.fetchval("SHOW synchronous_commit")
    fsync = await admin.fetchval("SHOW fsync")
    print(
        f"Python {platform.python_version()}  asyncpg {asyncpg.__version__}  psycopg "
        f"{psycopg.__version__} (impl {psycopg.pq.__impl__}, libpq {psycopg.pq.version()})  "
        f"psycopg_pool {psycopg_pool.__version__}"
    )
    print(
        f"PostgreSQL {server}  synchronous_commit={sync}  fsync={fsync}  "
        f"loop {type(asyncio.get_running_loop()).__name__}"
    )


async def main(args: argparse.Namespace) -> None:
    if args.probe:
        await probe(args)
        return
    admin = await asyncpg.connect(args.dsn)
    await versions(args, admin)
    sync = await admin.fetchval("SHOW synchronous_commit")
    if sync != "on":
        raise SystemExit(f"synchronous_commit is {sync}: '2xx means committed' needs it on")
    await admin.execute(f"DROP TABLE IF EXISTS {TABLE}; {ddl(TABLE)}")
    await admin.close()
    batch: dict = {}
    push: dict = {}
    if set(args.cases) & set(BATCH_CASES):
        print(f"\n(a) batches of {args.rows} rows: {args.warmup} warm-up + {args.runs} runs")
        batch = await run_batches(args)
    if "push" in args.cases:
        print(
            f"\n(b) pushes: {args.concurrency} tasks, pool of {args.pool_size}, "
            f"{args.seconds} s per run, modes {args.push_modes}"
        )
        push = await run_pushes(args)
    admin = await asyncpg.connect(args.dsn)
    await admin.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await admin.close()

    if batch:
        print(f"\n(a) medians of {args.runs} runs, {args.rows} rows per batch")
        print(
            f"{'case':7} {'driver':11} {'s/batch':>8} {'(min–max)':>13} {'rows/s':>9} "
            f"{'CPU s/batch':>11} {'CPU µs/row':>10}"
        )
        for (case, d), s in sorted(
            batch.items(),
            key=lambda kv: (list(BATCH_CASES).index(kv[0][0]), list(BATCH_DRIVERS).index(kv[0][1])),
        ):
            w, c = med(s.wall), med(s.cpu)
            print(
                f"{case:7} {d:11} {w:8.3f} {spread(s.wall):>13} {args.rows / w:9,.0f} "
                f"{c:11.3f} {c / args.rows * 1e6:10.2f}"
            )
    if push:
        print(
            f"\n(b) medians of {args.runs} runs: {args.concurrency} tasks, pool "
            f"{args.pool_size}, {args.seconds} s each"
        )
        print(f"{'mode':7} {'driver':15} {'tx/s':>8} {'(min–max)':>13} {'CPU µs/tx':>10}")
        for (mode, d), s in sorted(
            push.items(),
            key=lambda kv: (args.push_modes.index(kv[0][0]), PUSH_DRIVERS.index(kv[0][1])),
        ):
            print(
                f"{mode:7} {d:15} {med(s.wall):8.0f} "
                f"{min(s.wall):6.0f}–{max(s.wall):<6.0f} {med(s.cpu):10.0f}"
            )


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:55432/postgres")
    p.add_argument("--rows", type=int, default=20000, help="rows per batch (and preloaded)")
    p.add_argument("--runs", type=int, default=5, help="measured runs per case and driver")
    p.add_argument("--warmup", type=int, default=1, help="runs first discarded")
    p.add_argument("--concurrency", type=int, default=64, help="push tasks")
    p.add_argument("--pool-size", type=int, default=16, help="connections in each push pool")
    p.add_argument(
        "--pool-check",
        action="store_true",
        help="psycopg pool: check each connection before handing it out",
    )
    p.add_argument("--seconds", type=float, default=10, help="length of one push run")
    p.add_argument("--cases", default="insert,update,stale,push", type=lambda s: s.split(","))
    p.add_argument("--push-modes", default="tx,single", type=lambda s: s.split(","))
    p.add_argument(
        "--drivers",
        default="asyncpg,psycopg",
        type=lambda s: s.split(","),
        help="asyncpg, psycopg (both COPY formats); for pushes only: asyncpg-noreset, "
        "psycopg-pipeline",
    )
    p.add_argument("--probe", action="store_true", help="behaviour checks instead of timings")
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        asyncio.run(main(parse(sys.argv[1:])))
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
