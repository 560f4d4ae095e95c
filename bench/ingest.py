"""Ingest benchmark: the server against the bare SQLite ceiling and a bare aiohttp handler, side
by side in one run, printed as one table of medians and ratios beside issue 5's targets; then
issue 18's: /batch into PostgreSQL against a bare COPY upsert, and 1-record pushes from
``--processes 2`` against one process, for both destinations and the bare aiohttp app.

Not a test: it reports figures (medians of ``--runs`` runs after a warm-up). The servers run as
their own processes, as in production; this process only sends requests and times them, except
the 1-record load, which comes from yet another process (wrk, or ``loadgen.py``).

    make bench                      # or: .venv/bin/python bench/ingest.py --runs 5
    .venv/bin/python bench/ingest.py --quick    # every figure from small sizes, about 2 minutes
    .venv/bin/python bench/ingest.py --quick --only postgres,processes    # issue 18's alone

Modules, one per concern: ``workload`` (what is sent), ``servers`` (the processes), ``ceiling``
(bare sqlite3), ``batch_cases`` and ``big_table`` (/batch), ``push_cases`` (/push),
``server_load`` (64 connections), ``resources`` (start-up, RSS, WAL), ``costs`` (where a body's
time goes, and the loading model's cost by record shape), ``postgres`` (a throwaway cluster;
its cases are skipped without PostgreSQL's binaries), ``postgres_cases`` (/batch into it),
``process_load`` (2 processes vs 1), ``report`` (the table).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

import aiohttp
import batch_cases
import big_table
import costs
import postgres
import postgres_cases
import process_load
import push_cases
import resources
import server_load
import servers
from options import Options, parse, wanted
from report import Row, mib, print_table, stage
from servers import Server, create_token
from workload import batch_body, records


async def run(options: Options, work: Path) -> list[Row]:
    rows = await sqlite_cases(options, work) if wanted(options, "sqlite") else []
    if not (wanted(options, "postgres") or wanted(options, "processes")):
        return rows
    with stage("issue 18, with a PostgreSQL cluster"), postgres.start() as pg:
        if wanted(options, "postgres"):
            with stage("PostgreSQL /batch against a bare COPY upsert"):
                async with aiohttp.ClientSession(timeout=big_table.TIMEOUT) as session:
                    rows += await postgres_cases.batch_cases(session, pg, work, options)
        if wanted(options, "processes"):
            with stage(f"/push, {options.connections} connections, 2 processes vs 1"):
                rows += process_load.process_cases(work, options, pg)
    return rows


async def sqlite_cases(options: Options, work: Path) -> list[Row]:
    with stage("where a body's time goes, in this process"):
        explained = await costs.run(options)
    with stage(f"pre-filling the {options.big_rows:,}-row table"):
        big = await big_table.prefill(work, options)
    data_dir = work / "data"
    token = create_token(data_dir)
    server = Server(data_dir, token, options.durability)
    try:
        async with aiohttp.ClientSession(timeout=big_table.TIMEOUT) as session:
            with stage("/batch, fresh table"):
                rows = await batch_cases.fresh_table_cases(
                    session, server, big.shape, work, options
                )
            with stage("/batch, big table"):
                rows += await big_table.big_table_cases(big, work, options)
            with stage("/batch, two tables vs one"):
                rows += await batch_cases.two_tables_vs_one(session, server, options)
            with stage("/push, JSON vs Transit, one connection"):
                rows += await push_cases.json_vs_transit(session, server, options)
                rows.append(await push_cases.one_connection_latency(session, server, options))
            with stage(f"/push, {options.connections} connections"):
                rows += server_load.one_record_load(server, options)
    finally:
        server.stop()
    with stage("start-up"):
        rows.append(resources.startup(data_dir, token, options))
    with stage("peak RSS"):
        rows.append(await resources.peak_rss(data_dir, token, options))
    with stage("WAL under load"):
        rows.append(await resources.wal_under_load(data_dir, token, options))
    return rows + explained


def title(options: Options, seconds: float) -> str:
    body = len(batch_body("fresh_insert_0", records(options.records, 0), 2000))
    return (
        f"importapi-lite ingest benchmark: medians of {options.runs} run(s) after a warm-up, "
        f"{os.cpu_count()} cores, --durability {options.durability} --workers {options.workers}, "
        f"{seconds:.0f} s\n"
        f"/batch bodies of {options.records:,} records ({mib(body)}) from 2 concurrent senders; "
        "ratios to bare are the server's rate over the bare one's"
    )


def main() -> None:
    options = parse(description="importapi-lite against bare SQLite and bare aiohttp (issue 5).")
    servers.SERVE_ARGS[:] = ["--workers", str(options.workers)]
    work = Path(tempfile.mkdtemp(prefix="importapi-bench-"))
    started = time.perf_counter()
    try:
        rows = asyncio.run(run(options, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(title(options, time.perf_counter() - started), rows)


if __name__ == "__main__":
    main()
