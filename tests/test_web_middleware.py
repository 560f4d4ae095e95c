"""``web/middleware.py``: auth, media type and size checks, their order, and tokens changing
under a running server."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.store.sqlite.tokens import SqliteTokenStore

from .helpers import CLIENT_ID, Api, db_rows, make_token, record

LIMIT = 1000


def too_large(size: int) -> dict[str, str]:
    return {
        "status": "ERROR",
        "message": f"Request rejected: request size ({size} bytes) exceeds the maximum",
    }


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=0, max_body_bytes=LIMIT)


def padded_push(size: int) -> bytes:
    """A valid push body of exactly ``size`` bytes."""
    base = json.dumps([record("users", 1, {"id": 1, "pad": ""})])
    body = base.replace('"pad": ""', '"pad": "' + "x" * (size - len(base)) + '"')
    assert len(body) == size
    return body.encode()


async def test_a_body_of_exactly_the_limit_is_accepted(api: Api, settings: Settings) -> None:
    reply = await api.request("POST", "/v2/import/push", data=padded_push(LIMIT))
    assert reply.status == 201


@pytest.mark.parametrize("path", ["/v2/import/push", "/v2/import/batch", "/v2/import/validate"])
async def test_a_body_one_byte_over_the_limit_gets_413(api: Api, path: str) -> None:
    reply = await api.request("POST", path, data=padded_push(LIMIT + 1))
    assert (reply.status, reply.body) == (413, too_large(LIMIT + 1))


async def test_413_is_decided_from_content_length_before_reading(client: Any, token: str) -> None:
    """The server answers while the client has sent only the headers of a 1 GB body."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        b"POST /v2/import/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 1000000000\r\n\r\n["
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 413 ")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(await reader.readexactly(length)) == too_large(1000000000)
    writer.close()


async def test_a_chunked_body_is_cut_off_at_the_limit(api: Api, settings: Settings) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):  # 20,000 bytes in all, sent slowly enough to arrive piece by piece
            yield b" " * 400
            await asyncio.sleep(0.005)

    async with api.client.post(
        "/v2/import/push",
        data=chunks(),
        headers={"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"},
    ) as response:
        assert response.status == 413
        body = await response.json()
    received = int(body["message"].split("(")[1].split(" ")[0])
    assert LIMIT < received < 20_000  # it stopped reading soon after the limit
    assert body == too_large(received)


async def test_gzip_bodies_are_decoded_and_the_limit_applies_to_the_decoded_size(
    api: Api, settings: Settings
) -> None:
    small = gzip.compress(padded_push(LIMIT))
    reply = await api.request(
        "POST", "/v2/import/push", data=small, headers={"Content-Encoding": "gzip"}
    )
    assert reply.status == 201
    big = gzip.compress(padded_push(LIMIT * 5))
    assert len(big) < LIMIT
    reply = await api.request(
        "POST", "/v2/import/push", data=big, headers={"Content-Encoding": "gzip"}
    )
    assert reply.status == 413


async def test_415_comes_before_413_and_413_before_parsing(api: Api) -> None:
    oversized = b"{" * (LIMIT + 1)
    assert (
        await api.request("POST", "/v2/import/push", data=oversized, content_type="text/plain")
    ).status == 415
    assert (await api.request("POST", "/v2/import/push", data=oversized)).status == 413


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_bearer_scheme_is_case_insensitive(api: Api, scheme: str) -> None:
    headers = {"Authorization": f"{scheme} {api.token}"}
    reply = await api.push([record("users", 1, {"id": 1})], token=None, headers=headers)
    assert reply.status == 201


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"],
)
async def test_media_type_parameters_and_case_are_ignored(api: Api, content_type: str) -> None:
    reply = await api.push([record("users", 1, {"id": 1})], content_type=content_type)
    assert reply.status == 201


async def test_tokens_created_and_revoked_while_running_take_effect_at_once(
    api: Api, settings: Settings
) -> None:
    fresh = make_token(settings, CLIENT_ID, integration="other")
    assert (await api.push([record("users", 1, {"id": 1})], token=fresh)).status == 201
    assert db_rows(settings, "users", integration="other") == [{"id": 1}]
    tokens = SqliteTokenStore(settings.data_dir)
    tokens.revoke(fresh)
    tokens.close()
    assert (await api.push([record("users", 2, {"id": 1})], token=fresh)).status == 401


async def test_pausing_an_integration_while_running_takes_effect_at_once(
    api: Api, settings: Settings
) -> None:
    assert (await api.push([record("users", 1, {"id": 1})])).status == 201
    tokens = SqliteTokenStore(settings.data_dir)
    tokens.set_integration_state(CLIENT_ID, "import_api", "paused")
    assert (await api.push([record("users", 2, {"id": 1})])).status == 401
    tokens.set_integration_state(CLIENT_ID, "import_api", "active")
    tokens.close()
    assert (await api.push([record("users", 3, {"id": 1})])).status == 201


async def test_data_lands_in_the_tokens_integration_schema(api: Api, settings: Settings) -> None:
    other = make_token(settings, CLIENT_ID, integration="crm")
    await api.push([record("users", 1, {"id": 1})])
    await api.push([record("users", 1, {"id": 2})], token=other)
    assert db_rows(settings, "users") == [{"id": 1}]
    assert db_rows(settings, "users", integration="crm") == [{"id": 2}]


async def test_a_server_configured_for_europe_takes_only_european_tokens(
    aiohttp_client: Any, tmp_path: Any
) -> None:
    settings = Settings(data_dir=tmp_path / "eu", port=0, region="europe")
    api = Api(await aiohttp_client(create_app(settings)), make_token(settings, region="europe"))
    north = make_token(settings, integration="na", region="north-america")
    assert (await api.push([record("users", 1, {"id": 1})])).status == 201
    reply = await api.push([record("users", 1, {"id": 1})], token=north)
    assert (reply.status, reply.body) == (401, {"message": "Invalid region."})
