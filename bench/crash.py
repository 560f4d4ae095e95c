"""Crash test: SIGKILL the server under load, restart it, check nothing acknowledged is lost.

Not a unit test: it reports figures. The server runs as its own process (``python -m
importapi_lite serve`` on a free 127.0.0.1 port, a temporary data directory); ``senders``
concurrent clients push JSON to ``/v2/import/push`` (two or three tables per request) and
``/v2/import/batch`` (one table), every record with nested arrays so subtables are written too.
The server is killed with SIGKILL at seeded random moments and restarted, ``kills`` times. After
each restart the server must answer ``/v2/import/status`` with 200, ``PRAGMA integrity_check``
must be ``ok`` for every database file, and every record that got a 2xx must be read back with
``sqlite3``, parent row and subtable rows, at its acknowledged sequence or a newer one it was sent.

    make stress                                     # or: .venv/bin/python bench/crash.py --kills 20

``tests/test_crash.py`` imports this file and runs a short form (``run(...)``) in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

CLIENT_ID = 7723
INTEGRATION = "import_api"
PUSH_TABLES = ("orders", "customers")  # push: orders have item objects, customers scalar tags
BATCH_TABLE = "events"  # batch: item objects, typed by the schema
CHILDREN = {"orders": "items", "customers": "tags", BATCH_TABLE: "items"}
BATCH_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "n": {"type": "integer"},
        "meta": {"type": "object", "properties": {"a": {"type": "integer"}}},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
            },
        },
    },
}
RETRYABLE = {429, 500, 502, 503, 504}  # answers a client retries; 5xx other than 503 are counted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table_file(data_dir: Path, table: str) -> Path:
    # Our three names are plain lower-case: storage/paths.py keeps them as they are.
    return data_dir / str(CLIENT_ID) / INTEGRATION / f"{quote(table)}.sqlite3"


class Server:
    """``importapi-lite serve`` as a child process on one port, restartable; output to a log."""

    def __init__(self, data_dir: Path, log: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
        created = subprocess.run(
            [sys.executable, "-m", "importapi_lite", "tokens", "create"]
            + ["--client-id", str(CLIENT_ID), "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
            env=self.env,
        )
        self.token = created.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "importapi_lite", "serve", "--host", "127.0.0.1"]
                + ["--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 15) -> int:
        """Poll ``/v2/import/status`` until it answers; its status (200 when started cleanly)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                async with session.get(self.url + "/v2/import/status") as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.02)
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(
                f"server died on its own ({self.process.returncode}):\n{self.tail()}"
            )
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise

    async def stop_gracefully(self, timeout: float = 60) -> int:
        """SIGTERM, and the exit code once the process is gone (the event loop keeps running)."""
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Version:
    """What one data point should leave behind: the parent's columns and its subtable rows."""

    columns: tuple[Any, ...]  # name, n, meta__a
    children: tuple[tuple[Any, ...], ...]  # (sku, qty) or (value,), in array order


@dataclass
class Ledger:
    """Everything sent (by table, key and sequence) and the newest sequence acknowledged."""

    sent: dict[tuple[str, str], dict[int, Version]] = field(default_factory=dict)
    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    requests_sent: int = 0
    requests_acked: int = 0
    records_acked: int = 0
    in_flight: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def ack(self, points: list[tuple[str, str, int]]) -> None:
        self.requests_acked += 1
        self.records_acked += len(points)
        for table, key, sequence in points:
            if sequence >= self.acked.get((table, key), -1):
                self.acked[(table, key)] = sequence


