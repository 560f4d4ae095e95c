"""Limits that protect the server: concurrent requests, stalled uploads, and durability modes."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.web.keys import destination_key

from .helpers import Api, db_path, db_rows, make_token, record

SERVICE_UNAVAILABLE = {"status": "ERROR", "message": "Service Unavailable"}


async def server(aiohttp_client: Any, tmp_path: Any, **settings: Any) -> tuple[Api, Settings]:
    config = Settings(data_dir=tmp_path / "data", port=0, **settings)
    return Api(await aiohttp_client(create_app(config)), make_token(config)), config


async def slow_upload(
    api: Api, length: int, sent: bytes = b"["
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A push whose headers declare ``length`` bytes of body, of which only ``sent`` arrive."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(
        b"POST /v2/import/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + api.token.encode() + b"\r\n"
        b"Content-Length: " + str(length).encode() + b"\r\n\r\n" + sent
    )
    await writer.drain()
    return reader, writer


async def test_requests_past_the_limit_get_503_at_once(aiohttp_client: Any, tmp_path: Any) -> None:
    api, _ = await server(aiohttp_client, tmp_path, max_concurrent_requests=1)
    slow = record("t", 1, {"id": 1})
    # A stalled upload holds the only slot: headers sent, body not yet.
    reader, writer = await slow_upload(api, 500)
    await asyncio.sleep(0.2)
    started = time.monotonic()
    reply = await api.push([slow])
    assert (reply.status, reply.body) == (503, SERVICE_UNAVAILABLE)
    assert time.monotonic() - started < 1
    status = await api.request("GET", "/v2/import/status", token=None, content_type=None)
    assert status.status == 200  # the status endpoint is never limited
    writer.close()
    await asyncio.sleep(0.1)
    assert (await api.push([slow])).status == 201  # the slot is free again


async def test_a_stalled_upload_gets_408_after_the_read_timeout(
    aiohttp_client: Any, tmp_path: Any
) -> None:
    api, config = await server(aiohttp_client, tmp_path, read_timeout=1)
    reader, writer = await slow_upload(api, 100, b"[{")
    started = time.monotonic()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 408 ")
    assert 0.9 < time.monotonic() - started < 3
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(await reader.readexactly(length)) == {
        "status": "ERROR",
        "message": "Request Timeout",
    }
    writer.close()
    assert not db_path(config, "t").exists()


@pytest.mark.parametrize(("durability", "synchronous"), [("fsync", 2), ("fast", 1)])
async def test_durability_sets_how_the_table_databases_sync(
    aiohttp_client: Any, tmp_path: Any, durability: str, synchronous: int
) -> None:
    api, config = await server(aiohttp_client, tmp_path, durability=durability)
    assert (await api.push([record("t", 1, {"id": 1})])).status == 201
    # PRAGMA synchronous belongs to a connection: ask the one the server writes with.
    (table_db,) = api.client.server.app[destination_key]._open.values()
    found = await table_db.conn.run(lambda db: db.execute("PRAGMA synchronous").fetchone())
    assert found == (synchronous,)  # 2 is FULL, 1 is NORMAL


def test_unknown_durability_is_refused() -> None:
    with pytest.raises(ValueError, match="durability must be one of fsync, fast"):
        Settings(durability="maybe")


async def test_a_body_past_the_memory_budget_waits_its_turn_then_loads(
    aiohttp_client: Any, tmp_path: Any
) -> None:
    api, config = await server(aiohttp_client, tmp_path, max_body_bytes=1000, body_memory=1000)
    # A slow upload declares 950 bytes: it holds 950 of the 1,000-byte budget while it arrives.
    first = [record("t", 1, {"id": 1, "pad": ""})]
    first[0]["data"]["pad"] = "x" * (950 - len(json.dumps(first)))
    body = json.dumps(first).encode()
    assert len(body) == 950
    reader, writer = await slow_upload(api, len(body), body[:10])
    await asyncio.sleep(0.2)

    second = asyncio.create_task(api.push([record("t", 2, {"id": 2})]))
    await asyncio.sleep(0.5)
    assert not second.done()  # it waits rather than being refused or read into memory

    writer.write(body[10:])
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 201 ")
    assert (await asyncio.wait_for(second, timeout=5)).status == 201
    writer.close()
    assert sorted(row["id"] for row in db_rows(config, "t")) == [1, 2]


async def test_a_client_that_leaves_while_holding_the_budget_frees_it(
    aiohttp_client: Any, tmp_path: Any
) -> None:
    api, _ = await server(aiohttp_client, tmp_path, max_body_bytes=1000, body_memory=1000)
    _, writer = await slow_upload(api, 1000)
    await asyncio.sleep(0.2)
    waiting = asyncio.create_task(api.push([record("t", 1, {"id": 1})]))
    await asyncio.sleep(0.3)
    assert not waiting.done()

    writer.close()  # the holder goes away mid-upload

    assert (await asyncio.wait_for(waiting, timeout=5)).status == 201


def test_a_body_memory_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="body_memory"):
        Settings(body_memory=0)
