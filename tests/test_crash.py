"""The crash test's short form: a few SIGKILLs under concurrent load lose nothing acknowledged,
on SQLite and on PostgreSQL (restarted too, under load and while the server is down); and a push
spanning several tables, cut between its tables' commits, converges on retry.

``make stress`` runs the same harness (``bench/crash.py``) with many more kills and prints the
figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from importapi_lite.store.sqlite.paths import integration_dir, table_path
from importapi_lite.store.sqlite.tokens import SqliteTokenStore
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import JSON, load_crash, record
from .pg_cluster import require_binaries

# Servers killed with SIGKILL and restarted: a process of its own each time.
pytestmark = [pytest.mark.crash, pytest.mark.serve]


async def test_sigkill_under_load_loses_no_acknowledged_record(tmp_path: Path) -> None:
    crash = load_crash()
    report = await crash.run(
        kills=3, sigterms=1, senders=4, seed=6, uptime=(0.2, 0.8), work_dir=tmp_path
    )
    assert report.kills == 3 and report.kills_mid_request >= 1, report.summary()
    assert report.restarts_clean == 5, report.summary()  # the first start and each restart
    assert report.records_acknowledged > 0 and report.keys_acknowledged > 0, report.summary()
    assert report.integrity_failures == [], report.summary()
    assert report.losses == [] and report.records_lost == 0, report.summary()
    assert report.databases_checked >= 5 * 4  # tokens, orders, customers, events, every check
    # Dropped connections while the server was down are expected; a 5xx or a hang is not.
    assert set(report.statuses) <= {"201", "connection error"}, report.summary()
    assert report.server_tracebacks == 0
    assert report.sigterm_exit_codes == [0] and report.exit_code_on_sigterm == 0


async def test_sigkills_and_postgresql_restarts_lose_no_acknowledged_record(
    tmp_path: Path,
) -> None:
    require_binaries()
    crash = load_crash()
    report = await crash.run(
        kills=2,
        senders=4,
        seed=6,
        uptime=(0.2, 0.8),
        work_dir=tmp_path,
        destination="postgresql",
        pg_restarts=2,
    )
    assert report.kills == 2 and report.kills_mid_request >= 1, report.summary()
    # One restart under load, one while the server was down (a start then fails, and is
    # retried until PostgreSQL is back: exit codes of the failed starts, not 0).
    assert (report.pg_restarts, report.pg_restarts_server_down) == (2, 1), report.summary()
    assert report.refused_exit_codes and 0 not in report.refused_exit_codes, report.summary()
    assert report.restarts_clean == 3, report.summary()  # the first start and each restart
    assert report.records_acknowledged > 0 and report.keys_acknowledged > 0, report.summary()
    assert report.integrity_failures == [], report.summary()
    assert report.losses == [] and report.records_lost == 0, report.summary()
    # At every check, each table and subtable of the integration (and ours), indexes and all.
    assert report.databases_checked >= report.checks * 2 * len(crash.CHILDREN), report.summary()
    # PostgreSQL down: 503, as Stitch's clients retry it; a 500 or a hang would be a bug.
    assert set(report.statuses) <= {"201", "503", "connection error"}, report.summary()
    assert report.server_tracebacks == 0, report.summary()
    assert report.exit_code_on_sigterm == 0


# A push that spans several tables is loaded one transaction per table; if the process dies
# between those commits, the client's retry of the same request must converge on the state of
# one clean run: the sequence rule makes the replayed records of committed tables no-ops.
CONVERGE_TABLES = {"customers": 60, "orders": 800, "events": 300}  # uneven: commits spread out
BASELINE_KEYS = range(0, 100, 3)
LOAD_TIME_COLUMNS = {"_sdc_received_at", "_sdc_batched_at", "created_at"}  # differ run to run


def multi_table_push(client_id: int) -> list[dict[str, Any]]:
    """Records for three tables, with repeated keys, ties and arrays (subtables), seeded."""
    rng = random.Random(2)
    records = []
    for table, count in CONVERGE_TABLES.items():
        for i in range(count):
            key = i % (count * 3 // 4)  # a quarter of the keys come twice
            data: dict[str, Any] = {"id": key, "v": rng.randrange(10**6), "o": {"a": i % 5}}
            data["tags"] = [f"t{rng.randrange(50)}" for _ in range(rng.randint(0, 3))]
            data["lines"] = [{"sku": rng.randrange(99)} for _ in range(rng.randint(0, 3))]
            records.append(record(table, rng.randint(1, 100), data, client_id=client_id))
    rng.shuffle(records)
    return records


def baseline_push(client_id: int) -> list[dict[str, Any]]:
    """What was there before: keys the big push updates, and some it must leave (newer)."""
    return [
        record(table, 50, {"id": key, "v": -1, "tags": ["old"]}, client_id=client_id)
        for table in CONVERGE_TABLES
        for key in BASELINE_KEYS
    ]


def state(data_dir: Path, client_id: int) -> dict[str, Any]:
    """Every table and subtable of a client, minus the load-time columns; and their metadata."""
    out: dict[str, Any] = {}
    for path in sorted(integration_dir(data_dir, client_id, DEFAULT_INTEGRATION).glob("*.sqlite3")):
        db = sqlite3.connect(path)
        try:
            names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in names:
                cursor = db.execute(f'SELECT * FROM "{name}"')
                columns = [d[0] for d in cursor.description]
                keep = [i for i, c in enumerate(columns) if c not in LOAD_TIME_COLUMNS]
                rows = sorted((tuple(r[i] for i in keep) for r in cursor), key=repr)
                out[f"{path.name}:{name}"] = ([columns[i] for i in keep], rows)
        finally:
            db.close()
    return out


def committed_tables(data_dir: Path, client_id: int) -> set[str]:
    """The tables whose part of the big push is committed (they hold more than the baseline)."""
    done = set()
    for table in CONVERGE_TABLES:
        path = table_path(data_dir, client_id, DEFAULT_INTEGRATION, table)
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            continue
        try:
            if db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] > len(BASELINE_KEYS):
                done.add(table)
        except sqlite3.Error:
            pass  # not created yet
        finally:
            db.close()
    return done


class Pusher:
    """Pushes to the server as any client, each with a token of its own (so its own folder)."""

    def __init__(self, session: aiohttp.ClientSession, server: Any, data_dir: Path) -> None:
        self.session = session
        self.server = server
        self.data_dir = data_dir
        self.tokens: dict[int, str] = {}

    def token(self, client_id: int) -> str:
        if client_id not in self.tokens:
            store = SqliteTokenStore(self.data_dir)
            try:
                self.tokens[client_id] = store.create(client_id)[1]
            finally:
                store.close()
        return self.tokens[client_id]

    async def push(self, client_id: int, records: list[dict[str, Any]]) -> int:
        headers = {"Authorization": f"Bearer {self.token(client_id)}", "Content-Type": JSON}
        body = json.dumps(records).encode()
        url = self.server.url + "/v2/import/push"
        async with self.session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status


async def test_multi_table_push_converges_on_retry_after_dying_between_tables(
    tmp_path: Path,
) -> None:
    crash = load_crash()
    data_dir = tmp_path / "data"
    server = crash.Server(data_dir, tmp_path / "server.log")
    server.start()
    timeout = aiohttp.ClientTimeout(total=60)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            assert await server.wait_ready(session) == 200
            api = Pusher(session, server, data_dir)
            clean, twice, first_table_only, killed = 101, 102, 103, 104
            for client_id in (clean, twice, first_table_only, killed):
                assert await api.push(client_id, baseline_push(client_id)) == 201

            assert await api.push(clean, multi_table_push(clean)) == 201
            expected = state(data_dir, clean)
            assert len(expected) == 3 * 5  # per file: a table, 2 subtables, 2 metadata tables

            # The same request twice, as a client that never saw the first answer.
            for _ in range(2):
                assert await api.push(twice, multi_table_push(twice)) == 201
            assert state(data_dir, twice) == expected

            # Died after committing one table: that table's part alone, then the retry.
            part = [r for r in multi_table_push(first_table_only) if r["table_name"] == "orders"]
            assert await api.push(first_table_only, part) == 201
            assert await api.push(first_table_only, multi_table_push(first_table_only)) == 201
            assert state(data_dir, first_table_only) == expected

            # SIGKILL as soon as the first table's commit is visible, then restart and retry.
            sending = asyncio.create_task(api.push(killed, multi_table_push(killed)))
            for _ in range(3000):
                if committed_tables(data_dir, killed) or sending.done():
                    break
                await asyncio.sleep(0.002)
            server.kill()
            with contextlib.suppress(aiohttp.ClientError):
                await sending  # the connection drops: no answer, so the client retries
            partial = committed_tables(data_dir, killed)
            server.start()
            assert await server.wait_ready(session) == 200
            assert await api.push(killed, multi_table_push(killed)) == 201
            assert state(data_dir, killed) == expected, f"after a kill with {partial} committed"
            assert partial and partial != set(CONVERGE_TABLES), f"not between tables: {partial}"
        assert server.terminate() == 0
    finally:
        if server.process.poll() is None:
            server.kill()
