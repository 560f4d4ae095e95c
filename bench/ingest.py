"""Ingest benchmark: the server against the bare SQLite ceiling, side by side in one run.

Not a test: it reports figures (medians of ``--runs`` runs after a warm-up) and ratios. The server
runs as its own process, as in production; this process only sends requests and times them.

    make bench                      # or: .venv/bin/python bench/ingest.py --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import decimal
import io
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from transit.writer import Writer

RECORDS = 20_000
SYNCHRONOUS = "FULL"  # the ceiling syncs as the server does: set from --durability
PUSH_RECORDS = 5_000
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "a": {"type": "integer"},
        "b": {"type": "string"},
        "c": {"type": "number"},
        "d": {"type": "boolean"},
        "e": {"type": "string"},
        "f": {"type": "integer"},
        "g": {"type": "string", "format": "date-time"},
        "h": {"type": ["null", "string"]},
        "i": {"type": "string"},
    },
}


def records(count: int, seed: int) -> list[dict[str, object]]:
    """Ten-field records of about 210 bytes with random-looking UUID keys."""
    return [
        {
            "id": str(uuid.UUID(int=(seed << 64) + i * 2654435761)),
            "a": i,
            "b": f"name {i}",
            "c": i * 1.5,
            "d": i % 2 == 0,
            "e": "x" * 20,
            "f": i % 7,
            "g": "2026-01-01T00:00:00.000000Z",
            "h": None,
            "i": "y" * 30,
        }
        for i in range(count)
    ]


def bare_sqlite(rows: list[dict[str, object]], sequences: list[int], path: Path) -> float:
    """The ceiling: one executemany upsert with the same sequence rule and sync mode, WAL."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={SYNCHRONOUS}")
    columns = [*rows[0], "_sdc_sequence"]
    db.execute(f"CREATE TABLE IF NOT EXISTS t ({', '.join(columns)}, PRIMARY KEY (id))")
    sql = (
        f"INSERT INTO t AS e ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
        f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in columns[1:])} "
        "WHERE excluded._sdc_sequence >= e._sdc_sequence"
    )
    params = [(*r.values(), s) for r, s in zip(rows, sequences, strict=True)]
    started = time.perf_counter()
    db.execute("BEGIN")
    db.executemany(sql, params)
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, durability: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "importapi_lite",
                "tokens",
                "create",
                "--client-id",
                "7723",
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = created.stdout.strip().splitlines()[-1]
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "importapi_lite",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--max-body-bytes",
                "20971520",
                "--durability",
                durability,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def wait(self, session: aiohttp.ClientSession) -> None:
        for _ in range(200):
            try:
                async with session.get(self.url + "/v2/import/status") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


async def timed_post(
    session: aiohttp.ClientSession, server: Server, path: str, body: bytes, content_type: str
) -> float:
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": content_type}
    started = time.perf_counter()
    async with session.post(server.url + path, data=body, headers=headers) as response:
        text = await response.text()
        assert response.status == 201, text
    return time.perf_counter() - started


def batch_body(table: str, rows: list[dict[str, object]], sequences: list[int]) -> bytes:
    messages = [
        {"action": "upsert", "sequence": s, "data": r} for r, s in zip(rows, sequences, strict=True)
    ]
    body = {"table_name": table, "schema": SCHEMA, "key_names": ["id"], "messages": messages}
    return json.dumps(body).encode()


def push_records(table: str, count: int, typed: bool) -> list[dict[str, object]]:
    out = []
    for i, row in enumerate(records(count, 99)):
        data = dict(row)
        if typed:  # the values only Transit can carry: ~m ~f ~u ~i
            data["g"] = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            data["c"] = decimal.Decimal(f"{i}.25")
            data["id"] = uuid.UUID(str(row["id"]))
            data["a"] = 2**60 + i
        out.append(
            {
                "client_id": 7723,
                "table_name": table,
                "sequence": i,
                "action": "upsert",
                "key_names": ["id"],
                "data": data,
            }
        )
    return out


def transit_bytes(value: object) -> bytes:
    stream = io.StringIO()
    Writer(stream, "json").write(value)
    return stream.getvalue().encode()


def median(runs: list[float]) -> float:
    return statistics.median(runs)