@dataclass
class Report:
    kills: int = 0
    kills_mid_request: int = 0  # kills with at least one request sent and not yet answered
    requests_cut: int = 0  # requests in flight at the kills, summed
    restarts_clean: int = 0
    requests_sent: int = 0
    requests_acknowledged: int = 0
    records_acknowledged: int = 0
    keys_acknowledged: int = 0
    records_lost: int = 0
    checks: int = 0
    databases_checked: int = 0
    integrity_failures: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    server_tracebacks: int = 0
    exit_code_on_sigterm: int | None = None  # the last stop, once the senders are done
    sigterm_exit_codes: list[int] = field(default_factory=list)  # SIGTERMs under load
    duration_s: float = 0.0

    def summary(self) -> str:
        return (
            f"kills {self.kills} ({self.kills_mid_request} with requests in flight, "
            f"{self.requests_cut} requests cut), clean restarts {self.restarts_clean}, "
            f"requests acknowledged {self.requests_acknowledged} of {self.requests_sent} sent, "
            f"records acknowledged {self.records_acknowledged} ({self.keys_acknowledged} keys), "
            f"records lost {self.records_lost}, integrity failures "
            f"{len(self.integrity_failures)} in {self.databases_checked} database checks, "
            f"statuses {dict(sorted(self.statuses.items()))}, "
            f"server tracebacks {self.server_tracebacks}, "
            f"exit codes on SIGTERM under load {self.sigterm_exit_codes}, "
            f"at the end {self.exit_code_on_sigterm}, duration {self.duration_s:.1f} s"
        )


class Sender:
    """One client: builds requests with its own keys and rising sequences; retries until 2xx."""

    def __init__(self, number: int, rng: random.Random, ledger: Ledger, sequences: Any) -> None:
        self.number = number
        self.rng = rng
        self.ledger = ledger
        self.sequences = sequences
        self.keys: dict[str, list[str]] = {t: [] for t in CHILDREN}
        self.counter = itertools.count()

    def _point(self, table: str) -> tuple[str, int, dict[str, Any]]:
        """A data point: a new key, or (one time in four) a newer version of one of ours."""
        known = self.keys[table]
        if known and self.rng.random() < 0.25:
            key = self.rng.choice(known)
        else:
            key = f"s{self.number}-{next(self.counter)}"
            known.append(key)
        sequence = next(self.sequences)
        n = self.rng.randrange(1_000_000)
        if table == "customers":
            tags = [f"t{self.rng.randrange(100)}" for _ in range(self.rng.randint(1, 4))]
            children: tuple[tuple[Any, ...], ...] = tuple((t,) for t in tags)
            data: dict[str, Any] = {"id": key, "name": f"c{n}", "n": n, "meta": {"a": n % 7}}
            data["tags"] = tags
        else:
            items = [
                {"sku": f"k{self.rng.randrange(1000)}", "qty": self.rng.randint(1, 9)}
                for _ in range(self.rng.randint(1, 4))
            ]
            children = tuple((i["sku"], i["qty"]) for i in items)
            data = {"id": key, "name": f"{table[0]}{n}", "n": n, "meta": {"a": n % 7}}
            data["items"] = items
        version = Version((data["name"], n, n % 7), children)
        self.ledger.sent.setdefault((table, key), {})[sequence] = version
        return key, sequence, data

    def request(self) -> tuple[str, bytes, list[tuple[str, str, int]]]:
        """(path, JSON body, the data points it carries)."""
        points: list[tuple[str, str, int]] = []
        if self.rng.random() < 0.3:
            messages = []
            for _ in range(self.rng.randint(20, 600)):
                key, sequence, data = self._point(BATCH_TABLE)
                points.append((BATCH_TABLE, key, sequence))
                messages.append({"action": "upsert", "sequence": sequence, "data": data})
            body: Any = {
                "table_name": BATCH_TABLE,
                "schema": BATCH_SCHEMA,
                "key_names": ["id"],
                "messages": messages,
            }
            return "/v2/import/batch", json.dumps(body).encode(), points
        tables = [*PUSH_TABLES, BATCH_TABLE][: self.rng.randint(2, 3)]
        records = []
        for table in tables:
            for _ in range(self.rng.randint(1, 40)):
                key, sequence, data = self._point(table)
                points.append((table, key, sequence))
                records.append(
                    {
                        "client_id": CLIENT_ID,
                        "table_name": table,
                        "sequence": sequence,
                        "action": "upsert",
                        "key_names": ["id"],
                        "data": data,
                    }
                )
        self.rng.shuffle(records)
        return "/v2/import/push", json.dumps(records).encode(), points

    async def run(
        self, session: aiohttp.ClientSession, server: Server, stop: asyncio.Event
    ) -> None:
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        while not stop.is_set():
            path, body, points = self.request()
            self.ledger.requests_sent += 1
            for _attempt in range(100_000):  # retry the same request, as a client would
                if stop.is_set():
                    return
                status = await self._post(session, server.url + path, body, headers)
                if status is not None and 200 <= status < 300:
                    self.ledger.ack(points)
                    break
                if status is not None and status not in RETRYABLE:
                    break  # a 4xx would be a bug of this harness: counted, not retried
                await asyncio.sleep(0.01 + self.rng.random() * 0.04)

    async def _post(
        self, session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
    ) -> int | None:
        self.ledger.in_flight += 1
        try:
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                self.ledger.statuses[str(response.status)] += 1
                return response.status
        except TimeoutError:
            self.ledger.statuses["timeout"] += 1  # a hang: 60 s without an answer
        except (aiohttp.ClientError, OSError):
            self.ledger.statuses["connection error"] += 1  # the server was killed or is down
        finally:
            self.ledger.in_flight -= 1
        return None


