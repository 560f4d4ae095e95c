"""``/batch`` into a PostgreSQL destination against its own ceiling (issue 18): a bare script
that loads the same rows into the same table layout by the core of what the server does, COPY
into a temporary table and one ``INSERT … SELECT … ON CONFLICT … DO UPDATE … WHERE`` with the
sequence rule, one transaction per body, in the same cluster with the same sync settings.

The bodies are the SQLite cases' (``workload``), from two senders at once, and rows/s are
measured from the client's side as there, so the figures compare. The server makes its table
itself; the bare table is ``CREATE TABLE … (LIKE … INCLUDING ALL)`` of it (columns, types,
primary key), and the bare script's rows are the records as the server stores them, which the
warm-up run checks (``_check_same_rows``). As in ``ceiling``, the bare rows are built before the
timing and its bodies go one after another; each side's timed load starts after a CHECKPOINT.

Cases: a fresh table (inserts, updates and stale re-sends, as ``batch_cases``), and a table
already holding ``--big-rows`` rows (updates, then inserts of new keys); the table is filled
by COPY in the stored form and copied for the bare script, which takes seconds where the
server would take minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import postgres
import psycopg
from batch_cases import LABEL, LOADED, SENDERS, SEQUENCE
from ceiling import ARRIVAL, KEY
from ceiling import SEQUENCE as SEQUENCE_COLUMN
from options import Options
from postgres import SCHEMA, Postgres, quote
from report import Row, at_least, median, rate
from servers import Server, cpu_seconds, create_token, own_cpu_seconds, post, post_concurrently
from workload import TIMESTAMP, batch_body, records

BOUND = 0.7  # issue 18's share of the bare load
BARE = "bare"  # the schema of the bare script's tables
LOAD = "_bare_load"  # its temporary table
BIG = "pg_big"
SEED = 7  # the big table's keys; updates re-send slices of them
NEW_SEED = 1000  # fresh keys for the big table's inserts (plus the run and sender)
BIG_MODES = ("update", "insert")  # in this order, so updates meet exactly --big-rows rows
CHUNK = 50_000  # rows generated at a time while filling the big table


async def batch_cases(
    session: aiohttp.ClientSession, pg: Postgres | None, work: Path, options: Options
) -> list[Row]:
    if pg is None:
        return [postgres.skipped("PostgreSQL /batch against a bare COPY upsert")]
    data_dir = work / "pg-data"
    server = Server(
        data_dir, create_token(data_dir, pg.url), options.durability, destination=pg.url
    )
    try:
        with pg.connect() as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {BARE}")
            rows = await _fresh_table_cases(session, server, conn, pg, options)
            rows += await _big_table_cases(session, server, conn, options)
    finally:
        server.stop()
    return rows


@dataclass
class Spent:
    """CPU seconds, summed over runs, of the server, of PostgreSQL (every backend) and of this
    process while the server loaded; and of PostgreSQL and this process while the bare script
    did."""

    server: float = 0.0
    pg: float = 0.0
    bare_pg: float = 0.0
    bare_script: float = 0.0


async def _fresh_table_cases(
    session: aiohttp.ClientSession,
    server: Server,
    conn: psycopg.Connection,
    pg: Postgres,
    options: Options,
) -> list[Row]:
    rows = []
    for mode in SEQUENCE:
        ours, bare = [], []
        spent = Spent()
        for run in range(options.runs + 1):  # run 0 warms up, and checks the rows
            table = f"pg_fresh_{mode}_{run}"
            senders = [records(options.records, seed=SENDERS * run + s) for s in range(SENDERS)]
            if mode != "insert":
                for body in senders:
                    await post(session, server, "/v2/import/batch", batch_body(table, body, LOADED))
            bodies = [[batch_body(table, body, SEQUENCE[mode])] for body in senders]
            postgres.checkpoint(conn)
            before = cpu_seconds(server.process.pid), cpu_seconds(pg.pid)
            server_time = await post_concurrently(session, server, bodies)
            server_cpu = cpu_seconds(server.process.pid) - before[0]
            pg_cpu = cpu_seconds(pg.pid) - before[1]

            _create_bare_table(conn, table)
            layout = postgres.columns(conn, SCHEMA, table)
            if mode != "insert":
                bare_upsert(conn, table, layout, senders, LOADED)
            postgres.checkpoint(conn)
            before = cpu_seconds(pg.pid), own_cpu_seconds()
            bare_time = bare_upsert(conn, table, layout, senders, SEQUENCE[mode])
            bare_pg = cpu_seconds(pg.pid) - before[0]
            bare_script = own_cpu_seconds() - before[1]
            if run == 0:
                _check_same_rows(conn, table, layout)
            else:
                ours.append(server_time)
                bare.append(bare_time)
                spent.server += server_cpu
                spent.pg += pg_cpu
                spent.bare_pg += bare_pg
                spent.bare_script += bare_script
            conn.execute(f"DROP TABLE {BARE}.{quote(table)}")
        case = f"PostgreSQL /batch {SENDERS}×{options.records:,}, {LABEL[mode]}, fresh table"
        rows.append(_ceiling_row(case, SENDERS * options.records, ours, bare))
        if mode == "insert":
            rows.append(_cpu_row(spent, options))
    return rows


def _ceiling_row(case: str, count: int, ours: list[float], bare: list[float]) -> Row:
    ratio = median(bare) / median(ours)
    figure = f"{rate(count / median(ours))} (bare {count / median(bare):,.0f})"
    return Row(case, figure, ratio, at_least(ratio, BOUND, f"≥{BOUND} of bare COPY upsert"))


def _cpu_row(spent: Spent, options: Options) -> Row:
    """Where the fresh-insert case's time went, per body: the server's CPU (event loop and
    workers) and PostgreSQL's, against the bare script's and PostgreSQL's for it; the ratio is
    all of ours over all of the bare load's."""
    bodies = SENDERS * options.runs
    server, pg, bare_pg, script = (
        seconds / bodies * 1e3
        for seconds in (spent.server, spent.pg, spent.bare_pg, spent.bare_script)
    )
    return Row(
        f"… its CPU a {options.records:,}-record body: server + PostgreSQL (bare: script + PG)",
        f"{server:.0f} + {pg:.0f} ms (bare {script:.0f} + {bare_pg:.0f} ms)",
        (server + pg) / (script + bare_pg),
    )


