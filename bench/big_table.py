"""``/batch`` into a table already holding ``--big-rows`` rows, against the ceiling in the same
state (issue 5, item 2).

The table is built once: the server loads the first body (so the file, its DDL and metadata are
the server's own, and ``ceiling.check_stored_rows`` confirms how it stores a row), then the rest
is added with bare ``sqlite3`` in the stored form, which takes seconds where the server would
take minutes. Every run starts a server on a fresh copy of that data directory and the ceiling
upserts into a fresh copy of the same file, so both see the very same table.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import ceiling
from batch_cases import LABEL, LOADED, SENDERS, SEQUENCE, ceiling_row, remove_database
from ceiling import TableShape
from options import Options
from report import Row
from servers import Server, create_token, post, post_concurrently, table_path
from workload import batch_body, records

TABLE = "big"
WARM_UP = "warm_up"
SEED = 7  # the pre-filled rows' keys; updates and stale re-sends reuse slices of them
NEW_SEED = 1000  # fresh keys for inserts (plus the run and sender)
# One copy of the table serves every mode of a run: those that leave the row count as it is go
# first, so each mode meets a table of exactly --big-rows rows.
ORDER = ("stale", "update", "insert")
CHUNK = 50_000  # rows generated at a time while pre-filling, to bound memory
TIMEOUT = aiohttp.ClientTimeout(total=None)


@dataclass(frozen=True)
class BigTable:
    data_dir: Path  # a stopped server's data directory, never served itself
    token: str
    shape: TableShape
    rows: int

    @property
    def path(self) -> Path:
        return table_path(self.data_dir, TABLE)


async def prefill(work: Path, options: Options) -> BigTable:
    data_dir = work / "big"
    token = create_token(data_dir)
    first = records(options.records, SEED)
    server = Server(data_dir, token, options.durability)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            await post(session, server, "/v2/import/batch", batch_body(TABLE, first, LOADED))
    finally:
        server.stop()  # closing its connections checkpoints the WAL into the file
    path = table_path(data_dir, TABLE)
    shape = TableShape.read(path, TABLE)
    ceiling.check_stored_rows(path, shape, first, LOADED)
    ceiling.fill(path, shape, _rows(options.records, options.big_rows), LOADED)
    return BigTable(data_dir, token, shape, options.big_rows)


def _rows(start: int, stop: int) -> Iterator[dict[str, object]]:
    for chunk in range(start, stop, CHUNK):
        yield from records(min(CHUNK, stop - chunk), SEED, start=chunk)


async def big_table_cases(big: BigTable, work: Path, options: Options) -> list[Row]:
    ours: dict[str, list[float]] = {mode: [] for mode in ORDER}
    bare: dict[str, list[float]] = {mode: [] for mode in ORDER}
    for run in range(options.runs + 1):  # run 0 warms up
        senders = {mode: _senders(mode, run, big.rows, options.records) for mode in ORDER}
        server_times = await _on_server_copy(big, work, senders, options)
        ceiling_times = _on_ceiling_copy(big, work, senders, options)
        for mode in ORDER:
            if run:
                ours[mode].append(server_times[mode])
                bare[mode].append(ceiling_times[mode])
    rows = []
    for mode in SEQUENCE:
        case = f"/batch {SENDERS}×{options.records:,}, {LABEL[mode]}, {big.rows:,}-row table"
        rows.append(ceiling_row(case, SENDERS * options.records, ours[mode], bare[mode], mode))
    return rows


def _senders(mode: str, run: int, big_rows: int, count: int) -> list[list[dict[str, object]]]:
    """Each sender's records: new keys to insert, or a slice of the stored ones to re-send."""
    if mode == "insert":
        return [records(count, NEW_SEED + SENDERS * run + s) for s in range(SENDERS)]
    slots = big_rows // count  # at least two (options.parse checks), so the senders never overlap
    return [records(count, SEED, start=(SENDERS * run + s) % slots * count) for s in range(SENDERS)]


async def _on_server_copy(
    big: BigTable, work: Path, senders: dict[str, list[list[dict[str, object]]]], options: Options
) -> dict[str, float]:
    """Each mode's seconds on a server over a fresh copy of the pre-filled data directory."""
    bodies = {
        mode: [[batch_body(TABLE, rows, SEQUENCE[mode])] for rows in senders[mode]]
        for mode in ORDER
    }
    data_dir = work / "big-run"
    shutil.copytree(big.data_dir, data_dir)
    server = Server(data_dir, big.token, options.durability)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            # A server just started: both its workers get a body (of another table) first, so
            # the runs time the table's state, not the workers' start (start-up is its own row).
            warm = [[batch_body(WARM_UP, records(2_000, s), 1)] for s in range(SENDERS)]
            await post_concurrently(session, server, warm)
            return {mode: await post_concurrently(session, server, bodies[mode]) for mode in ORDER}
    finally:
        server.stop()
        shutil.rmtree(data_dir)


def _on_ceiling_copy(
    big: BigTable, work: Path, senders: dict[str, list[list[dict[str, object]]]], options: Options
) -> dict[str, float]:
    """Each mode's seconds of the ceiling on a fresh copy of the pre-filled table's file."""
    path = work / "bare-big.db"
    shutil.copyfile(big.path, path)
    try:
        return {
            mode: ceiling.upsert(path, big.shape, senders[mode], SEQUENCE[mode], options.durability)
            for mode in ORDER
        }
    finally:
        remove_database(path)
