"""Crash test: SIGKILL the server under load, restart it, check nothing acknowledged is lost.

Not a unit test: it reports figures. The server runs as its own process (``python -m
importapi_lite serve`` on a free 127.0.0.1 port, a temporary data directory); ``senders``
concurrent clients push JSON to ``/v2/import/push`` (two or three tables per request) and
``/v2/import/batch`` (one table), every record with nested arrays so subtables are written too.
The server is killed with SIGKILL at seeded random moments and restarted, ``kills`` times. After
each restart the server must answer ``/v2/import/status`` with 200, ``PRAGMA integrity_check``
must be ``ok`` for every database file, and every record that got a 2xx must be read back with
``sqlite3``, parent row and subtable rows, at its acknowledged sequence or a newer one it was sent.

``--destination postgresql`` runs the same against a throwaway PostgreSQL cluster of its own
(``tests/pg_cluster.py``), and ``--pg-restarts`` restarts PostgreSQL at random moments: under load
(the server answers 503 meanwhile, and must recover by itself), or while the server is down (a
start then fails, as the server connects at start-up, and is retried until PostgreSQL is back).
The records are read back with psycopg in one snapshot; instead of ``PRAGMA integrity_check``,
``amcheck`` verifies every B-tree index against its table, no key is stored twice, no subtable
row lacks its parent row, and every stored row is a data point as it was sent, whole.

    make stress                                     # or: .venv/bin/python bench/crash.py --kills 20
    .venv/bin/python bench/crash.py --destination postgresql --kills 10 --pg-restarts 5

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
import psycopg

ROOT = Path(__file__).resolve().parent.parent

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
DESTINATIONS = ("sqlite", "postgresql")
RECOVERY_TIMEOUT_S = 30  # after PostgreSQL is back, the server must answer 200 again by then
START_TIMEOUT_S = 60  # a start that fails while PostgreSQL is down, or the retries after it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table_file(data_dir: Path, table: str) -> Path:
    # Our three names are plain lower-case: storage/paths.py keeps them as they are.
    return data_dir / str(CLIENT_ID) / INTEGRATION / f"{quote(table)}.sqlite3"


class Exited(RuntimeError):
    """The server process ended before it answered."""


class Server:
    """``importapi-lite serve`` as a child process on one port, restartable; output to a log.

    With a ``destination`` (a PostgreSQL URL) the token is made there, and every start uses it.
    """

    def __init__(
        self, data_dir: Path, log: Path, *extra: str, destination: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        where = ["--destination", destination] if destination else []
        self.extra = (*extra, *where)
        self.process: subprocess.Popen[bytes] | None = None
        self.refused_exit_codes: list[int] = []  # starts that failed: the destination was down
        self.refused_tracebacks = 0  # what those failed starts printed
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
        created = subprocess.run(
            [sys.executable, "-m", "importapi_lite", "tokens", "create"]
            + ["--client-id", str(CLIENT_ID), "--data-dir", str(data_dir), *where],
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
                raise Exited(f"server exited with {self.process.returncode}:\n{self.tail()}")
            try:
                async with session.get(self.url + "/v2/import/status") as response:
                    await response.read()
                    return response.status
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.02)
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.tail()}")

    async def wait_healthy(
        self, session: aiohttp.ClientSession, timeout: float = RECOVERY_TIMEOUT_S
    ) -> float:
        """Poll ``/v2/import/status`` until it answers 200 (not 503); the seconds it took."""
        started = time.monotonic()
        while await self.wait_ready(session, timeout) != 200:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"status not 200 within {timeout} s:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def start_refused(self, timeout: float = START_TIMEOUT_S) -> int:
        """Start while the destination is down: the process must exit (it connects at
        start-up) rather than serve; its exit code."""
        offset = self._log_size()
        self.start()
        assert self.process is not None
        try:
            code = await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"a start with the destination down hangs:\n{self.tail()}") from None
        self.refused_exit_codes.append(code)
        self.refused_tracebacks += self._log_since(offset).count("Traceback")
        return code

    async def start_until_ready(
        self, session: aiohttp.ClientSession, timeout: float = START_TIMEOUT_S
    ) -> int:
        """Start, and again each time the process exits before it answers (PostgreSQL not
        back yet), as a supervisor would; the status it answers first."""
        deadline = time.monotonic() + timeout
        while True:
            offset = self._log_size()
            self.start()
            try:
                return await self.wait_ready(session)
            except Exited:
                assert self.process is not None
                self.refused_exit_codes.append(self.process.returncode)
                self.refused_tracebacks += self._log_since(offset).count("Traceback")
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    def _log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def _log_since(self, offset: int) -> str:
        with self.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

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
    # PostgreSQL only. databases_checked then counts tables (each with its indexes) checked.
    destination: str = "sqlite"
    pg_restarts: int = 0
    pg_restarts_server_down: int = 0  # of those, while the server was down
    pg_recovery_s: float = 0.0  # the longest wait for 200 once PostgreSQL was back under load
    refused_exit_codes: list[int] = field(default_factory=list)  # starts while PostgreSQL down

    def summary(self) -> str:
        checked = "database" if self.destination == "sqlite" else "table"
        postgres = (
            ""
            if self.destination == "sqlite"
            else f"PG restarts {self.pg_restarts} ({self.pg_restarts_server_down} with the "
            f"server down; server back to 200 within {self.pg_recovery_s:.1f} s at most "
            f"under load; exit codes of the starts while PostgreSQL was down "
            f"{self.refused_exit_codes}), "
        )
        return (
            f"kills {self.kills} ({self.kills_mid_request} with requests in flight, "
            f"{self.requests_cut} requests cut), {postgres}clean restarts {self.restarts_clean}, "
            f"requests acknowledged {self.requests_acknowledged} of {self.requests_sent} sent, "
            f"records acknowledged {self.records_acknowledged} ({self.keys_acknowledged} keys), "
            f"records lost {self.records_lost}, integrity failures "
            f"{len(self.integrity_failures)} in {self.databases_checked} {checked} checks, "
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
    return compare({table: stored(data_dir, table) for table in CHILDREN}, ledger)


def compare(
    found: dict[str, dict[str, tuple[int, Version]]], ledger: Ledger
) -> list[tuple[tuple[str, str], str]]:
    """``losses``, of what was read from any destination."""
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


class Postgres:
    """A throwaway PostgreSQL cluster (``tests/pg_cluster.py``) with one database for the
    server, ``amcheck`` in it; what it holds is read back with psycopg."""

    def __init__(self) -> None:
        sys.path.insert(0, str(ROOT))
        from tests.pg_cluster import INSTALL, Cluster, server_binaries

        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError(f"PostgreSQL's server binaries are missing: {INSTALL}")
        self.cluster = Cluster(binaries)
        self.cluster.start()
        try:
            self.url = self.cluster.create_database("crash")
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute("CREATE EXTENSION amcheck")
        except BaseException:
            self.cluster.stop()
            raise

    def stop(self, keep: bool = False) -> None:
        """Stop it; and remove its files unless ``keep``."""
        if keep:
            self.cluster.halt()
        else:
            self.cluster.stop()

    def read(
        self, ledger: Ledger
    ) -> tuple[dict[str, dict[str, tuple[int, Version]]], list[str], int]:
        """Each table's keys as ``stored`` reads them, all in one snapshot of the database; the
        integrity problems; and how many tables (ours and the integration's) were checked."""
        with psycopg.connect(self.url, autocommit=True) as db:
            problems, tables = pg_index_check(db)
            with db.transaction():
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                present = {
                    name
                    for (name,) in db.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (INTEGRATION,)
                    )
                }
                found = {}
                for table in CHILDREN:
                    found[table], torn = pg_stored(db, table, present, ledger)
                    problems += torn
                problems += pg_duplicates_and_orphans(db, present)
        return found, problems, tables