def stored_row(layout: list[str], record: dict[str, object], sequence: int) -> tuple[object, ...]:
    """``record`` as the server stores it, its system columns filled in (the arrival times
    with a fixed one)."""
    values = {**record, SEQUENCE_COLUMN: sequence, **dict.fromkeys(ARRIVAL, TIMESTAMP)}
    return tuple(values.get(c) for c in layout)


def _create_bare_table(conn: psycopg.Connection, table: str) -> None:
    conn.execute(f"CREATE TABLE {BARE}.{quote(table)} (LIKE {SCHEMA}.{quote(table)} INCLUDING ALL)")


def bare_upsert(
    conn: psycopg.Connection,
    table: str,
    layout: list[str],
    bodies: list[list[dict[str, object]]],
    sequence: int,
) -> float:
    """The ceiling: per body, one transaction of COPY into a temporary table and one upsert
    from it; the seconds they took."""
    names = ", ".join(quote(c) for c in layout)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in layout if c != KEY)
    target = f"{BARE}.{quote(table)}"
    upsert = (
        f"INSERT INTO {target} AS existing ({names}) SELECT {names} FROM {LOAD} "
        f"ON CONFLICT ({quote(KEY)}) DO UPDATE SET {updates} "
        f"WHERE excluded.{quote(SEQUENCE_COLUMN)} >= existing.{quote(SEQUENCE_COLUMN)}"
    )
    params = [[stored_row(layout, r, sequence) for r in rows] for rows in bodies]
    started = time.perf_counter()
    for rows in params:
        with conn.transaction():
            conn.execute(f"CREATE TEMP TABLE {LOAD} (LIKE {target}) ON COMMIT DROP")
            with conn.cursor() as cursor, cursor.copy(f"COPY {LOAD} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(upsert)
    return time.perf_counter() - started


def _check_same_rows(conn: psycopg.Connection, table: str, layout: list[str]) -> None:
    """Fail unless the server's table and the bare one hold the same rows (the arrival times
    aside): else the bare script would write other rows than the server."""
    compared = ", ".join(quote(c) for c in layout if c not in ARRIVAL)
    ours = f"SELECT {compared} FROM {SCHEMA}.{quote(table)}"
    theirs = f"SELECT {compared} FROM {BARE}.{quote(table)}"
    differ = conn.execute(
        f"SELECT count(*) FROM (({ours} EXCEPT ALL {theirs}) "
        f"UNION ALL ({theirs} EXCEPT ALL {ours})) AS differing"
    ).fetchone()
    if differ is None or differ[0]:
        raise RuntimeError(f"the server's {table} and the bare one differ in {differ} rows")


async def _big_table_cases(
    session: aiohttp.ClientSession, server: Server, conn: psycopg.Connection, options: Options
) -> list[Row]:
    await _fill_big_table(session, server, conn, options)
    layout = postgres.columns(conn, SCHEMA, BIG)
    ours: dict[str, list[float]] = {mode: [] for mode in BIG_MODES}
    bare: dict[str, list[float]] = {mode: [] for mode in BIG_MODES}
    for run in range(options.runs + 1):  # run 0 warms up
        for mode in BIG_MODES:
            senders = _big_senders(mode, run, options)
            bodies = [[batch_body(BIG, rows, SEQUENCE[mode])] for rows in senders]
            postgres.checkpoint(conn)
            server_time = await post_concurrently(session, server, bodies)
            postgres.checkpoint(conn)
            bare_time = bare_upsert(conn, BIG, layout, senders, SEQUENCE[mode])
            if run:
                ours[mode].append(server_time)
                bare[mode].append(bare_time)
    _check_same_rows(conn, BIG, layout)
    case = f"PostgreSQL /batch {SENDERS}×{options.records:,}, {{}}, {options.big_rows:,}-row table"
    count = SENDERS * options.records
    return [_ceiling_row(case.format(LABEL[m]), count, ours[m], bare[m]) for m in BIG_MODES]


async def _fill_big_table(
    session: aiohttp.ClientSession, server: Server, conn: psycopg.Connection, options: Options
) -> None:
    """``--big-rows`` rows in the server's table (its first body through the server, the rest
    by COPY in the stored form) and the same in the bare one, both vacuumed and analysed."""
    first = records(options.records, SEED)
    await post(session, server, "/v2/import/batch", batch_body(BIG, first, LOADED))
    layout = postgres.columns(conn, SCHEMA, BIG)
    names = ", ".join(quote(c) for c in layout)
    with conn.transaction(), conn.cursor() as cursor:
        with cursor.copy(f"COPY {SCHEMA}.{quote(BIG)} ({names}) FROM STDIN") as copy:
            for record in _rest(options.records, options.big_rows):
                copy.write_row(stored_row(layout, record, LOADED))
    _create_bare_table(conn, BIG)
    conn.execute(f"INSERT INTO {BARE}.{quote(BIG)} SELECT * FROM {SCHEMA}.{quote(BIG)}")
    for table in (f"{SCHEMA}.{quote(BIG)}", f"{BARE}.{quote(BIG)}"):
        conn.execute(f"VACUUM (ANALYZE) {table}")


def _rest(start: int, stop: int) -> Iterator[dict[str, object]]:
    for chunk in range(start, stop, CHUNK):
        yield from records(min(CHUNK, stop - chunk), SEED, start=chunk)


def _big_senders(mode: str, run: int, options: Options) -> list[list[dict[str, object]]]:
    """Each sender's records: new keys to insert, or a slice of the stored ones to update."""
    if mode == "insert":
        return [records(options.records, NEW_SEED + SENDERS * run + s) for s in range(SENDERS)]
    slots = options.big_rows // options.records  # at least two (options.parse checks)
    return [
        records(options.records, SEED, start=(SENDERS * run + s) % slots * options.records)
        for s in range(SENDERS)
    ]
