"""A table's transactions run on its connection's own thread, in one round trip (issue 5).

``writer.run_on_thread`` leans on two private names of aiosqlite; these tests fail first if an
aiosqlite release changes them. Then: a group commit handed to the thread runs to its end even
if the request that started it is cancelled.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from importapi_lite.models import TableBatch, Upsert
from importapi_lite.store.sqlite import Store, writer
from importapi_lite.store.sqlite.paths import table_path
from importapi_lite.store.sqlite.tokens import DEFAULT_INTEGRATION

from .conftest import CLIENT_ID

RECEIVED = "2026-01-01T00:00:00.000000Z"


async def test_run_on_thread_runs_on_the_connections_thread_in_queue_order(tmp_path: Path):
    async with aiosqlite.connect(tmp_path / "x.sqlite3", isolation_level=None) as conn:
        seen: list[str] = []
        await conn.execute("CREATE TABLE t (v)")
        queued = [
            asyncio.ensure_future(conn.execute("INSERT INTO t VALUES ('before')")),
            asyncio.ensure_future(
                writer.run_on_thread(
                    conn, lambda db: seen.extend(v for (v,) in db.execute("SELECT v FROM t"))
                )
            ),
            asyncio.ensure_future(conn.execute("INSERT INTO t VALUES ('after')")),
        ]
        await asyncio.gather(*queued)
        thread = await writer.run_on_thread(conn, lambda db: threading.get_ident())
        await conn.create_function("thread", 0, threading.get_ident)
        cursor = await conn.execute("SELECT thread()")
        (aiosqlite_thread,) = await cursor.fetchone() or (None,)

    assert seen == ["before"]  # after what was queued before it, before what came after
    assert thread == aiosqlite_thread != threading.get_ident()


async def test_run_on_thread_passes_the_connection_and_raises_what_fn_raised(tmp_path: Path):
    async with aiosqlite.connect(tmp_path / "x.sqlite3", isolation_level=None) as conn:
        await conn.execute("CREATE TEMP TABLE only_on_this_connection (v)")
        found = await writer.run_on_thread(
            conn, lambda db: db.execute("SELECT count(*) FROM only_on_this_connection").fetchone()
        )
        try:
            await writer.run_on_thread(conn, lambda db: db.execute("SELECT * FROM missing"))
        except sqlite3.OperationalError as exc:
            error: Exception | None = exc
        else:
            error = None

    assert found == (0,)
    assert isinstance(error, sqlite3.OperationalError)


async def test_a_group_whose_starter_is_cancelled_still_commits_the_others(tmp_path: Any):
    store = Store(tmp_path / "data", durability="fast")
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
            slow = writer.run_on_thread(tdb.conn, lambda db: threading.Event().wait(0.3))
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
    store = Store(tmp_path / "data", durability="fast", cache_mib=cache_mib)
    path = table_path(store.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "t")
    try:
        await store.load(
            CLIENT_ID,
            DEFAULT_INTEGRATION,
            TableBatch("t", [Upsert(1, {"id": 1}, ("id",))]),
            RECEIVED,
        )
        async with store._table_db(path) as tdb:
            pragmas = await writer.run_on_thread(
                tdb.conn,
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
