"""Graceful shutdown: on SIGTERM the server stops accepting, finishes what is in flight, exits 0.

The server runs as its own process (``bench/crash.py``'s ``Server``); requests go over a raw
socket so the test knows what was sent before the signal: a whole 20,000-record batch, or the
first bytes of a body whose client then stalls.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from importapi_lite.store.sqlite.paths import table_path
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import load_crash

# A server process stopped by SIGTERM in the middle of its work.
pytestmark = [pytest.mark.crash, pytest.mark.serve]

RECORDS = 20_000  # Stitch's most per request: the longest load, so SIGTERM comes mid-request


def big_batch() -> bytes:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}
    messages = [
        {"action": "upsert", "sequence": 1, "data": {"id": i, "v": f"value {i}"}}
        for i in range(RECORDS)
    ]
    body = {"table_name": "big", "schema": schema, "key_names": ["id"], "messages": messages}
    return json.dumps(body).encode()


def is_refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, float]:
    """Status, body, and when the body had arrived (``time.monotonic()``)."""
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length), time.monotonic()


async def test_sigterm_finishes_an_in_flight_batch_refuses_new_connections_and_exits_0(
    tmp_path: Path,
) -> None:
    crash = load_crash()
    data_dir = tmp_path / "data"
    server = crash.Server(data_dir, tmp_path / "server.log")
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            assert await server.wait_ready(session) == 200
        body = big_batch()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /v2/import/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {server.token}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # let the server take the request in
        path = table_path(data_dir, crash.CLIENT_ID, DEFAULT_INTEGRATION, "big")
        assert not path.exists()  # still in flight: not loaded yet

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        answer = asyncio.create_task(read_response(reader))
        refused_at = None
        while time.monotonic() < signalled + 20 and not answer.done():
            if await asyncio.to_thread(is_refused, server.port):
                refused_at = time.monotonic()
                break
            await asyncio.sleep(0.01)
        status, text, answered_at = await asyncio.wait_for(answer, 30)
        writer.close()
        await writer.wait_closed()

        assert status == 201, text
        assert json.loads(text) == {"status": "OK", "message": "Batch Accepted!"}
        assert refused_at is not None, "accepted connections after SIGTERM until it answered"
        assert refused_at < answered_at, (  # refused while the batch was still loading
            f"refused {refused_at - signalled:.3f} s after SIGTERM, "
            f"answered after {answered_at - signalled:.3f} s"
        )
        assert await asyncio.to_thread(server.process.wait, 30) == 0
    finally:
        if server.process.poll() is None:
            server.kill()

    db = sqlite3.connect(path)
    try:
        assert db.execute('SELECT count(*), count(DISTINCT id) FROM "big"').fetchone() == (
            RECORDS,
            RECORDS,
        )
    finally:
        db.close()
    assert set(crash.integrity(data_dir).values()) == {"ok"}
    assert "Traceback" not in server.log.read_text()


async def test_sigterm_exits_promptly_while_a_client_stalls_mid_upload(tmp_path: Path) -> None:
    crash = load_crash()
    server = crash.Server(tmp_path / "data", tmp_path / "server.log")
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            assert await server.wait_ready(session) == 200
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /v2/import/push HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {server.token}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{"
        )  # ... and the other 998 bytes never come
        await writer.drain()
        await asyncio.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        # docker stop and Kubernetes wait 10 s, then SIGKILL whatever is loading.
        try:
            assert await asyncio.to_thread(server.process.wait, 5) == 0
        finally:
            writer.close()
    finally:
        if server.process.poll() is None:
            server.kill()