def pg_table(table: str) -> str:
    return f'"{INTEGRATION}"."{table}"'


def pg_index_check(db: psycopg.Connection[Any]) -> tuple[list[str], int]:
    """``amcheck`` on every B-tree index of ours and of the integration: its structure, and
    every table row found in it (``heapallindexed``), as ``PRAGMA integrity_check`` does for
    SQLite's files; the problems, and how many tables have their indexes checked. Each index in
    a transaction of its own (autocommit): one failure does not hide the others."""
    indexes = db.execute(
        "SELECT i.indexrelid::regclass::text, i.indrelid FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND n.nspname IN (%s, %s) "
        "ORDER BY 1",
        (INTEGRATION, "_importapi"),
    ).fetchall()
    problems = []
    for index, _table in indexes:
        try:
            db.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        except psycopg.Error as exc:
            problems.append(f"index {index}: {type(exc).__name__}: {exc}")
    return problems, len({table for _index, table in indexes})


def pg_stored(
    db: psycopg.Connection[Any], table: str, present: set[str], ledger: Ledger
) -> tuple[dict[str, tuple[int, Version]], list[str]]:
    """A table's keys as ``stored`` reads them from SQLite; and its torn rows: subtable rows of
    another data point than their parent row's (another ``_sdc_sequence``), level ids that are
    not 0, 1, 2…, or a row that is not the data point sent for its key at its sequence."""
    child = f"{table}__{CHILDREN[table]}"
    child_columns = "value" if table == "customers" else "sku, qty"
    if table not in present:
        return {}, []  # made by the first commit that names it
    parents = db.execute(
        f"SELECT id, name, n, meta__a, _sdc_sequence FROM {pg_table(table)}"
    ).fetchall()
    kids: dict[str, list[tuple[Any, ...]]] = {}
    levels: dict[str, list[tuple[int, int]]] = {}
    if child in present:
        for row in db.execute(
            f"SELECT _sdc_source_key_id, _sdc_level_0_id, _sdc_sequence, {child_columns} "
            f"FROM {pg_table(child)} ORDER BY _sdc_source_key_id, _sdc_level_0_id"
        ):
            kids.setdefault(row[0], []).append(tuple(row[3:]))
            levels.setdefault(row[0], []).append((row[1], row[2]))
    found = {
        key: (sequence, Version((name, n, a), tuple(kids.get(key, ()))))
        for key, name, n, a, sequence in parents
    }
    torn = []
    for key, (sequence, version) in found.items():
        got = levels.get(key, [])
        if [level for level, _ in got] != list(range(len(got))):
            torn.append(f"{child} {key}: level ids {[level for level, _ in got]}")
        if any(s != sequence for _, s in got):
            torn.append(f"{child} {key}: sequences {[s for _, s in got]}, parent's {sequence}")
        sent = ledger.sent.get((table, key), {}).get(sequence)
        if version != sent:
            torn.append(f"{table} {key} @ {sequence}: stored {version}, sent {sent}")
    return found, torn


