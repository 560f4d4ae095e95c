"""Load test: many concurrent senders against a real server; every answer as expected, every
acknowledged record stored at its newest sequence, and the server's memory bounded.

Not a unit test: it reports figures. The server runs as its own process (``bench/crash.py``'s
``Server``: ``python -m importapi_lite serve`` on a free port, a fresh data directory, a token).
``senders`` clients, one request in flight each, send for ``seconds``: pushes as JSON and as
Transit (written by transit-python2's ``Writer``, as python-stitch-client writes them), batches,
validations, and a share of invalid requests that must get their own 4xx. Three tables share one
key space, so senders overwrite each other's keys; every data point's sequence comes from one
counter (19 digits, as target-stitch sends: above 2**53, so Transit writes them ``~i``), hence
the newest acknowledged sequence of each key is known. Rejected and validated requests carry
fresh sequences for real keys too: storing any of them would show.

At the end every key is read back with ``sqlite3`` (parent row and subtable rows) and must hold
exactly its newest acknowledged version. The one exception is a key whose newer data point went
out in a request with no definite answer (a timeout, a dropped connection, an unexpected status):
that request may have been stored, so the key may hold that version; such requests fail the run
anyway. The server's RSS is sampled from ``/proc`` throughout: the peak (VmHWM), and the median
of the last window against the first window after warm-up.

    make stress                # or: .venv/bin/python bench/load.py --senders 64 --seconds 60

``tests/test_load.py`` imports this file and runs a short form (``run(...)``) in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import io
import itertools
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import aiohttp
from transit.writer import Writer

BENCH = Path(__file__).resolve().parent


def _sibling(name: str) -> ModuleType:
    """``bench/<name>.py``, loaded once as ``importapi_<name>`` (tests/test_crash.py's name)."""
    module_name = f"importapi_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import crash  # mypy finds it next to this file; at run time it is loaded by path
else:
    crash = _sibling("crash")

JSON = "application/json"
TRANSIT = "application/transit+json"
TABLES = tuple(crash.CHILDREN)  # orders, customers, events: crash.stored reads them back
SEQUENCE_BASE = 1_765_000_000_000_000_000
PUSH, VALIDATE, BATCH = "/v2/import/push", "/v2/import/validate", "/v2/import/batch"
# The server's default; above 64 senders, so a 503 (the limit's answer) is never expected.
MAX_CONCURRENT_REQUESTS = 256
INVALID = "4xx (expected)"
INVALID_SHARE = 0.15  # of all requests; the rest: push JSON, push Transit, batch, validate
ENDPOINTS = ("push JSON", "push Transit", "batch", "validate", INVALID)
RSS_GROWTH = 1.25  # the last window's median RSS may be this times the first window's …
RSS_SLACK_KIB = 16 * 1024  # … plus this: allocator and SQLite page-cache noise
CLIENT_BOUND_CPU = 0.85  # a client busier than this (of its one core) may be holding back load

Point = tuple[str, str, int]  # table, key, sequence


@dataclass
class Planned:
    """One request and the answer it must get; its ``points`` may be stored once it is sent."""

    endpoint: str  # its row in the latency table
    kind: str  # what it is, named in a report of unexpected answers
    path: str
    content_type: str
    body: bytes
    expected: int
    records: int  # data points carried: to be stored, validated or rejected
    points: list[Point] = field(default_factory=list)  # push and batch only
    versions: list[crash.Version] = field(default_factory=list)  # one per point
    method: str = "POST"
    token: str | None = None  # None: the server's token


@dataclass
class Ledger:
    """Per key: the newest sequence acknowledged, and each version that may still be stored.

    ``candidates`` keeps every version sent in a push or batch whose sequence is not below the
    key's newest acknowledged one: an older version can never be the stored state.
    """

    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    candidates: dict[tuple[str, str], dict[int, crash.Version]] = field(default_factory=dict)

    def sent(self, planned: Planned) -> None:
        for (table, key, sequence), version in zip(planned.points, planned.versions, strict=True):
            if sequence > self.acked.get((table, key), -1):
                self.candidates.setdefault((table, key), {})[sequence] = version

    def ack(self, points: list[Point]) -> None:
        for table, key, sequence in points:
            if sequence > self.acked.get((table, key), -1):
                self.acked[(table, key)] = sequence
                versions = self.candidates[(table, key)]
                for older in [s for s in versions if s < sequence]:
                    del versions[older]

    def allowed(self, table: str, key: str) -> set[int]:
        """Sequences the key may be stored at: its newest acknowledged, or newer ones never
        answered 2xx (only possible after a timeout, a dropped connection or a wrong status)."""
        acked = self.acked.get((table, key), -1)
        return {s for s in self.candidates.get((table, key), {}) if s >= acked}


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def transit(value: Any) -> bytes:
    """Transit JSON as python-stitch-client writes it (non-verbose, with the rolling cache)."""
    stream = io.StringIO()
    Writer(stream, "json").write(value)
    return stream.getvalue().encode()


class Traffic:
    """One sender's requests: its own random stream, the shared sequence counter, shared keys."""

    def __init__(self, rng: random.Random, sequences: Iterator[int], keys: int) -> None:
        self.rng = rng
        self.sequences = sequences
        self.keys = keys
        invalid: list[Callable[[], Planned]] = [
            self.push_missing_key,
            self.push_other_client,
            self.push_unknown_token,
            self.push_malformed,
            self.push_wrong_media_type,
            self.push_get,
            self.batch_off_schema,
            self.batch_missing_key,
            self.batch_transit,
            self.validate_null_key_transit,
        ]
        menu: list[tuple[float, Callable[[], Planned]]] = [
            (0.40, self.push_json),
            (0.12, self.push_transit),
            (0.20, self.batch),
            (0.13, self.validate),
        ]
        menu += [(INVALID_SHARE / len(invalid), build) for build in invalid]
        self.builders = [build for _, build in menu]
        self.weights = list(itertools.accumulate(weight for weight, _ in menu))

    def next(self) -> Planned:
        return self.rng.choices(self.builders, cum_weights=self.weights)[0]()

    def point(self, table: str) -> tuple[Point, dict[str, Any], crash.Version]:
        """A data point for one of the keys every sender shares, with 0-3 subtable rows."""
        key = f"k{self.rng.randrange(self.keys)}"
        sequence = next(self.sequences)
        n = self.rng.randrange(1_000_000)
        data: dict[str, Any] = {"id": key, "name": f"{table[0]}{n}", "n": n, "meta": {"a": n % 7}}
        children: tuple[tuple[Any, ...], ...]
        if table == "customers":
            tags = [f"t{self.rng.randrange(100)}" for _ in range(self.rng.randint(0, 3))]
            data["tags"] = tags
            children = tuple((tag,) for tag in tags)
        else:
            items = [
                {"sku": f"s{self.rng.randrange(1000)}", "qty": self.rng.randint(1, 9)}
                for _ in range(self.rng.randint(0, 3))
            ]
            data["items"] = items
            children = tuple((item["sku"], item["qty"]) for item in items)
        return (table, key, sequence), data, crash.Version((data["name"], n, n % 7), children)

    def push_records(self, most: int) -> tuple[list[dict[str, Any]], list[Point], list[Any]]:
        """Up to ``most`` records for each of 1-3 tables, shuffled together."""
        records, points, versions = [], [], []
        for table in self.rng.sample(TABLES, self.rng.randint(1, len(TABLES))):
            for _ in range(self.rng.randint(1, most)):
                point, data, version = self.point(table)
                points.append(point)
                versions.append(version)
                records.append(
                    {
                        "client_id": crash.CLIENT_ID,
                        "table_name": table,
                        "sequence": point[2],
                        "action": "upsert",
                        "key_names": ["id"],
                        "data": data,
                    }
                )
        self.rng.shuffle(records)  # a key's newer version may come first: sequence decides
        return records, points, versions

    def batch_body(self) -> tuple[dict[str, Any], list[Point], list[Any]]:
        messages, points, versions = [], [], []
        for _ in range(self.rng.randint(10, 200)):
            point, data, version = self.point(crash.BATCH_TABLE)
            points.append(point)
            versions.append(version)
            messages.append({"action": "upsert", "sequence": point[2], "data": data})
        body = {
            "table_name": crash.BATCH_TABLE,
            "schema": crash.BATCH_SCHEMA,
            "key_names": ["id"],
            "messages": messages,
        }
        return body, points, versions

    # Requests to be stored (201) or validated (200).

    def push_json(self) -> Planned:
        records, points, versions = self.push_records(30)
        body = dumps(records)
        return Planned(
            "push JSON", "push JSON", PUSH, JSON, body, 201, len(records), points, versions
        )

    def push_transit(self) -> Planned:
        # Fewer records: transit-python2's pure-Python Writer costs ~0.3 ms a record here.
        records, points, versions = self.push_records(8)
        body = transit(records)
        return Planned(
            "push Transit", "push Transit", PUSH, TRANSIT, body, 201, len(records), points, versions
        )

    def batch(self) -> Planned:
        body, points, versions = self.batch_body()
        return Planned(
            "batch", "batch", BATCH, JSON, dumps(body), 201, len(points), points, versions
        )

    def validate(self) -> Planned:
        records, _, _ = self.push_records(30)  # fresh sequences for real keys: none may be stored
        return Planned("validate", "validate", VALIDATE, JSON, dumps(records), 200, len(records))

    # Invalid requests: fresh sequences for real keys too, every one to be rejected whole.

    def push_missing_key(self) -> Planned:
        records, _, _ = self.push_records(30)
        del self.rng.choice(records)["data"]["id"]
        return invalid("push, a key absent from data", PUSH, JSON, dumps(records), 422, records)

    def push_other_client(self) -> Planned:
        records, _, _ = self.push_records(30)
        for record in records:
            record["client_id"] = crash.CLIENT_ID + 1
        return invalid("push for another client", PUSH, JSON, dumps(records), 403, records)

    def push_unknown_token(self) -> Planned:
        records, _, _ = self.push_records(30)
        planned = invalid("push, unknown token", PUSH, JSON, dumps(records), 401, records)
        planned.token = "not-a-token"
        return planned

    def push_malformed(self) -> Planned:
        records, _, _ = self.push_records(30)
        body = dumps(records)[:-1]  # the closing bracket cut off
        return invalid("push, malformed JSON", PUSH, JSON, body, 400, records)

    def push_wrong_media_type(self) -> Planned:
        records, _, _ = self.push_records(30)
        return invalid("push as text/csv", PUSH, "text/csv", dumps(records), 415, records)

    def push_get(self) -> Planned:
        planned = invalid("GET push", PUSH, JSON, b"", 405, [])
        planned.method = "GET"
        return planned

    def batch_off_schema(self) -> Planned:
        body, _, _ = self.batch_body()
        self.rng.choice(body["messages"])["data"]["n"] = "not an integer"
        return invalid(
            "batch, a record off schema", BATCH, JSON, dumps(body), 400, body["messages"]
        )

    def batch_missing_key(self) -> Planned:
        body, _, _ = self.batch_body()
        del self.rng.choice(body["messages"])["data"]["id"]
        return invalid("batch, a key absent", BATCH, JSON, dumps(body), 400, body["messages"])

    def batch_transit(self) -> Planned:
        body, _, _ = self.batch_body()
        return invalid("batch as Transit", BATCH, TRANSIT, transit(body), 415, body["messages"])

    def validate_null_key_transit(self) -> Planned:
        records, _, _ = self.push_records(8)
        self.rng.choice(records)["data"]["id"] = None
        body = transit(records)
        return invalid("validate, a null key, Transit", VALIDATE, TRANSIT, body, 422, records)


def invalid(
    kind: str, path: str, media: str, body: bytes, status: int, records: list[Any]
) -> Planned:
    return Planned(INVALID, f"invalid: {kind}", path, media, body, status, len(records))


@dataclass
class Stats:
    """What was sent and answered: latencies by endpoint, statuses, unexpected answers."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    unexpected: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    records_stored: int = 0  # acknowledged by a 201
    records_validated: int = 0
    records_rejected: int = 0

    def record(self, planned: Planned, status: int | str, seconds: float) -> None:
        self.requests += 1
        self.statuses.setdefault(planned.endpoint, Counter())[str(status)] += 1
        if isinstance(status, int):
            self.latencies.setdefault(planned.endpoint, []).append(seconds)
        if status != planned.expected:
            self.unexpected[f"{planned.kind}: {status}, expected {planned.expected}"] += 1
        elif status == 201:
            self.records_stored += planned.records
        elif status == 200:
            self.records_validated += planned.records
        else:
            self.records_rejected += planned.records


class Probe:
    """The server's memory and CPU time, from ``/proc`` (Linux; psutil is not needed)."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def memory_kib(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in KiB: resident now, and the peak so far."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])
        return fields["VmRSS"], fields["VmHWM"]

    def cpu_seconds(self, thread: int | None = None) -> float:
        """User + system CPU time of the process (every thread), or of one thread."""
        where = f"/proc/{self.pid}" + (f"/task/{thread}" if thread is not None else "")
        stat = Path(where, "stat").read_text()
        after_name = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
        return (int(after_name[11]) + int(after_name[12])) / self.TICK  # utime, stime


def machine_cpu() -> dict[str, int]:
    """The whole machine's CPU time so far, in ticks, by state (the first line of /proc/stat)."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    values = Path("/proc/stat").read_text().splitlines()[0].split()[1 : 1 + len(names)]
    return dict(zip(names, map(int, values), strict=True))


def machine_shares(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """Idle, I/O wait, stolen (by the hypervisor) and busy, as shares of every core's time."""
    delta = {name: after[name] - before[name] for name in before}
    total = sum(delta.values()) or 1
    shares = {name: delta[name] / total for name in ("idle", "iowait", "steal")}
    shares["busy"] = 1 - sum(shares.values())
    return shares


@dataclass
class Report:
    senders: int
    seconds: float
    elapsed_s: float = 0.0  # from the first request to the last answer
    stats: Stats = field(default_factory=Stats)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)  # (s into the load, KiB)
    peak_rss_kib: int = 0
    rss_first_kib: float = 0.0  # median of the first window after warm-up
    rss_last_kib: float = 0.0  # median of the last window
    windows: tuple[tuple[float, float], tuple[float, float]] = ((0, 0), (0, 0))
    server_cpu: float = 0.0  # of one core, over the load
    server_loop_cpu: float = 0.0  # the event loop's thread alone
    client_cpu: float = 0.0
    machine: dict[str, float] = field(default_factory=dict)  # busy, idle, iowait, steal shares
    keys_checked: int = 0
    keys_open: int = 0  # keys a request without a definite answer may have changed
    state_problems: list[str] = field(default_factory=list)
    integrity_failures: list[str] = field(default_factory=list)
    server_tracebacks: int = 0
    exit_code_on_sigterm: int | None = None
    load_average: tuple[float, float] = (0.0, 0.0)  # 1-minute, at the start and at the end

    @property
    def rss_bounded(self) -> bool:
        return self.rss_last_kib <= self.rss_first_kib * RSS_GROWTH + RSS_SLACK_KIB

    @property
    def failures(self) -> list[str]:
        out = [f"unexpected answer {what} (x{n})" for what, n in self.stats.unexpected.items()]
        out += self.state_problems[:50] + self.integrity_failures
        if self.stats.records_stored == 0:
            out.append("nothing was stored")
        if not self.rss_bounded:
            out.append(
                f"RSS grew: median {mib(self.rss_last_kib)} in the last window against "
                f"{mib(self.rss_first_kib)} in the first"
            )
        if self.server_tracebacks:
            out.append(f"{self.server_tracebacks} tracebacks in the server's log")
        if self.exit_code_on_sigterm != 0:
            out.append(f"the server exited with {self.exit_code_on_sigterm} on SIGTERM")
        return out

    def summary(self) -> str:
        stats, elapsed = self.stats, self.elapsed_s or 1.0
        lines = [
            f"{self.senders} senders for {self.elapsed_s:.1f} s; one client process, asyncio + "
            f"aiohttp. Server and client share this machine's {os.cpu_count()} cores (1-minute "
            f"load average {self.load_average[0]:.2f} at the start, {self.load_average[1]:.2f} at "
            "the end).",
            f"CPU over the load, % of one core: server {self.server_cpu:.0%} (its event loop "
            f"thread {self.server_loop_cpu:.0%}), client {self.client_cpu:.0%}: the client "
            + ("MAY BE the bottleneck" if self.client_bound else "is not the bottleneck")
            + "; the whole machine: "
            + ", ".join(f"{name} {share:.0%}" for name, share in self.machine.items()),
            f"requests {stats.requests} ({stats.requests / elapsed:.0f}/s); records stored "
            f"{stats.records_stored} ({stats.records_stored / elapsed:.0f}/s), validated "
            f"{stats.records_validated}, rejected whole {stats.records_rejected}",
            f"{'endpoint':16}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses",
        ]
        for endpoint in ENDPOINTS:
            times = sorted(stats.latencies.get(endpoint, []))
            statuses = stats.statuses.get(endpoint, Counter())
            lines.append(
                f"{endpoint:16}{sum(statuses.values()):>9}{percentile(times, 0.50) * 1000:>9.1f}"
                f"{percentile(times, 0.99) * 1000:>9.1f}  "
                + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            )
        errors: Counter[str] = Counter()
        for statuses in stats.statuses.values():
            errors.update({s: n for s, n in statuses.items() if not s.startswith("2")})
        lines.append(
            "errors by status: "
            + (", ".join(f"{s}: {n}" for s, n in sorted(errors.items())) or "none")
        )
        lines.append(
            "unexpected answers: "
            + (", ".join(f"{w} (x{n})" for w, n in stats.unexpected.items()) or "none")
        )
        (a0, a1), (b0, b1) = self.windows
        lines += [
            f"server RSS: peak (VmHWM) {mib(self.peak_rss_kib)}; median {mib(self.rss_first_kib)} "
            f"in {a0:.3g}-{a1:.3g} s, {mib(self.rss_last_kib)} in {b0:.3g}-{b1:.3g} s "
            f"({'bounded' if self.rss_bounded else 'GROWING'}: at most x{RSS_GROWTH} + "
            f"{mib(RSS_SLACK_KIB)} allowed)",
            "server RSS over time: " + rss_timeline(self.rss_samples, self.seconds),
            f"stored state: {self.keys_checked} keys read back, {len(self.state_problems)} "
            f"wrong, {self.keys_open} open (a newer request without a definite answer); "
            f"integrity failures {len(self.integrity_failures)}; server tracebacks "
            f"{self.server_tracebacks}; exit code on SIGTERM {self.exit_code_on_sigterm}",
        ]
        return "\n".join(lines)

    @property
    def client_bound(self) -> bool:
        return self.client_cpu > CLIENT_BOUND_CPU


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def rss_timeline(samples: list[tuple[float, int]], seconds: float) -> str:
    step = 10.0 if seconds >= 30 else max(1.0, seconds / 5)
    marks, out, t = [], [], step
    while t <= seconds + 1e-9:
        marks.append(t)
        t += step
    for mark in marks:
        before = [kib for at, kib in samples if at <= mark]
        if before:
            out.append(f"{mark:.0f} s {before[-1] / 1024:.0f}")
    return ", ".join(out) + " MiB"


