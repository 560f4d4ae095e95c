"""1-record pushes at ``--connections`` connections against a bare aiohttp handler in the same
run (issue 5, item 4): requests per second, p50 and p99 of both.

The load comes from another process: wrk (Debian's ``wrk`` package, with ``push_one.lua``) when
installed, else ``loadgen.py``. Every request carries a key of its own, so after each load the
rows in the table count the requests the server committed; each 2xx must be among them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from options import Options
from report import Row, Target, at_least, at_most, median, ms
from servers import BENCH_DIR, BareApp, Server, cpu_seconds, main_thread_cpu_seconds

TABLE = "load"


@dataclass(frozen=True)
class Load:
    """What the load generator saw: answers, of which 2xx, failures (non-2xx or socket errors),
    its duration and the latency percentiles of the answers, in seconds; then what it cost the
    server: CPU seconds of all its processes, and of its event-loop thread alone."""

    requests: int
    acknowledged: int
    failed: int
    seconds: float
    p50: float
    p99: float
    cpu: float = 0.0
    loop_cpu: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def generator_name(options: Options) -> str:
    if options.load_generator == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return options.load_generator


def run_load(url: str, token: str, table: str, generator: str, options: Options) -> Load:
    if generator == "wrk":
        command = ["wrk", "--threads", "1", "--connections", str(options.connections)]
        command += ["--duration", f"{options.load_seconds}s", "--timeout", "60s"]
        command += ["--script", str(BENCH_DIR / "push_one.lua"), url, "--", table]
    else:
        command = [sys.executable, str(BENCH_DIR / "loadgen.py"), "--url", url, "--table", table]
        command += ["--connections", str(options.connections)]
        command += ["--seconds", str(options.load_seconds)]
    env = {**os.environ, "BENCH_TOKEN": token}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{command[0]} exited with {done.returncode}:\n{done.stderr}")
    for line in done.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return Load(**json.loads(line.removeprefix("BENCH_JSON ")))
    raise RuntimeError(f"no figures from {command[0]}:\n{done.stdout}\n{done.stderr}")


def measured_load(
    url: str, token: str, table: str, generator: str, options: Options, pid: int
) -> Load:
    """``run_load``, with the CPU the server at ``pid`` spent meanwhile."""
    cpu, loop_cpu = cpu_seconds(pid), main_thread_cpu_seconds(pid)
    load = run_load(url, token, table, generator, options)
    cpu, loop_cpu = cpu_seconds(pid) - cpu, main_thread_cpu_seconds(pid) - loop_cpu
    return dataclasses.replace(load, cpu=cpu, loop_cpu=loop_cpu)


def count_rows(path: Path, table: str) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    finally:
        db.close()


def one_record_load(server: Server, options: Options) -> list[Row]:
    generator = generator_name(options)
    bare = BareApp()
    ours: list[Load] = []
    floor: list[Load] = []
    acknowledged = committed = failed = 0
    try:
        for run in range(options.runs + 1):  # run 0 warms up, and is checked too
            table = f"{TABLE}_{run}"
            load = measured_load(
                server.url, server.token, table, generator, options, server.process.pid
            )
            acknowledged += load.acknowledged
            failed += load.failed
            committed += count_rows(server.table_path(table), table)
            floor_load = measured_load(
                bare.url, "bare", table, generator, options, bare.process.pid
            )
            if run:
                ours.append(load)
                floor.append(floor_load)
    finally:
        bare.stop()
    return _rows(ours, floor, (acknowledged, committed, failed), generator, options)


def _rows(
    ours: list[Load],
    floor: list[Load],
    checked: tuple[int, int, int],
    generator: str,
    options: Options,
) -> list[Row]:
    case = f"1-record /push, {options.connections} connections ({generator})"
    rate, bare_rate = (median([load.per_second for load in loads]) for loads in (ours, floor))
    p50, bare_p50 = (median([load.p50 for load in loads]) for loads in (ours, floor))
    p99, bare_p99 = (median([load.p99 for load in loads]) for loads in (ours, floor))
    acknowledged, committed, failed = checked  # over every run, the warm-up too
    speed = rate / bare_rate
    slowness = p99 / bare_p99
    cpu, bare_cpu = (
        median([load.cpu / load.requests for load in loads]) for loads in (ours, floor)
    )
    loop_busy = median([load.loop_cpu / load.seconds for load in ours])
    return [
        Row(
            f"{case}: req/s",
            f"{rate:,.0f} req/s (bare {bare_rate:,.0f})",
            speed,
            at_least(speed, 0.5, "≥0.5× bare req/s"),
        ),
        Row(
            f"{case}: p50, p99",
            f"{ms(p50)}, {ms(p99)} (bare {ms(bare_p50)}, {ms(bare_p99)})",
            slowness,
            at_most(slowness, 3, "p99 ≤3× bare p99"),
        ),
        Row(
            f"{case}: 2xx committed",
            f"{acknowledged:,} 2xx, {committed:,} rows, {failed} failed",
            None,
            Target("rows ≥ 2xx, none failed", committed >= acknowledged and failed == 0),
        ),
        Row(
            f"{case}: server CPU a request, bare's over ours",
            f"{cpu * 1e6:.0f} µs (bare {bare_cpu * 1e6:.0f} µs)",
            bare_cpu / cpu,
        ),
        Row(
            f"{case}: the server's event-loop thread busy, share of a core",
            f"{loop_busy:.0%}",
            loop_busy,
        ),
    ]