def pg_duplicates_and_orphans(db: psycopg.Connection[Any], present: set[str]) -> list[str]:
    """Keys stored twice (the primary keys' indexes should make it impossible: a check that
    does not trust them), and subtable rows whose parent row is gone."""
    problems = []
    for table, child in CHILDREN.items():
        sub = f"{table}__{child}"
        if table in present:
            for key, count in db.execute(
                f"SELECT id, count(*) FROM {pg_table(table)} GROUP BY id HAVING count(*) > 1"
            ):
                problems.append(f"{table} {key}: {count} rows")
        if sub in present:
            for key, level, count in db.execute(
                "SELECT _sdc_source_key_id, _sdc_level_0_id, count(*) "
                f"FROM {pg_table(sub)} GROUP BY 1, 2 HAVING count(*) > 1"
            ):
                problems.append(f"{sub} {key} level {level}: {count} rows")
            parent = pg_table(table) if table in present else None
            orphans = (
                f"SELECT DISTINCT _sdc_source_key_id FROM {pg_table(sub)} AS c"
                if parent is None
                else f"SELECT DISTINCT _sdc_source_key_id FROM {pg_table(sub)} AS c WHERE NOT "
                f"EXISTS (SELECT 1 FROM {parent} AS p WHERE p.id = c._sdc_source_key_id)"
            )
            for (key,) in db.execute(orphans):
                problems.append(f"{sub} {key}: rows without their parent row")
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
    destination: str = "sqlite",
    pg_restarts: int = 0,
) -> Report:
    """Kill and restart the server ``kills`` times under load; what survived each kill.

    On ``destination="postgresql"``, against a cluster of its own, restarted ``pg_restarts``
    times too; its files are kept, stopped, when something was lost or is not intact.
    """
    if destination not in DESTINATIONS:
        raise ValueError(f"destination: one of {DESTINATIONS}, not {destination!r}")
    if destination == "sqlite":
        if pg_restarts:
            raise ValueError("pg_restarts: PostgreSQL only")
        return await _run(
            kills, senders, sigterms, seed, uptime, downtime, work_dir, serve_args, verbose
        )
    postgres = await asyncio.to_thread(Postgres)
    keep = True  # an exception: the data may tell why
    try:
        report = await _run(
            kills,
            senders,
            sigterms,
            seed,
            uptime,
            downtime,
            work_dir,
            serve_args,
            verbose,
            postgres,
            pg_restarts,
        )
        keep = bool(report.losses or report.integrity_failures)
        if keep:
            report.losses.append(
                f"PostgreSQL data kept in {postgres.cluster.data} (pg_ctl -D it start, as "
                "the postgres user)"
            )
        return report
    finally:
        await asyncio.to_thread(postgres.stop, keep)