def windows(seconds: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The first window after warm-up and the last one: 10 s each after 10 s on a 60 s run."""
    warm_up = min(10.0, seconds / 5)
    width = min(10.0, seconds / 4)
    return (warm_up, warm_up + width), (seconds - width, seconds)


def median_in(samples: list[tuple[float, int]], window: tuple[float, float]) -> float:
    inside = [kib for at, kib in samples if window[0] <= at <= window[1]]
    return statistics.median(inside) if inside else 0.0


def check_state(data_dir: Path, ledger: Ledger, report: Report) -> None:
    """Every key sent in a push or batch, read back: at its newest acknowledged version."""
    for table in TABLES:
        found = crash.stored(data_dir, table)
        sent = {key for (t, key) in ledger.candidates if t == table}
        for key in sorted(sent | set(found)):
            report.keys_checked += 1
            allowed = ledger.allowed(table, key)
            acked = ledger.acked.get((table, key))
            report.keys_open += len(allowed) > (0 if acked is None else 1)
            got = found.get(key)
            if got is None:
                if acked is not None:
                    report.state_problems.append(f"{table} {key}: acked at {acked}, not stored")
                continue
            sequence, version = got
            if sequence not in allowed:
                report.state_problems.append(
                    f"{table} {key}: stored at {sequence}, newest acknowledged {acked}"
                )
            elif version != ledger.candidates[(table, key)][sequence]:
                expected = ledger.candidates[(table, key)][sequence]
                report.state_problems.append(
                    f"{table} {key} @ {sequence}: stored {version}, sent {expected}"
                )


async def send(
    session: aiohttp.ClientSession,
    server: crash.Server,
    traffic: Traffic,
    ledger: Ledger,
    stats: Stats,
    stop: asyncio.Event,
) -> None:
    """One sender: a request at a time, back to back, until told to stop."""
    while not stop.is_set():
        planned = traffic.next()
        ledger.sent(planned)
        headers = {
            "Authorization": f"Bearer {planned.token or server.token}",
            "Content-Type": planned.content_type,
        }
        status: int | str
        started = time.perf_counter()
        try:
            async with session.request(
                planned.method, server.url + planned.path, data=planned.body, headers=headers
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            status = "timeout"
        except (aiohttp.ClientError, OSError):
            status = "connection error"
        stats.record(planned, status, time.perf_counter() - started)
        if isinstance(status, int) and 200 <= status < 300 and planned.points:
            ledger.ack(planned.points)


async def run(
    senders: int = 64,
    seconds: float = 60.0,
    seed: int = 1,
    keys: int = 2000,
    work_dir: Path | None = None,
    serve_args: tuple[str, ...] = (),
    verbose: bool = False,
) -> Report:
    """Load the server for ``seconds`` with ``senders`` concurrent clients; what it did."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="importapi-load-", dir=work_dir))
    limit = ("--max-concurrent-requests", str(MAX_CONCURRENT_REQUESTS))
    server = crash.Server(work / "data", work / "server.log", *limit, *serve_args)
    report = Report(senders, seconds)
    report.windows = windows(seconds)
    ledger, stats, stop = Ledger(), report.stats, asyncio.Event()
    sequences = itertools.count(SEQUENCE_BASE)
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=senders + 4)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        server.start()
        assert server.process is not None
        try:
            if await server.wait_ready(session) != 200:
                raise RuntimeError(f"the server did not start cleanly:\n{server.tail()}")
            probe = Probe(server.process.pid)
            report.load_average = (os.getloadavg()[0], 0.0)
            cpu = (probe.cpu_seconds(), probe.cpu_seconds(probe.pid), time.process_time())
            machine = machine_cpu()
            started = time.monotonic()
            tasks = [
                asyncio.create_task(send(session, server, traffic, ledger, stats, stop))
                for traffic in (
                    Traffic(random.Random(rng.random()), sequences, keys) for _ in range(senders)
                )
            ]
            next_progress = 10.0
            while (now := time.monotonic() - started) < seconds:
                rss, report.peak_rss_kib = probe.memory_kib()
                report.rss_samples.append((now, rss))
                if verbose and now >= next_progress:
                    print(f"{now:4.0f} s: {stats.requests} requests, RSS {mib(rss)}", flush=True)
                    next_progress += 10
                await asyncio.sleep(min(0.25, seconds - now))
            stop.set()
            await asyncio.gather(*tasks)
            report.elapsed_s = time.monotonic() - started
            wall = report.elapsed_s
            report.server_cpu = (probe.cpu_seconds() - cpu[0]) / wall
            report.server_loop_cpu = (probe.cpu_seconds(probe.pid) - cpu[1]) / wall
            report.client_cpu = (time.process_time() - cpu[2]) / wall
            report.machine = machine_shares(machine, machine_cpu())
            report.load_average = (report.load_average[0], os.getloadavg()[0])
            report.rss_samples.append((report.elapsed_s, probe.memory_kib()[0]))
            report.peak_rss_kib = probe.memory_kib()[1]
            check_state(server.data_dir, ledger, report)
            report.integrity_failures = [
                f"{path}: {result}"
                for path, result in crash.integrity(server.data_dir).items()
                if result != "ok"
            ]
            report.exit_code_on_sigterm = server.terminate()
        finally:
            if server.process.poll() is None:
                server.kill()
    first, last = report.windows
    report.rss_first_kib = median_in(report.rss_samples, first)
    report.rss_last_kib = median_in(report.rss_samples, last)
    report.server_tracebacks = server.log.read_text(errors="replace").count("Traceback")
    if report.failures:
        report.state_problems.append(f"data and server log kept in {work}")
    else:
        shutil.rmtree(work)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=64, help="concurrent clients [64]")
    parser.add_argument("--seconds", type=float, default=60, help="how long to send [60]")
    parser.add_argument("--keys", type=int, default=2000, help="keys per table, shared [2000]")
    parser.add_argument("--seed", type=int, default=1, help="seeds the requests [1]")
    parser.add_argument(
        "--durability", choices=("fsync", "fast"), default="fsync", help="the server's [fsync]"
    )
    args = parser.parse_args()
    if args.senders >= MAX_CONCURRENT_REQUESTS:
        parser.error(f"--senders must stay below the server's limit of {MAX_CONCURRENT_REQUESTS}")
    print(
        f"importapi-lite load test: seed {args.seed}, --durability {args.durability}, "
        f"--max-concurrent-requests {MAX_CONCURRENT_REQUESTS}, {args.keys} keys a table",
        flush=True,
    )
    report = asyncio.run(
        run(
            args.senders,
            args.seconds,
            args.seed,
            args.keys,
            serve_args=("--durability", args.durability),
            verbose=True,
        )
    )
    print(report.summary())
    for failure in report.failures:
        print("  " + failure)
    print("FAIL" if report.failures else "PASS")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
