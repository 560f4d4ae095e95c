"""Start-up time, peak memory under concurrent 4 MiB uploads, and WAL size under sustained load
(issue 5, item 6). Each starts servers of its own over the main data directory, which by then
holds every table the other cases loaded, with their servers stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from options import Options
from report import Row, at_most, median, mib, rate
from servers import Server, post
from workload import batch_body, batch_body_near, records

TIMEOUT = aiohttp.ClientTimeout(total=None)
RSS_TABLES = 8  # the uploads are spread over this many tables
WAL_TABLE = "wal"
WAL_SENDERS = 2  # each to a table of its own
WAL_BODIES = 5  # per sender, sent round and round: inserts at first, then rewrites of the rows
WAL_SAMPLE_SECONDS = 0.25


def startup(data_dir: Path, token: str, options: Options) -> Row:
    """Seconds from exec of ``importapi-lite serve`` to its first 200 on /v2/import/status."""
    times = []
    for _ in range(options.starts):
        server = Server(data_dir, token, options.durability)
        times.append(server.startup)
        server.stop()
    seconds = median(times)
    case = f"start-up: exec to first 200 on /v2/import/status ({options.starts} starts)"
    return Row(case, f"{seconds:.2f} s", None, at_most(seconds, 1.0, "≤1 s"))


async def peak_rss(data_dir: Path, token: str, options: Options) -> Row:
    """VmHWM of a fresh server after ``--uploads`` /batch bodies of about 4 MiB all at once."""
    bodies = [
        batch_body_near(f"rss_{t}", options.upload_records, seed=t) for t in range(RSS_TABLES)
    ]
    server = Server(data_dir, token, options.durability)
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            statuses = await asyncio.gather(
                *(_upload(session, server, bodies[i % RSS_TABLES]) for i in range(options.uploads))
            )
        peak = server.peak_rss_bytes()
    finally:
        server.stop()
    case = f"peak RSS (server + workers), {options.uploads} concurrent /batch uploads of "
    case += mib(len(bodies[0]))
    figure = f"{mib(peak)} ({statuses.count(201)} of {options.uploads} got 201)"
    return Row(case, figure, None, at_most(peak, 512 * 2**20, "≤512 MiB"))


async def _upload(session: aiohttp.ClientSession, server: Server, body: bytes) -> int:
    async with session.post(
        server.url + "/v2/import/batch", data=body, headers=server.headers
    ) as response:
        await response.read()
        return response.status


async def wal_under_load(data_dir: Path, token: str, options: Options) -> Row:
    """The largest total size of the -wal files, sampled while two senders keep /batch busy."""
    server = Server(data_dir, token, options.durability)
    seconds = options.wal_minutes * 60
    sizes: list[int] = []
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
            sampling = asyncio.create_task(_sample_wal(data_dir, sizes))
            started = time.perf_counter()
            sent = await asyncio.gather(
                *(
                    _keep_sending(session, server, s, started + seconds, options)
                    for s in range(WAL_SENDERS)
                )
            )
            elapsed = time.perf_counter() - started
            sampling.cancel()
    finally:
        server.stop()
    case = f"WAL: largest total of -wal files, {options.wal_minutes:g} min of /batch"
    figure = f"{mib(max(sizes))} (at {rate(sum(sent) / elapsed)})"
    return Row(case, figure, None, at_most(max(sizes), 256 * 2**20, "≤256 MiB"))


async def _keep_sending(
    session: aiohttp.ClientSession, server: Server, sender: int, deadline: float, options: Options
) -> int:
    """Post this sender's bodies round and round until ``deadline``; the records sent."""
    table = f"{WAL_TABLE}_{sender}"
    bodies = [
        batch_body(table, records(options.records, seed=100 * sender + b), 1)
        for b in range(WAL_BODIES)
    ]
    sent = 0
    while time.perf_counter() < deadline:
        await post(
            session, server, "/v2/import/batch", bodies[sent // options.records % WAL_BODIES]
        )
        sent += options.records
    return sent


async def _sample_wal(data_dir: Path, sizes: list[int]) -> None:
    while True:
        sizes.append(sum(_size(path) for path in data_dir.rglob(f"{WAL_TABLE}_*.sqlite3-wal")))
        await asyncio.sleep(WAL_SAMPLE_SECONDS)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # checkpointed and removed between listing and stat
        return 0
