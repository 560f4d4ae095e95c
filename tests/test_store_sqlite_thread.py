"""A table's connection thread (``store/sqlite/thread.py``): calls run on the connection's own
thread, in order, each to its end; then a group commit handed to the thread runs to its end even
if the request that started it is cancelled.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from importapi_lite.models import TableBatch, Upsert
from importapi_lite.store.sqlite import SqliteDestination
from importapi_lite.store.sqlite.paths import table_path
from importapi_lite.store.sqlite.thread import ConnectionThread
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import CLIENT_ID

RECEIVED = "2026-01-01T00:00:00.000000Z"


def connect_to(path: Path) -> Any:
    return lambda: sqlite3.connect(path, isolation_level=None)


async def test_calls_run_on_the_connections_own_thread_in_the_order_they_were_made(tmp_path: Path):
    conn = await ConnectionThread.open(connect_to(tmp_path / "x.sqlite3"))
    try:
        await conn.run(lambda db: db.execute("CREATE TABLE t (v)"))
        queued = [
            asyncio.ensure_future(conn.run(lambda db: db.execute("INSERT INTO t VALUES (1)"))),
            asyncio.ensure_future(conn.run(lambda db: db.execute("SELECT count(*) FROM t"))),
            asyncio.ensure_future(conn.run(lambda db: db.execute("INSERT INTO t VALUES (2)"))),
        ]
        await asyncio.gather(*queued)
        counted = await conn.run(lambda db: db.execute("SELECT count(*) FROM t").fetchone())
        threads = await asyncio.gather(*(conn.run(lambda db: threading.get_ident()) for _ in "ab"))
    finally:
        await conn.close()

    assert counted == (2,)
    assert threads[0] == threads[1] != threading.get_ident()


async def test_a_call_raises_what_its_function_raised(tmp_path: Path):
    conn = await ConnectionThread.open(connect_to(tmp_path / "x.sqlite3"))
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await conn.run(lambda db: db.execute("SELECT * FROM missing"))
        assert await conn.run(lambda db: db.execute("SELECT 1").fetchone()) == (1,)
    finally:
        await conn.close()


async def test_a_connection_that_cannot_open_raises_and_leaves_no_thread(tmp_path: Path):
    before = threading.active_count()

    with pytest.raises(sqlite3.OperationalError):
        await ConnectionThread.open(connect_to(tmp_path / "missing" / "x.sqlite3"))

    await asyncio.sleep(0.05)
    assert threading.active_count() == before


async def test_a_call_whose_caller_went_away_still_runs_to_its_end(tmp_path: Path):
    conn = await ConnectionThread.open(connect_to(tmp_path / "x.sqlite3"))
    started = threading.Event()

    def slow_insert(db: sqlite3.Connection) -> None:
        started.set()
        time.sleep(0.1)
        db.execute("CREATE TABLE t (v)")

    try:
        call = asyncio.ensure_future(conn.run(slow_insert))
        await asyncio.to_thread(started.wait)
        call.cancel()
        tables = await conn.run(lambda db: db.execute("SELECT name FROM sqlite_master").fetchall())
    finally:
        await conn.close()

    assert call.cancelled() and tables == [("t",)]


async def test_a_closed_connection_takes_no_more_calls_and_its_thread_ends(tmp_path: Path):
    conn = await ConnectionThread.open(connect_to(tmp_path / "x.sqlite3"), name="closing")
    await conn.close()
    await conn.close()  # twice is fine

    with pytest.raises(sqlite3.ProgrammingError):
        await conn.run(lambda db: db.execute("SELECT 1"))
    assert "closing" not in [t.name for t in threading.enumerate()]


async def test_a_group_whose_starter_is_cancelled_still_commits_the_others(tmp_path: Any):
    store = SqliteDestination(tmp_path / "data", durability="fast")
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")

    def batch(key: int) -> TableBatch:
        return TableBatch("t", [Upsert(key, {"id": key}, ("id",))])

    try:
        await store.load(CLIENT_ID, DEFAULT_INTEGRATION, batch(0), RECEIVED)
        async with store._table_db(path) as tdb:  # hold the table: the loads below queue up
            loads = [
                asyncio.create_task(store.load(CLIENT_ID, DEFAULT_INTEGRATION, batch(i), RECEIVED))
                for i in range(1, 11)
            ]
            await asyncio.sleep(0.05)
            # Slow the thread down so the group is still running when its starter is cancelled.
            slow = tdb.conn.run(lambda db: threading.Event().wait(0.3))
            pending_slow = asyncio.ensure_future(slow)
        await asyncio.sleep(0.05)  # the first load holds the table now, its group queued
        loads[0].cancel()
        outcomes = await asyncio.gather(*loads, return_exceptions=True)
        await pending_slow
    finally:
        await store.close()

    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert [o.accepted for o in outcomes[1:] if not isinstance(o, BaseException)] == [1] * 9
    with sqlite3.connect(path) as db:
        # The cancelled request's row may be there too: its group was under way. Nothing else
        # of the group is lost, and no transaction is left open.
        ids = [r for (r,) in db.execute('SELECT id FROM "t" ORDER BY id')]
        assert ids == list(range(11))


@pytest.mark.parametrize(("cache_mib", "cache_size"), [(8, -8192), (0, -2000)])
async def test_a_table_connection_caches_what_cache_mib_says(
    tmp_path: Any, cache_mib: int, cache_size: int
):
    store = SqliteDestination(tmp_path / "data", durability="fast", cache_mib=cache_mib)
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")
    try:
        await store.load(
            CLIENT_ID,
            DEFAULT_INTEGRATION,
            TableBatch("t", [Upsert(1, {"id": 1}, ("id",))]),
            RECEIVED,
        )
        async with store._table_db(path) as tdb:
            pragmas = await tdb.conn.run(
                lambda db: (
                    db.execute("PRAGMA cache_size").fetchone()[0],
                    db.execute("PRAGMA soft_heap_limit").fetchone()[0],
                ),
            )
    finally:
        await store.close()
    # 0 leaves SQLite's defaults: 2,000 KiB per connection, no process-wide limit set by us.
    assert pragmas[0] == cache_size
    if cache_mib:
        assert pragmas[1] == cache_mib << 20
