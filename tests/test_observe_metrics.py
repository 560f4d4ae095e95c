"""``GET /_importapi/v1/metrics``: Prometheus' text format (``observe/metrics.py``), behind the
admin token, counting what the server did: scraped before and after a known sequence of
requests, the differences must be exactly that sequence's.

The metrics are the process's (prometheus-client's globals), shared by every server a test
process runs, so each test compares two scrapes of its own server rather than absolute values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from importapi_lite import Settings, create_app
from importapi_lite.admin.routes import ADMIN_PREFIX
from importapi_lite.observe.metrics import REGISTRY
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import BOTH_DESTINATIONS, Admin, Api, children_of, make_token, record, serving

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(admin: Admin) -> Samples:
    reply = await admin.get("/metrics")
    assert reply.status == 200, reply
    assert reply.content_type.startswith("text/plain; version=")
    return parse(reply.text)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@BOTH_DESTINATIONS
async def test_a_scrape_counts_a_known_sequence_of_requests(
    api: Api, admin: Admin, settings: Settings
) -> None:
    destination = "postgresql" if settings.destination.is_postgresql else "sqlite"
    before = await scrape(admin)
    first = [record("m", 5, {"id": 1}), record("m", 5, {"id": 2})]
    stale = [record("m", 1, {"id": 1})]  # older than what is stored: stale
    invalid = [record("m", "x", {"id": 3})]  # 422: a sequence must be an integer
    batch = {
        "table_name": "b",
        "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
        "key_names": ["id"],
        "messages": [
            {"action": "upsert", "sequence": 1, "data": {"id": 1}},
            # A field named as a column of the loading model's own: rejected.
            {"action": "upsert", "sequence": 2, "data": {"id": 2, "_sdc_sequence": 7}},
        ],
    }

    assert (await api.push(first)).status == 201
    assert (await api.push(stale)).status == 201
    assert (await api.push(invalid)).status == 422
    assert (await api.push(first, token="not-a-token")).status == 401
    assert (await api.batch(batch)).status == 201
    assert (await api.request("GET", "/v2/import/status", token=None)).status == 200
    after = await scrape(admin)

    requests = "importapi_lite_requests_total"
    assert grew(before, after, requests, endpoint="push", status="201") == 2
    assert grew(before, after, requests, endpoint="push", status="422") == 1
    assert grew(before, after, requests, endpoint="push", status="401") == 1
    assert grew(before, after, requests, endpoint="batch", status="201") == 1
    assert grew(before, after, requests, endpoint="status", status="200") == 1
    assert grew(before, after, requests, endpoint="admin", status="200") == 1  # the first scrape
    latency = "importapi_lite_request_duration_seconds_count"
    assert grew(before, after, latency, endpoint="push") == 4
    records = "importapi_lite_records_total"
    labels = {"integration": "import_api"}
    assert grew(before, after, records, **labels, table="m", outcome="accepted") == 2
    assert grew(before, after, records, **labels, table="m", outcome="stale") == 1
    assert grew(before, after, records, **labels, table="b", outcome="accepted") == 1
    assert grew(before, after, records, **labels, table="b", outcome="rejected") == 1
    # Bodies read: the 401's never was (its token is checked first).
    pushed = sum(len(json.dumps(body)) for body in (first, stale, invalid))
    assert grew(before, after, "importapi_lite_received_bytes_total", endpoint="push") == pushed
    commits = "importapi_lite_commit_duration_seconds_count"
    assert grew(before, after, commits, destination=destination) >= 3
    group_sizes = "importapi_lite_commit_group_size_sum"
    assert grew(before, after, group_sizes, destination=destination) >= 3
    assert value(after, "importapi_lite_destination_up") == 1
    assert value(after, "importapi_lite_requests_in_flight") == 0


async def test_metrics_need_the_admin_token(api: Api, admin: Admin) -> None:
    assert (await admin.get("/metrics", token=None)).status == 401
    assert (await admin.get("/metrics", token=api.token)).status == 403  # a push token: never


async def test_tables_past_the_limit_are_counted_together(
    aiohttp_client: Any, settings: Settings
) -> None:
    limited = dataclasses.replace(settings, metrics_tables=2)
    client = await aiohttp_client(create_app(limited))
    api = Api(client, make_token(limited))
    admin = Admin(client, _admin_token(limited))
    before = await scrape(admin)

    for n in range(5):
        assert (await api.push([record(f"limit{n}", 1, {"id": 1})])).status == 201
    after = await scrape(admin)

    labels = {"integration": "import_api", "outcome": "accepted"}
    name = "importapi_lite_records_total"
    assert [grew(before, after, name, **labels, table=f"limit{n}") for n in range(5)] == [
        1,
        1,
        0,
        0,
        0,
    ]
    assert grew(before, after, name, **labels, table="_other") == 3


async def test_requests_waiting_for_the_body_budget_are_counted(
    aiohttp_client: Any, settings: Settings
) -> None:
    """Two uploads that each need the whole budget: the second waits while the first trickles
    in, and the scrape (which needs no budget) sees one in flight waiting, two in flight."""
    small = dataclasses.replace(settings, body_memory=1000)
    client = await aiohttp_client(create_app(small))
    admin = Admin(client, _admin_token(small))
    token = make_token(small)
    body = json.dumps([record("w", 1, {"id": 1, "pad": "x" * 600})]).encode()
    headers = (
        f"POST /v2/import/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    uploads = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(headers + body[:10])  # the rest later: the first holds the budget
        await writer.drain()
        uploads.append((reader, writer))
        await asyncio.sleep(0.2)

    during = await scrape(admin)
    for _, writer in uploads:
        writer.write(body[10:])
        await writer.drain()
    answers = [await reader.readline() for reader, _ in uploads]
    for _, writer in uploads:
        writer.close()
    after = await scrape(admin)

    assert value(during, "importapi_lite_requests_waiting_for_body_budget") == 1
    assert value(during, "importapi_lite_requests_in_flight") == 2
    assert answers == [b"HTTP/1.1 201 Created\r\n"] * 2
    assert value(after, "importapi_lite_requests_waiting_for_body_budget") == 0
    assert value(after, "importapi_lite_requests_in_flight") == 0


def _admin_token(settings: Settings) -> str:
    if settings.admin_token is not None:
        return settings.admin_token.reveal()
    return ensure_admin_token(settings.data_dir)


@BOTH_DESTINATIONS
@pytest.mark.serve
def test_with_several_processes_a_scrape_adds_up_every_process(settings: Settings) -> None:
    """serve --processes 2: pushes on connections of their own land on either process, and a
    scrape, whichever process answers it, counts them all; a process killed and started again
    is counted as a restart, and its counts stay."""
    token = make_token(settings)
    admin_token = "metrics-admin-" + os.urandom(8).hex()
    env = {"IMPORTAPI_LITE_DESTINATION": settings.destination}
    env["IMPORTAPI_LITE_ADMIN_TOKEN"] = admin_token
    args = ["--processes", "2", "--workers", "0", "--durability", "fast"]
    with serving(settings.data_dir, *args, env=env) as server:

        def push(n: int) -> None:
            body = json.dumps([record("p", n, {"id": n})]).encode()
            request = urllib.request.Request(
                server.url + "/v2/import/push",
                data=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 201

        def scraped() -> Samples:
            request = urllib.request.Request(
                server.url + ADMIN_PREFIX + "/metrics",
                headers={"Authorization": f"Bearer {admin_token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                return parse(response.read().decode())

        for n in range(20):
            push(n)
        pushes = ("importapi_lite_requests_total", {"endpoint": "push", "status": "201"})
        for _ in range(6):  # whichever process each scrape lands on
            assert value(scraped(), pushes[0], **pushes[1]) == 20

        children = children_of(server.process.pid)
        assert len(children) == 2
        os.kill(children[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (
            children[0] in children_of(server.process.pid)
            or len(children_of(server.process.pid)) < 2
        ):
            assert time.monotonic() < deadline, "no new process"
            time.sleep(0.1)
        push(20)
        restarts = "importapi_lite_server_process_restarts_total"
        deadline = time.monotonic() + 30
        while True:  # until the new process has started (and counted itself)
            try:
                samples = scraped()
                if value(samples, restarts) == 1:
                    break
            except OSError:  # it may take the connection before it is ready
                pass
            assert time.monotonic() < deadline, "no restart counted"
            time.sleep(0.1)
        assert value(samples, pushes[0], **pushes[1]) == 21
        accepted = {"integration": "import_api", "table": "p", "outcome": "accepted"}
        assert value(samples, "importapi_lite_records_total", **accepted) == 21


def test_every_metric_is_documented() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "admin-api.md").read_text()
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        if not family.name.endswith("_created"):  # prometheus-client's, on every counter
            assert f"`{family.name}" in page, family.name
