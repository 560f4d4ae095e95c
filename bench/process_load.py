"""1-record pushes at ``--connections`` connections: ``serve --processes 2`` against one process
(issue 18), for SQLite and for PostgreSQL, beside the bare aiohttp app run with the same process
counts; and, with 2 processes, pushes spread over two tables against all of them into one.

One event loop is what limits small pushes (``server_load``), and a second process is the way
to a second core; the bare app's own 2-vs-1 ratio shows what the machine leaves for it, since
the load generator needs a share of the same cores. Each run serves one load to every
configuration in turn, so a drift in the machine's speed touches them alike; each load gets
tables of its own, and the rows committed afterwards must cover its 2xx answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import postgres
from options import Options
from postgres import Postgres
from report import Row, Target, at_least, median
from server_load import Load, count_rows, generator_name, measured_load
from servers import BareApp, Server, create_token, table_path

NAMES = {"bare": "bare aiohttp", "sqlite": "SQLite", "postgresql": "PostgreSQL"}
PREFIX = {"bare": "bare", "sqlite": "lite", "postgresql": "pg"}  # of table names: not sqlite_
BOUND = 1.5  # issue 18: 2 processes over one (SQLite), two tables over one


@dataclass(frozen=True)
class Subject:
    """A configuration under load: a server (or the bare app), its process count, and how
    many tables its pushes are spread over; ``count`` the rows committed in given tables
    (None for the bare app, which keeps nothing)."""

    kind: str
    processes: int
    tables: int
    url: str
    token: str
    pid: int
    count: Callable[[list[str]], int] | None

    @property
    def key(self) -> tuple[str, int, int]:
        return self.kind, self.processes, self.tables


def process_cases(work: Path, options: Options, pg: Postgres | None) -> list[Row]:
    generator = generator_name(options)
    running: list[Server | BareApp] = []
    loads: dict[tuple[str, int, int], list[Load]] = {}
    checked = [0, 0, 0]  # 2xx answers, rows committed, failures, over every server load
    try:
        subjects = _start(work, options, pg, running)
        for run in range(options.runs + 1):  # run 0 warms up, and is checked too
            for s in subjects:
                tables = [
                    f"{PREFIX[s.kind]}_{s.processes}p_{s.tables}t_{run}_{t}"
                    for t in range(s.tables)
                ]
                load = measured_load(s.url, s.token, ",".join(tables), generator, options, s.pid)
                if s.count is not None:
                    checked[0] += load.acknowledged
                    checked[1] += s.count(tables)
                    checked[2] += load.failed
                if run:
                    loads.setdefault(s.key, []).append(load)
    finally:
        for each in running:
            each.stop()
    return _rows(loads, checked, generator, options)


def _start(
    work: Path, options: Options, pg: Postgres | None, running: list[Server | BareApp]
) -> list[Subject]:
    """Every configuration's process started (each added to ``running`` at once, to be stopped
    whatever happens next); its subjects, in the order each run loads them."""
    subjects = []
    for processes in (1, 2):
        bare = BareApp(processes)
        running.append(bare)
        subjects.append(Subject("bare", processes, 1, bare.url, "bare", bare.process.pid, None))
    for processes in (1, 2):
        data_dir = work / f"processes-{processes}"
        token = create_token(data_dir)
        server = Server(data_dir, token, options.durability, processes=processes)
        running.append(server)
        subjects += _subjects("sqlite", server, partial(_count_sqlite, data_dir))
    if pg is None:
        return subjects
    token = create_token(work / "processes-pg", pg.url)
    for processes in (1, 2):
        data_dir = work / f"processes-pg-{processes}"
        server = Server(
            data_dir, token, options.durability, destination=pg.url, processes=processes
        )
        running.append(server)
        subjects += _subjects("postgresql", server, partial(_count_pg, pg))
    return subjects


def _subjects(kind: str, server: Server, count: Callable[[list[str]], int]) -> list[Subject]:
    """One table for one process; one and two tables for two."""
    processes = server.processes
    return [
        Subject(kind, processes, tables, server.url, server.token, server.process.pid, count)
        for tables in ((1, 2) if processes == 2 else (1,))
    ]


def _count_sqlite(data_dir: Path, tables: list[str]) -> int:
    return sum(count_rows(table_path(data_dir, table), table) for table in tables)


def _count_pg(pg: Postgres, tables: list[str]) -> int:
    with pg.connect() as conn:
        return postgres.count_rows(conn, tables)


def _rows(
    loads: dict[tuple[str, int, int], list[Load]],
    checked: list[int],
    generator: str,
    options: Options,
) -> list[Row]:
    case = f"1-record /push, {options.connections} connections ({generator})"
    rate = {key: median([load.per_second for load in runs]) for key, runs in loads.items()}
    bare_one, bare_two = rate["bare", 1, 1], rate["bare", 2, 1]
    rows = [
        Row(
            f"{case}, bare aiohttp: 2 processes vs 1",
            f"{bare_two:,.0f} vs {bare_one:,.0f} req/s",
            bare_two / bare_one,
        )
    ]
    for kind in ("sqlite", "postgresql"):
        if (kind, 1, 1) not in rate:
            rows.append(postgres.skipped(f"{case}, {NAMES[kind]}"))
            continue
        one, two, spread = rate[kind, 1, 1], rate[kind, 2, 1], rate[kind, 2, 2]
        ratio = two / one
        rows.append(
            Row(
                f"{case}, {NAMES[kind]}: 2 processes vs 1",
                f"{two:,.0f} vs {one:,.0f} req/s ({two / bare_two:.2f}, {one / bare_one:.2f} "
                "of bare)",
                ratio,
                at_least(ratio, BOUND, f"≥{BOUND}× one process") if kind == "sqlite" else None,
            )
        )
        ratio = spread / two
        rows.append(
            Row(
                f"{case}, {NAMES[kind]}, 2 processes: two tables vs one",
                f"{spread:,.0f} vs {two:,.0f} req/s",
                ratio,
                at_least(ratio, BOUND, f"≥{BOUND}× one table"),
            )
        )
    acknowledged, committed, failed = checked
    rows.append(
        Row(
            f"{case}, 1 and 2 processes: 2xx committed",
            f"{acknowledged:,} 2xx, {committed:,} rows, {failed} failed",
            None,
            Target("rows ≥ 2xx, none failed", committed >= acknowledged and failed == 0),
        )
    )
    return rows
