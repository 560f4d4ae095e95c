"""A request aiohttp cannot parse (``web/malformed.py``): one log line naming the peer and what
was malformed, never a traceback, never the bytes that were sent (a header's value may be a
token). aiohttp answers it 400 itself and closes the connection.

Sent over a raw socket, since no HTTP client sends such requests, to ``importapi-lite serve`` in
a process of its own, whose log is read back as an operator would read it.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import Serving, serving

pytestmark = pytest.mark.serve

SECRET = b"s3cret-value"  # in every malformed request; never in the log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    data_dir: Path = tmp_path_factory.mktemp("malformed") / "data"
    with serving(data_dir) as running:
        yield running


def send_raw(port: int, request: bytes) -> bytes:
    """What the server answers to ``request``, read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def log_lines(server: Serving) -> list[str]:
    return server.log.read_text(encoding="utf-8", errors="replace").splitlines()


@pytest.mark.parametrize(
    ("request_bytes", "what"),
    [
        pytest.param(
            b"GET /v2/import/status HTTP/1.1\r\nHost: x\r\nX-Token: " + SECRET + b"\x00\r\n\r\n",
            "BadHttpMessage (Invalid header value char)",
            id="a NUL byte in a header's value",
        ),
        pytest.param(
            b"GET /v2/import/status HTTP/1.1\r\nHost: x\r\nBad Name: " + SECRET + b"\r\n\r\n",
            "BadHttpMessage (Invalid header token)",
            id="a space in a header's name",
        ),
        pytest.param(
            b"GET /v2/import/\x01" + SECRET + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            "InvalidURLError (Invalid char in url path)",
            id="a control character in the path",
        ),
        pytest.param(
            b"GET /v2/import/status?" + SECRET + b" HTTP/1.1x\r\nHost: x\r\n\r\n",
            "BadStatusLine",
            id="an invalid request line",
        ),
        pytest.param(
            b"GET /v2/import/status HTTP/1.1\r\nHost: x\r\nX-Long: " + SECRET * 1000 + b"\r\n\r\n",
            "LineTooLong",
            id="a header too long",
        ),
    ],
)
def test_a_malformed_request_is_one_log_line_without_a_traceback_or_its_bytes(
    server: Serving, request_bytes: bytes, what: str
) -> None:
    before = len(log_lines(server))

    answer = send_raw(server.port, request_bytes)

    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:200]
    # aiohttp logs before it answers, and the handler flushes each line: it is there already.
    new = log_lines(server)[before:]
    assert len(new) == 1, new
    assert " WARNING aiohttp.server: malformed HTTP request from 127.0.0.1: " in new[0], new
    assert what in new[0]
    assert new[0].endswith("; answered 400 and closed")
    log = server.log.read_bytes()
    assert b"Traceback" not in log
    assert SECRET not in log


def test_the_server_serves_on_after_malformed_requests(server: Serving) -> None:
    send_raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n")

    with urllib.request.urlopen(server.url + "/v2/import/status", timeout=10) as response:
        assert response.status == 200
