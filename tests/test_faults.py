"""Fault injection (``observe/faults.py``, driven through the admin API): the next N data requests
fail, slow down or drop, on purpose and repeatably."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from importapi_lite import Settings, create_app
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import Admin, Api, db_rows, make_token, record


async def add_fault(admin: Admin, **spec: Any) -> dict[str, Any]:
    reply = await admin.request("POST", "/_importapi/v1/faults", body=spec)
    assert reply.status == 201, reply
    return dict(reply.body)


def users(sequence: int, *ids: int) -> list[dict[str, Any]]:
    return [record("users", sequence, {"id": i}) for i in ids]


BATCH = {
    "table_name": "users",
    "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
    "key_names": ["id"],
    "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 50}}],
}


async def test_the_next_two_pushes_answer_503_and_store_nothing_then_all_is_normal(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await add_fault(admin, status=503, count=2)

    replies = [await api.push(users(1, i)) for i in (1, 2, 3)]

    assert [r.status for r in replies] == [503, 503, 201]
    assert replies[0].body == {"status": "ERROR", "message": "Service Unavailable"}
    assert db_rows(settings, "users") == [{"id": 3}]
    assert (await admin.get("/faults")).body == {"faults": []}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"status": "ERROR", "message": "Internal Server Error"}),
        (503, {"status": "ERROR", "message": "Service Unavailable"}),
        (504, {"status": "ERROR", "message": "Gateway Timeout"}),
        (429, {"status": "ERROR", "message": "Too Many Requests"}),
        (413, {"status": "ERROR", "message": "Request rejected: request size ("}),
    ],
)
async def test_each_injected_status_has_its_stitch_shaped_body(
    admin: Admin, api: Api, settings: Settings, status: int, body: dict[str, str]
) -> None:
    await add_fault(admin, status=status)

    reply = await api.push(users(1, 1))

    assert reply.status == status
    assert reply.body["status"] == body["status"]
    assert reply.body["message"].startswith(body["message"])
    assert db_rows(settings, "users") == []


async def test_an_injected_202_stores_the_data_and_answers_queued(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await add_fault(admin, status=202)

    reply = await api.push(users(1, 1))

    assert (reply.status, reply.body) == (
        202,
        {"status": "Accepted", "message": "The batch is queued to be processed."},
    )
    assert db_rows(settings, "users") == [{"id": 1}]


async def test_a_fault_for_one_endpoint_leaves_the_others_alone(admin: Admin, api: Api) -> None:
    await add_fault(admin, status=500, endpoint="batch")

    push = await api.push(users(1, 1))
    batch = await api.batch(BATCH)

    assert (push.status, batch.status) == (201, 500)


async def test_a_fault_for_one_table_fires_only_on_requests_with_that_table(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await add_fault(admin, status=503, table="orders")

    users_reply = await api.push(users(1, 1))
    mixed = await api.push(users(1, 2) + [record("orders", 1, {"id": 1})])
    after = await api.push([record("orders", 1, {"id": 2})])

    assert [r.status for r in (users_reply, mixed, after)] == [201, 503, 201]
    assert db_rows(settings, "users") == [{"id": 1}]


async def test_a_delay_slows_the_request_which_then_loads(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await add_fault(admin, delay_ms=300)

    started = time.monotonic()
    reply = await api.push(users(1, 1))

    assert reply.status == 201
    assert time.monotonic() - started >= 0.3
    assert db_rows(settings, "users") == [{"id": 1}]


async def test_a_dropped_connection_gets_no_answer_and_stores_nothing(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await add_fault(admin, drop=True)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.push(users(1, 1))

    assert db_rows(settings, "users") == []
    (entry,) = (await admin.get("/journal")).body["entries"]
    assert (entry["status"], entry["fault"]) == (None, 1)
    assert (await api.push(users(1, 2))).status == 201


async def test_a_request_without_a_valid_token_gets_401_and_does_not_use_up_the_fault(
    admin: Admin, api: Api
) -> None:
    await add_fault(admin, status=503)

    unauthorized = await api.push(users(1, 1), token="wrong")
    faulted = await api.push(users(1, 1))

    assert (unauthorized.status, faulted.status) == (401, 503)


async def test_the_journal_names_the_fault_that_fired(admin: Admin, api: Api) -> None:
    fault = await add_fault(admin, status=429)

    await api.push(users(1, 1))

    (entry,) = (await admin.get("/journal")).body["entries"]
    assert (entry["status"], entry["fault"]) == (429, fault["id"])
    assert entry["error"] == {"status": "ERROR", "message": "Too Many Requests"}


async def test_a_probability_fault_with_a_seed_fails_the_same_requests_every_run(
    aiohttp_client: Any, settings: Settings, tmp_path: Any
) -> None:
    patterns = []
    for run in range(2):
        run_settings = Settings(data_dir=tmp_path / f"run{run}", port=0)
        client = await aiohttp_client(create_app(run_settings))
        api = Api(client, make_token(run_settings))
        admin = Admin(client, ensure_admin_token(run_settings.data_dir))
        await add_fault(admin, status=503, probability=0.5, seed=7, count=None)
        replies = [await api.push(users(1, i)) for i in range(20)]
        patterns.append([r.status for r in replies])

    assert patterns[0] == patterns[1]
    assert set(patterns[0]) == {201, 503}


async def test_faults_are_listed_and_cleared_one_or_all(admin: Admin) -> None:
    first = await add_fault(admin, status=500, count=3, endpoint="push")
    second = await add_fault(admin, delay_ms=10, count=None)

    listed = await admin.get("/faults")
    one = await admin.delete(f"/faults/{first['id']}")
    missing = await admin.delete(f"/faults/{first['id']}")
    after_one = await admin.get("/faults")
    everything = await admin.delete("/faults")

    assert [f["id"] for f in listed.body["faults"]] == [first["id"], second["id"]]
    assert listed.body["faults"][0] | {"fired": 0} == {
        "id": first["id"],
        "status": 500,
        "delay_ms": 0,
        "drop": False,
        "remaining": 3,
        "endpoint": "push",
        "table": None,
        "probability": 1.0,
        "seed": 0,
        "fired": 0,
    }
    assert one.status == 200 and missing.status == 404
    assert [f["id"] for f in after_one.body["faults"]] == [second["id"]]
    assert everything.body == {"cleared": 1}


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"status": 418},
        {"status": True},
        {"status": 503, "drop": True},
        {"status": 503, "count": 0},
        {"status": 503, "endpoint": "status"},
        {"status": 503, "probability": 0},
        {"status": 503, "probability": 1.5},
        {"delay_ms": -1},
        {"delay_ms": 10**9},
        {"status": 503, "colour": "red"},
        [],
    ],
)
async def test_an_invalid_fault_is_a_400_and_adds_nothing(admin: Admin, spec: Any) -> None:
    reply = await admin.request("POST", "/_importapi/v1/faults", body=spec)

    assert (reply.status, reply.body["error"]) == (400, "bad_request"), reply
    assert (await admin.get("/faults")).body == {"faults": []}


async def test_whole_numbers_written_with_a_fraction_are_integers_as_in_json_schema(
    admin: Admin,
) -> None:
    # The OpenAPI document says "integer", and JSON Schema's integer is 2.0 as much as 2: some
    # encoders (and schemathesis) write it so.
    fault = await add_fault(admin, status=503.0, count=2.0, delay_ms=10.0, seed=7.0)

    assert (fault["status"], fault["remaining"], fault["delay_ms"], fault["seed"]) == (
        503,
        2,
        10,
        7,
    )
    assert all(type(fault[k]) is int for k in ("status", "remaining", "delay_ms", "seed"))
    reply = await admin.request("POST", "/_importapi/v1/faults", body={"status": 503, "count": 1.5})
    assert (reply.status, reply.body["error"]) == (400, "bad_request")


async def test_a_fault_body_that_is_not_json_is_a_400(admin: Admin) -> None:
    reply = await admin.request("POST", "/_importapi/v1/faults", data="{nope")

    assert (reply.status, reply.body["error"]) == (400, "bad_request")


async def test_a_table_fault_ignores_a_body_that_does_not_parse_which_gets_its_400(
    admin: Admin, api: Api
) -> None:
    await add_fault(admin, status=503, table="users")

    malformed = await api.request("POST", "/v2/import/push", data="[{nope")
    faulted = await api.push(users(1, 1))

    assert (malformed.status, faulted.status) == (400, 503)


async def test_faults_apply_to_batch_and_validate_but_never_to_status(
    admin: Admin, api: Api
) -> None:
    await add_fault(admin, status=500, count=None)

    status = await api.request("GET", "/v2/import/status", token=None, content_type=None)
    validate = await api.validate(users(1, 1))
    batch = await api.batch(BATCH)

    assert [r.status for r in (status, validate, batch)] == [200, 500, 500]