async def main(runs: int, durability: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="importapi-bench-"))
    server = Server(work / "data", durability)
    results: list[tuple[str, float, float | None]] = []  # (label, rows/s, ratio to ceiling)
    try:
        async with aiohttp.ClientSession() as session:
            await server.wait(session)

            async def measure(
                label: str,
                count: int,
                server_run: Callable[[int], Awaitable[float]],
                ceiling_run: Callable[[int], float] | None,
            ) -> None:
                ours, bare = [], []
                for run in range(runs + 1):  # run 0 warms up
                    elapsed = await server_run(run)
                    ceiling = ceiling_run(run) if ceiling_run else None
                    if run:
                        ours.append(elapsed)
                        if ceiling is not None:
                            bare.append(ceiling)
                rate = count / median(ours)
                ratio = (median(bare) / median(ours)) if bare else None
                results.append((label, rate, ratio))

            for mode in ("insert (fresh table)", "update (newer sequence)", "stale re-send"):

                async def server_run(run: int, mode: str = mode) -> float:
                    table = f"b{run}_{mode.split()[0]}"
                    return await _batch_mode(session, server, table, records(RECORDS, run), mode)

                def ceiling_run(run: int, mode: str = mode) -> float:
                    rows = records(RECORDS, run)
                    path = work / f"bare-{mode.split()[0]}-{run}.db"
                    return _bare_mode(rows, mode, path)

                await measure(f"/batch 20k, {mode}", RECORDS, server_run, ceiling_run)

            json_rate: list[float] = []
            for encoding in ("JSON", "Transit"):

                async def push_run(run: int, encoding: str = encoding) -> float:
                    table = f"p_{encoding}_{run}"
                    if encoding == "JSON":
                        body = json.dumps(push_records(table, PUSH_RECORDS, False)).encode()
                        media = "application/json"
                    else:
                        body = transit_bytes(push_records(table, PUSH_RECORDS, True))
                        media = "application/transit+json"
                    return await timed_post(session, server, "/v2/import/push", body, media)

                await measure(f"/push 5k, {encoding}", PUSH_RECORDS, push_run, None)
                json_rate.append(results[-1][1])

            latencies = []
            headers = {
                "Authorization": f"Bearer {server.token}",
                "Content-Type": "application/json",
            }
            for i in range(1000):
                body = json.dumps(
                    [
                        {
                            "client_id": 7723,
                            "table_name": "one",
                            "sequence": i,
                            "action": "upsert",
                            "key_names": ["id"],
                            "data": {"id": i % 100, "v": i},
                        }
                    ]
                )
                started = time.perf_counter()
                async with session.post(
                    server.url + "/v2/import/push", data=body, headers=headers
                ) as r:
                    assert r.status == 201
                latencies.append(time.perf_counter() - started)
    finally:
        server.stop()

    print(
        f"importapi-lite ingest benchmark: medians of {runs} runs, {os.cpu_count()} cores, "
        f"--durability {durability}"
    )
    print(f"{'case':44} {'rows/s':>10} {'vs bare SQLite':>15}")
    for label, rate, ratio in results:
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"{label:44} {rate:>10,.0f} {shown:>15}")
    print(f"{'Transit push rate / JSON push rate':44} {json_rate[1] / json_rate[0]:>10.2f}")
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(
        f"{'1-record push, one connection: p50 / p99':44} {p50 * 1e3:>7.2f} ms / {p99 * 1e3:.2f} ms"
    )


async def _batch_mode(
    session: aiohttp.ClientSession,
    server: Server,
    table: str,
    rows: list[dict[str, object]],
    mode: str,
) -> float:
    count = len(rows)
    if mode != "insert (fresh table)":  # load the rows first, at sequence 1000
        await timed_post(
            session,
            server,
            "/v2/import/batch",
            batch_body(table, rows, [1000] * count),
            "application/json",
        )
    sequence = {"insert (fresh table)": 1, "update (newer sequence)": 2000, "stale re-send": 1}[
        mode
    ]
    body = batch_body(table, rows, [sequence] * count)
    return await timed_post(session, server, "/v2/import/batch", body, "application/json")


def _bare_mode(rows: list[dict[str, object]], mode: str, path: Path) -> float:
    count = len(rows)
    if mode != "insert (fresh table)":
        bare_sqlite(rows, [1000] * count, path)
    sequence = {"insert (fresh table)": 1, "update (newer sequence)": 2000, "stale re-send": 1}[
        mode
    ]
    return bare_sqlite(rows, [sequence] * count, path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per case (median)")
    parser.add_argument("--durability", choices=("fsync", "fast"), default="fsync")
    arguments = parser.parse_args()
    SYNCHRONOUS = {"fsync": "FULL", "fast": "NORMAL"}[arguments.durability]
    asyncio.run(main(arguments.runs, arguments.durability))
