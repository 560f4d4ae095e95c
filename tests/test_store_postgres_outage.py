"""PostgreSQL down or restarting under a running server: data requests and the status endpoint
answer 503 (Stitch's clients retry a 503), readiness says why, nothing is half-applied, and the
server recovers by itself when PostgreSQL is back.

Each test has a cluster of its own, as it stops it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from importapi_lite import Settings
from importapi_lite.settings import Secret

from .helpers import Admin, Api, db_rows, record
from .pg_cluster import Cluster, free_port, require_binaries


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    cluster = Cluster(require_binaries())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def settings(tmp_path: Path, own_cluster: Cluster) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        port=0,
        destination=own_cluster.url(),
        admin_token=Secret(secrets.token_hex(16)),
    )


async def until_accepted(api: Api, records: list[dict[str, object]]) -> int:
    """Push as a Stitch client does: again after a 503, for up to 20 s; the tries it took."""
    for attempt in range(1, 201):
        reply = await api.push(records)
        if reply.status != 503:
            assert reply.status == 201, reply
            return attempt
        await asyncio.sleep(0.1)
    raise AssertionError("still 503 after 20 s")


async def test_postgresql_down_is_503_everywhere_and_the_server_recovers_by_itself(
    api: Api, admin: Admin, own_cluster: Cluster, settings: Settings
) -> None:
    assert (await api.push([record("t", 1, {"id": 1, "v": "before"})])).status == 201

    await asyncio.to_thread(own_cluster.halt)

    pushed = await api.push([record("t", 2, {"id": 1, "v": "during"}), record("u", 2, {"id": 9})])
    assert (pushed.status, pushed.body) == (
        503,
        {"status": "ERROR", "message": "Service Unavailable"},
    )
    status = await api.request("GET", "/v2/import/status", content_type=None)
    assert status.status == 503 and status.body["reason"].startswith("PostgreSQL unavailable")
    assert (await admin.get("/readyz")).status == 503
    assert "importapi_lite_destination_up 0.0" in (await admin.get("/metrics")).text
    unknown = Api(api.client, secrets.token_hex(32))  # made a moment ago? no way to know: 503
    assert (await unknown.push([record("t", 3, {"id": 2})])).status == 503

    await asyncio.to_thread(own_cluster.resume)

    await until_accepted(api, [record("t", 4, {"id": 1, "v": "after"})])
    status = await api.request("GET", "/v2/import/status", content_type=None)
    assert status.status == 200
    assert (await admin.get("/readyz")).status == 200
    assert "importapi_lite_destination_up 1.0" in (await admin.get("/metrics")).text
    assert [(r["id"], r["v"]) for r in db_rows(settings, "t")] == [(1, "after")]
    assert (await unknown.push([record("t", 5, {"id": 2})])).status == 401


async def test_a_restart_mid_load_loses_nothing_acknowledged(
    api: Api, own_cluster: Cluster, settings: Settings
) -> None:
    acknowledged: dict[int, int] = {}  # key -> newest acknowledged sequence

    async def sender(index: int) -> None:
        for sequence in range(index, 400, 4):
            key = sequence % 25
            big = [record("t", sequence, {"id": key, "s": sequence, "pad": "x" * 20})] * 40
            await until_accepted(api, big)  # 40 copies: the COPY path
            acknowledged[key] = max(acknowledged.get(key, -1), sequence)

    senders = [asyncio.create_task(sender(i)) for i in range(4)]
    await asyncio.sleep(0.5)
    await asyncio.to_thread(own_cluster.restart)
    await asyncio.gather(*senders)

    stored = {r["id"]: r["s"] for r in db_rows(settings, "t")}
    assert stored == acknowledged


def test_commands_and_serve_say_in_one_line_that_postgresql_cannot_be_reached(
    tmp_path: Path,
) -> None:
    url = f"postgresql://importapi:secret@127.0.0.1:{free_port()}/nothing"
    for argv in (["tokens", "list"], ["tables"], ["serve", "--port", "0"]):
        done = subprocess.run(
            [sys.executable, "-m", "importapi_lite", *argv, "--data-dir", str(tmp_path)],
            env={**os.environ, "IMPORTAPI_LITE_DESTINATION": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, (argv, done.stderr)
        (line,) = done.stderr.splitlines()
        assert line.startswith("importapi-lite: cannot reach PostgreSQL at postgresql://"), line
        assert "secret" not in line and "***" in line
