"""A load generator in its own process, for when wrk is not installed: ``--connections`` clients
each posting 1-record pushes back to back for ``--seconds``, every record with a key of its own.
``--table`` may name several tables, comma-separated: the clients take them in turn.

Prints one line, ``BENCH_JSON {...}``, as ``push_one.lua`` does under wrk. The token comes from
``BENCH_TOKEN`` (not the command line, which other users can read).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import aiohttp


async def client(
    session: aiohttp.ClientSession,
    url: str,
    table: str,
    number: int,
    deadline: float,
    answers: list[tuple[int, float]],
    errors: list[str],
) -> None:
    sequence = 0
    while time.perf_counter() < deadline:
        sequence += 1
        record = {
            "client_id": 7723,
            "table_name": table,
            "sequence": sequence,
            "action": "upsert",
            "key_names": ["id"],
            "data": {"id": f"{number}-{sequence}", "v": sequence},
        }
        started = time.perf_counter()
        try:
            async with session.post(url, data=json.dumps([record])) as response:
                await response.read()
                answers.append((response.status, time.perf_counter() - started))
        except aiohttp.ClientError as exc:
            errors.append(type(exc).__name__)


async def generate(url: str, table: str, connections: int, seconds: float) -> dict[str, float]:
    tables = table.split(",")
    headers = {
        "Authorization": f"Bearer {os.environ['BENCH_TOKEN']}",
        "Content-Type": "application/json",
    }
    answers: list[tuple[int, float]] = []
    errors: list[str] = []
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                client(
                    session,
                    url + "/v2/import/push",
                    tables[n % len(tables)],
                    n,
                    deadline,
                    answers,
                    errors,
                )
                for n in range(connections)
            )
        )
        elapsed = time.perf_counter() - started
    latencies = sorted(latency for _, latency in answers)
    acknowledged = sum(1 for status, _ in answers if status // 100 == 2)
    return {
        "requests": len(answers),
        "acknowledged": acknowledged,
        "failed": len(answers) - acknowledged + len(errors),
        "seconds": elapsed,
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    figures = asyncio.run(generate(args.url, args.table, args.connections, args.seconds))
    print("BENCH_JSON " + json.dumps(figures))


if __name__ == "__main__":
    main()