def pg_restart_plan(rng: random.Random, stops: int, restarts: int) -> Counter[tuple[str, int]]:
    """Where each PostgreSQL restart goes: ``("up", i)`` under load before stop ``i`` (or after
    the last, ``i == stops``), ``("down", i)`` while the server is down after stop ``i``. Every
    other one while the server is down, so that both kinds happen."""
    plan: Counter[tuple[str, int]] = Counter()
    for number in range(restarts):
        if number % 2 and stops:
            plan["down", rng.randrange(stops)] += 1
        else:
            plan["up", rng.randrange(stops + 1)] += 1
    return plan


async def _run(
    kills: int,
    senders: int,
    sigterms: int,
    seed: int,
    uptime: tuple[float, float],
    downtime: tuple[float, float],
    work_dir: Path | None,
    serve_args: tuple[str, ...],
    verbose: bool,
    postgres: Postgres | None = None,
    pg_restarts: int = 0,
) -> Report:
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="importapi-crash-", dir=work_dir))
    server = Server(
        work / "data",
        work / "server.log",
        *serve_args,
        destination=None if postgres is None else postgres.url,
    )
    ledger = Ledger()
    report = Report(destination="sqlite" if postgres is None else "postgresql")
    sequences = itertools.count(1)
    stop = asyncio.Event()
    started = time.monotonic()
    lost_keys: set[tuple[str, str]] = set()
    plan: Counter[tuple[str, int]] = Counter()

    def check() -> None:
        report.checks += 1
        if postgres is None:
            for path, result in integrity(server.data_dir).items():
                report.databases_checked += 1
                if result != "ok":
                    report.integrity_failures.append(f"check {report.checks}: {path}: {result}")
            problems = losses(server.data_dir, ledger)
        else:
            found, failures, tables = postgres.read(ledger)
            report.databases_checked += tables
            report.integrity_failures += [f"check {report.checks}: {f}" for f in failures]
            problems = compare(found, ledger)
        for key, problem in problems:
            lost_keys.add(key)
            report.losses.append(f"check {report.checks}: {problem}")

    async def live(session: aiohttp.ClientSession, slot: int) -> None:
        """The load runs a while, PostgreSQL restarted in it as many times as planned."""
        for _ in range(plan["up", slot]):
            await asyncio.sleep(rng.uniform(*uptime))
            await restart_postgres(session)
        await asyncio.sleep(rng.uniform(*uptime))

    async def restart_postgres(session: aiohttp.ClientSession) -> None:
        """PostgreSQL stopped and started again under load: the server answers 503 meanwhile,
        then 200 again by itself; nothing it acknowledged is lost."""
        assert postgres is not None
        await asyncio.to_thread(postgres.cluster.halt)
        await asyncio.sleep(rng.uniform(*downtime))
        await asyncio.to_thread(postgres.cluster.resume)
        report.pg_restarts += 1
        report.pg_recovery_s = max(report.pg_recovery_s, await server.wait_healthy(session))
        check()
        if verbose:
            print(
                f"PG restart {report.pg_restarts} under load: acknowledged "
                f"{ledger.records_acked} records, lost so far {len(lost_keys)}",
                flush=True,
            )

    async def restart_server(session: aiohttp.ClientSession, slot: int) -> int:
        """The server started again, its first answer's status; on PostgreSQL, restarted first
        as many times as planned: a start while it is down fails, and is retried until it is
        back (each start meanwhile connects at start-up, and exits)."""
        if postgres is None:
            server.start()
            return await server.wait_ready(session)
        resumed: asyncio.Task[None] | None = None
        for _ in range(plan["down", slot]):
            if resumed is not None:
                await resumed
            await asyncio.to_thread(postgres.cluster.halt)
            report.pg_restarts += 1
            report.pg_restarts_server_down += 1
            await server.start_refused()
            resumed = asyncio.create_task(asyncio.to_thread(postgres.cluster.resume))
        try:
            return await server.start_until_ready(session)
        finally:
            if resumed is not None:
                await resumed

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
                plan = pg_restart_plan(rng, len(stops), pg_restarts)
                for number, how in enumerate(stops, 1):
                    await live(session, number - 1)
                    if how == "SIGTERM":  # graceful: in-flight requests finish, then exit 0
                        report.sigterm_exit_codes.append(await server.stop_gracefully())
                    else:
                        report.kills_mid_request += ledger.in_flight > 0
                        report.requests_cut += ledger.in_flight
                        server.kill()
                        report.kills += 1
                    await asyncio.sleep(rng.uniform(*downtime))
                    if await restart_server(session, number - 1) == 200:
                        report.restarts_clean += 1
                    check()
                    if verbose:
                        down = plan["down", number - 1]
                        print(
                            f"{how} {number}/{len(stops)}: acknowledged {ledger.records_acked} "
                            f"records, lost so far {len(lost_keys)}"
                            + (
                                f" (PG restarted {down}x while the server was down)" if down else ""
                            ),
                            flush=True,
                        )
                await live(session, len(stops))
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
    tracebacks = server.log.read_text(errors="replace").count("Traceback")
    report.server_tracebacks = tracebacks - server.refused_tracebacks  # refused: as expected
    report.refused_exit_codes = server.refused_exit_codes
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
    parser.add_argument(
        "--destination",
        choices=DESTINATIONS,
        default="sqlite",
        help="sqlite files, or a PostgreSQL cluster of its own [sqlite]",
    )
    parser.add_argument(
        "--pg-restarts",
        type=int,
        default=0,
        help="PostgreSQL restarts, under load or with the server down (postgresql only) [0]",
    )
    args = parser.parse_args()
    if args.pg_restarts and args.destination != "postgresql":
        parser.error("--pg-restarts needs --destination postgresql")
    serve_args = ("--durability", args.durability)
    report = asyncio.run(
        run(
            args.kills,
            args.senders,
            args.sigterms,
            args.seed,
            serve_args=serve_args,
            verbose=True,
            destination=args.destination,
            pg_restarts=args.pg_restarts,
        )
    )
    postgres = (
        ""
        if args.destination == "sqlite"
        else f", --destination postgresql, {args.pg_restarts} PostgreSQL restarts"
    )
    print(
        f"importapi-lite crash test: seed {args.seed}, {args.senders} senders, "
        f"--durability {args.durability}{postgres}"
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
        or report.pg_restarts != args.pg_restarts
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