def integrity(data_dir: Path) -> dict[Path, str]:
    """``PRAGMA integrity_check`` of every database file under the data directory."""
    results = {}
    for path in sorted(data_dir.rglob("*.sqlite3")):
        db = sqlite3.connect(path)
        try:
            rows = db.execute("PRAGMA integrity_check").fetchall()
            results[path] = "; ".join(str(r[0]) for r in rows)
        except sqlite3.Error as exc:
            results[path] = f"{type(exc).__name__}: {exc}"
        finally:
            db.close()
    return results


def stored(data_dir: Path, table: str) -> dict[str, tuple[int, Version]]:
    """Each key's (sequence, parent columns and subtable rows), read in one snapshot."""
    path = table_file(data_dir, table)
    if not path.exists():
        return {}
    child = f"{table}__{CHILDREN[table]}"
    child_columns = "value" if table == "customers" else "sku, qty"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")  # one read snapshot: a commit landing meanwhile is all or nothing
        names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if table not in names:  # the file is made on first use; the table by the first commit
            return {}
        parents = db.execute(
            f'SELECT id, name, n, meta__a, _sdc_sequence FROM "{table}"'
        ).fetchall()
        kids: dict[str, list[tuple[Any, ...]]] = {}
        for row in db.execute(
            f'SELECT _sdc_source_key_id, {child_columns} FROM "{child}" '
            "ORDER BY _sdc_source_key_id, _sdc_level_0_id"
        ):
            kids.setdefault(row[0], []).append(tuple(row[1:]))
        db.execute("COMMIT")
    finally:
        db.close()
    return {
        key: (sequence, Version((name, n, a), tuple(kids.get(key, ()))))
        for key, name, n, a, sequence in parents
    }


def losses(data_dir: Path, ledger: Ledger) -> list[tuple[tuple[str, str], str]]:
    """Every acknowledged record missing, older than acknowledged, or not as it was sent."""
    found = {table: stored(data_dir, table) for table in CHILDREN}
    problems = []
    for (table, key), acked in list(ledger.acked.items()):
        got = found[table].get(key)
        if got is None:
            problems.append(((table, key), f"{table} {key}: acknowledged at {acked}, not stored"))
            continue
        sequence, version = got
        expected = ledger.sent[(table, key)].get(sequence)
        if sequence < acked:
            problems.append(
                ((table, key), f"{table} {key}: acknowledged at {acked}, stored at {sequence}")
            )
        elif version != expected:
            problems.append(
                ((table, key), f"{table} {key} @ {sequence}: stored {version}, sent {expected}")
            )
    return problems


