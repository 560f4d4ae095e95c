"""``/batch`` on a fresh table against the ceiling (issue 5, item 2), and two tables ingested at
once against one (item 5). Both run on one long-lived server, a new table per run.

Two senders post at once, as target-stitch does with ``turbo_boost_factor`` > 1; a case's time is
the wall clock from the first byte sent to the last 201. The ceiling upserts the same rows into a
table with the server's DDL, one transaction per body, one after the other.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import ceiling
from ceiling import TableShape
from options import Options
from report import Row, at_least, median, rate
from servers import Server, own_cpu_seconds, post, post_concurrently
from workload import batch_body, records

SENDERS = 2
LOADED = 1000  # the sequence rows are first loaded at, before updates and stale re-sends
SEQUENCE = {"insert": 1, "update": 2000, "stale": 1}  # what each mode then sends
LABEL = {
    "insert": "inserts",
    "update": "updates (newer sequence)",
    "stale": "stale re-sends (older sequence)",
}
BOUND = {"insert": 0.85, "update": 0.7, "stale": 0.7}  # issue 5's share of the ceiling


def ceiling_row(case: str, rows: int, ours: list[float], bare: list[float], mode: str) -> Row:
    """A case against the ceiling: the server's median rate, and the bare one beside it."""
    ratio = median(bare) / median(ours)
    figure = f"{rate(rows / median(ours))} (bare {rows / median(bare):,.0f})"
    return Row(case, figure, ratio, at_least(ratio, BOUND[mode], f"≥{BOUND[mode]} of bare"))


def remove_database(path: Path) -> None:
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        file.unlink(missing_ok=True)


async def fresh_table_cases(
    session: aiohttp.ClientSession,
    server: Server,
    shape: TableShape,
    work: Path,
    options: Options,
) -> list[Row]:
    rows = []
    for mode in SEQUENCE:
        ours, bare = [], []
        spent: list[CpuSpent] = []
        for run in range(options.runs + 1):  # run 0 warms up
            senders = [records(options.records, seed=SENDERS * run + s) for s in range(SENDERS)]
            server_time, cpu = await _fresh_on_server(
                session, server, f"fresh_{mode}_{run}", senders, mode
            )
            spent.append(cpu)
            ceiling_time = _fresh_ceiling(
                shape, work / f"bare-{mode}-{run}.db", senders, mode, options
            )
            if run:
                ours.append(server_time)
                bare.append(ceiling_time)
        case = f"/batch {SENDERS}×{options.records:,}, {LABEL[mode]}, fresh table"
        rows.append(ceiling_row(case, SENDERS * options.records, ours, bare, mode))
        if mode == "insert":
            rows.append(_cpu_row(spent[1:], bare, options))
    return rows


@dataclass(frozen=True)
class CpuSpent:
    """CPU seconds of the server (with its workers) and of this process (the client), and the
    wall-clock seconds: as a point in time, or spent between two."""

    server: float
    client: float
    wall: float

    @classmethod
    def now(cls, server: Server) -> CpuSpent:
        return cls(server.cpu_seconds(), own_cpu_seconds(), time.perf_counter())

    def __sub__(self, other: CpuSpent) -> CpuSpent:
        return CpuSpent(
            self.server - other.server, self.client - other.client, self.wall - other.wall
        )


def _cpu_row(spent: list[CpuSpent], bare: list[float], options: Options) -> Row:
    """Where the fresh-insert case's time went: the CPU a body cost the server and the client,
    against the bare upsert's time a body; and how many of the machine's cores were busy."""
    bodies = SENDERS  # one body per sender in each run
    server_ms = median([s.server / bodies for s in spent]) * 1e3
    client_ms = median([s.client / bodies for s in spent]) * 1e3
    busy = median([(s.server + s.client) / s.wall for s in spent])
    return Row(
        f"… its CPU a {options.records:,}-record body, and cores busy (of {os.cpu_count()})",
        f"server {server_ms:.0f} ms, client {client_ms:.0f} ms (bare upsert "
        f"{median(bare) / bodies * 1e3:.0f} ms)",
        busy,
    )


async def _fresh_on_server(
    session: aiohttp.ClientSession,
    server: Server,
    table: str,
    senders: list[list[dict[str, object]]],
    mode: str,
) -> tuple[float, CpuSpent]:
    """The seconds the senders took, and the CPU spent meanwhile."""
    if mode != "insert":
        for rows in senders:
            await post(session, server, "/v2/import/batch", batch_body(table, rows, LOADED))
    bodies = [[batch_body(table, rows, SEQUENCE[mode])] for rows in senders]
    before = CpuSpent.now(server)
    seconds = await post_concurrently(session, server, bodies)
    return seconds, CpuSpent.now(server) - before


def _fresh_ceiling(
    shape: TableShape,
    path: Path,
    senders: list[list[dict[str, object]]],
    mode: str,
    options: Options,
) -> float:
    ceiling.create(path, shape)
    try:
        if mode != "insert":
            ceiling.upsert(path, shape, senders, LOADED, options.durability)
        return ceiling.upsert(path, shape, senders, SEQUENCE[mode], options.durability)
    finally:
        remove_database(path)


async def two_tables_vs_one(
    session: aiohttp.ClientSession, server: Server, options: Options
) -> list[Row]:
    """The same records from two senders, into one table, then into a table each."""
    one, two = [], []
    for run in range(options.runs + 1):
        one_time = await _two_senders(session, server, [f"one_{run}"] * SENDERS, options)
        two_time = await _two_senders(
            session, server, [f"two_{run}_{s}" for s in range(SENDERS)], options
        )
        if run:
            one.append(one_time)
            two.append(two_time)
    count = SENDERS * options.bodies_per_sender * options.records
    ratio = median(one) / median(two)
    case = f"/batch {SENDERS} senders × {options.bodies_per_sender}×{options.records:,}"
    return [
        Row(f"{case}, one table", rate(count / median(one))),
        Row(
            f"{case}, a table each",
            rate(count / median(two)),
            ratio,
            at_least(ratio, 1.5, "≥1.5× one table"),
        ),
    ]


async def _two_senders(
    session: aiohttp.ClientSession, server: Server, tables: list[str], options: Options
) -> float:
    bodies = [
        [
            batch_body(table, records(options.records, seed=100 * s + b), 1)
            for b in range(options.bodies_per_sender)
        ]
        for s, table in enumerate(tables)
    ]
    return await post_concurrently(session, server, bodies)
