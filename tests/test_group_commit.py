"""Group commit (``store/sqlite/__init__.py``'s committer, ``store/sqlite/writer.py``'s
``commit_group``): concurrent loads for one table share one transaction.

Counted in the table's real WAL file: every committed transaction ends with a commit frame
(a frame header whose "database size after commit" is non-zero, per SQLite's WAL format).
"""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path
from typing import Any

from importapi_lite import Settings, create_app
from importapi_lite.errors import ServiceUnavailable
from importapi_lite.models import TableBatch, Upsert
from importapi_lite.store.sqlite import SqliteDestination
from importapi_lite.store.sqlite.paths import table_path
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import CLIENT_ID, Api, db_path, db_rows, make_token, record

RECEIVED = "2026-01-01T00:00:00.000000Z"

WAL_HEADER = 32
FRAME_HEADER = 24


def commits_in_wal(database: Path) -> int:
    wal = Path(f"{database}-wal").read_bytes()
    (page_size,) = struct.unpack(">I", wal[8:12])
    commits = 0
    for offset in range(WAL_HEADER, len(wal), FRAME_HEADER + page_size):
        (size_after_commit,) = struct.unpack(">I", wal[offset + 4 : offset + 8])
        commits += size_after_commit != 0
    return commits


async def test_concurrent_pushes_to_one_table_commit_together(aiohttp_client: Any, tmp_path: Any):
    config = Settings(data_dir=tmp_path / "data", port=0)
    api = Api(await aiohttp_client(create_app(config)), make_token(config))
    assert (await api.push([record("t", 0, {"id": 0})])).status == 201  # the table exists
    before = commits_in_wal(db_path(config, "t"))

    replies = await asyncio.gather(*(api.push([record("t", i, {"id": i})]) for i in range(1, 65)))

    assert [r.status for r in replies] == [201] * 64  # each answered only once committed
    assert sorted(row["id"] for row in db_rows(config, "t")) == list(range(65))
    transactions = commits_in_wal(db_path(config, "t")) - before
    assert 1 <= transactions < 32, f"64 concurrent pushes took {transactions} transactions"


async def test_loads_in_one_transaction_still_follow_the_sequence_rule(
    aiohttp_client: Any, tmp_path: Any
):
    config = Settings(data_dir=tmp_path / "data", port=0)
    api = Api(await aiohttp_client(create_app(config)), make_token(config))
    # The same key from many requests at once, in a scrambled order: the newest sequence wins,
    # whichever request's job runs last in the shared transaction.
    sequences = [7, 3, 12, 1, 9, 12, 4, 11, 2, 10, 5, 8, 6]
    replies = await asyncio.gather(
        *(api.push([record("t", s, {"id": 1, "v": s})]) for s in sequences)
    )

    assert {r.status for r in replies} == {201}
    assert [(row["id"], row["v"]) for row in db_rows(config, "t")] == [(1, 12)]


async def test_a_load_that_fails_in_a_group_fails_alone_and_the_rest_commit(tmp_path: Any):
    store = SqliteDestination(tmp_path / "data", durability="fast")
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")

    def batch(first: int, count: int) -> TableBatch:
        return TableBatch(
            "t",
            [Upsert(i, {"id": i, "pad": "x" * 200}, ("id",)) for i in range(first, first + count)],
        )

    try:
        await store.load(CLIENT_ID, DEFAULT_INTEGRATION, batch(0, 1), RECEIVED)
        async with store._table_db(path) as tdb:  # hold the table: the loads below queue up
            (pages,) = await tdb.conn.run(lambda db: db.execute("PRAGMA page_count").fetchone())
            limit = f"PRAGMA max_page_count = {pages + 20}"  # SQLITE_FULL past it
            await tdb.conn.run(lambda db: db.execute(limit))
            loads = [
                asyncio.create_task(store.load(CLIENT_ID, DEFAULT_INTEGRATION, b, RECEIVED))
                for b in (batch(1, 1), batch(2, 1), batch(100, 5000), batch(3, 1), batch(4, 1))
            ]
            await asyncio.sleep(0.05)
        outcomes = await asyncio.gather(*loads, return_exceptions=True)
    finally:
        await store.close()

    assert isinstance(outcomes[2], ServiceUnavailable)  # the big one: the file is full
    assert [o.accepted for o in outcomes if not isinstance(o, Exception)] == [1, 1, 1, 1]
    with sqlite3.connect(path) as db:
        assert [r for (r,) in db.execute('SELECT id FROM "t" ORDER BY id')] == [0, 1, 2, 3, 4]
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def _one(key: int) -> TableBatch:
    return TableBatch("t", [Upsert(key, {"id": key}, ("id",))])


async def test_close_commits_the_loads_already_queued_and_leaves_no_table_open(tmp_path: Any):
    store = SqliteDestination(tmp_path / "data", durability="fast")
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")
    await store.load(CLIENT_ID, DEFAULT_INTEGRATION, _one(0), RECEIVED)
    loads = [
        asyncio.create_task(store.load(CLIENT_ID, DEFAULT_INTEGRATION, _one(i), RECEIVED))
        for i in range(1, 6)
    ]
    await asyncio.sleep(0)  # queued, and their committer made, but it has not run yet
    await store.close()

    assert [r.accepted for r in await asyncio.gather(*loads)] == [1] * 5
    assert not store._open  # no connection (and its thread) outlives close
    with sqlite3.connect(path) as db:
        assert [r for (r,) in db.execute('SELECT id FROM "t" ORDER BY id')] == list(range(6))


async def test_a_cancelled_committer_leaves_no_load_waiting_for_ever(tmp_path: Any):
    store = SqliteDestination(tmp_path / "data", durability="fast")
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")
    try:
        async with store._table_db(path):
            loads = [
                asyncio.create_task(store.load(CLIENT_ID, DEFAULT_INTEGRATION, _one(i), RECEIVED))
                for i in range(3)
            ]
            await asyncio.sleep(0.05)
            store._committers[path].cancel()  # as when the loop closes under it
            done, pending = await asyncio.wait(loads, timeout=5)
    finally:
        await store.close()

    assert not pending
    assert all(task.cancelled() for task in done)
    assert not store._waiting and not store._committers