async def run(
    kills: int = 20,
    senders: int = 8,
    sigterms: int = 0,
    seed: int = 1,
    uptime: tuple[float, float] = (0.3, 1.5),
    downtime: tuple[float, float] = (0.0, 0.2),
    work_dir: Path | None = None,
    serve_args: tuple[str, ...] = (),
    verbose: bool = False,
) -> Report:
    """Kill and restart the server ``kills`` times under load; what survived each kill."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="importapi-crash-", dir=work_dir))
    server = Server(work / "data", work / "server.log", *serve_args)
    ledger = Ledger()
    report = Report()
    sequences = itertools.count(1)
    stop = asyncio.Event()
    started = time.monotonic()
    lost_keys: set[tuple[str, str]] = set()

    def check() -> None:
        report.checks += 1
        for path, result in integrity(server.data_dir).items():
            report.databases_checked += 1
            if result != "ok":
                report.integrity_failures.append(f"check {report.checks}: {path}: {result}")
        for key, problem in losses(server.data_dir, ledger):
            lost_keys.add(key)
            report.losses.append(f"check {report.checks}: {problem}")

    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=senders + 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        server.start()
        try:
            if await server.wait_ready(session) == 200:
                report.restarts_clean += 1
            tasks = [
                asyncio.create_task(
                    Sender(i, random.Random(rng.random()), ledger, sequences).run(
                        session, server, stop
                    )
                )
                for i in range(senders)
            ]
            try:
                stops = ["SIGKILL"] * kills + ["SIGTERM"] * sigterms
                rng.shuffle(stops)
                for number, how in enumerate(stops, 1):
                    await asyncio.sleep(rng.uniform(*uptime))
                    if how == "SIGTERM":  # graceful: in-flight requests finish, then exit 0
                        report.sigterm_exit_codes.append(await server.stop_gracefully())
                    else:
                        report.kills_mid_request += ledger.in_flight > 0
                        report.requests_cut += ledger.in_flight
                        server.kill()
                        report.kills += 1
                    await asyncio.sleep(rng.uniform(*downtime))
                    server.start()
                    if await server.wait_ready(session) == 200:
                        report.restarts_clean += 1
                    check()
                    if verbose:
                        print(
                            f"{how} {number}/{len(stops)}: acknowledged {ledger.records_acked} "
                            f"records, lost so far {len(lost_keys)}",
                            flush=True,
                        )
                await asyncio.sleep(rng.uniform(*uptime))
            finally:
                stop.set()
                await asyncio.gather(*tasks)
            check()  # the last requests acknowledged by a server that was not killed
            report.exit_code_on_sigterm = server.terminate()
        finally:
            if server.process is not None and server.process.poll() is None:
                server.kill()
    report.requests_sent = ledger.requests_sent
    report.requests_acknowledged = ledger.requests_acked
    report.records_acknowledged = ledger.records_acked
    report.keys_acknowledged = len(ledger.acked)
    report.records_lost = len(lost_keys)
    report.statuses = dict(ledger.statuses)
    report.server_tracebacks = server.log.read_text(errors="replace").count("Traceback")
    report.duration_s = time.monotonic() - started
    if not report.losses and not report.integrity_failures:
        shutil.rmtree(work)
    else:
        report.losses.append(f"data kept in {work}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs to survive [20]")
    parser.add_argument("--senders", type=int, default=8, help="concurrent clients [8]")
    parser.add_argument(
        "--sigterms", type=int, default=0, help="graceful stops (SIGTERM) besides the kills [0]"
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds kill moments and data [1]")
    parser.add_argument(
        "--durability", choices=("fsync", "fast"), default="fsync", help="the server's [fsync]"
    )
    args = parser.parse_args()
    serve_args = ("--durability", args.durability)
    report = asyncio.run(
        run(args.kills, args.senders, args.sigterms, args.seed, serve_args=serve_args, verbose=True)
    )
    print(
        f"importapi-lite crash test: seed {args.seed}, {args.senders} senders, "
        f"--durability {args.durability}"
    )
    print(report.summary())
    for problem in report.integrity_failures + report.losses[:50]:
        print("  " + problem)
    failed = (
        report.records_lost
        or report.integrity_failures
        or report.restarts_clean != report.kills + len(report.sigterm_exit_codes) + 1
        or report.exit_code_on_sigterm != 0
        or any(report.sigterm_exit_codes)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
