"""/v2/import/batch end to end: schemas, table versions, append-only tables, metadata."""

from __future__ import annotations

import json
import uuid
from typing import Any

from .helpers import BOTH_DESTINATIONS, WIRE, Api, db_rows, rejected_rows, stored_tables, table_meta

pytestmark = BOTH_DESTINATIONS  # one loading model, both destinations

SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}},
}


def upsert(sequence: int, **data: Any) -> dict[str, Any]:
    return {"action": "upsert", "sequence": sequence, "data": data}


def activate(sequence: int) -> dict[str, Any]:
    return {"action": "activate_version", "sequence": sequence}


def body(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "table_name": "users",
        "schema": SCHEMA,
        "key_names": ["id"],
        "messages": messages,
    } | fields


async def test_target_stitch_capture_loads_version_1_and_activates_it(
    api: Api, settings: Any
) -> None:
    reply = await api.request(
        "POST", "/v2/import/batch", data=(WIRE / "target-stitch-4.0.3-batch.json").read_bytes()
    )
    assert (reply.status, reply.body) == (201, {"status": "OK", "message": "Batch Accepted!"})
    rows = db_rows(settings, "accounts", system=True)
    assert [(r["id"], r["name"], r["_sdc_table_version"]) for r in rows] == [
        (0, "a0", 1),
        (1, "a1", 1),
        (2, "a2", 1),
    ]
    assert rows[0]["_sdc_sequence"] == 1795692123739606401
    assert rows[0]["_sdc_extracted_at"] == "2026-11-01T00:00:00.000000Z"
    assert table_meta(settings, "accounts")["active_version"] == 1


async def test_the_documented_version_flow(api: Api, settings: Any) -> None:
    """SPEC §13.6, step by step."""
    await api.batch(
        body(
            [upsert(10, id=1, name="Sam"), upsert(11, id=2, name="Pat"), activate(12)],
            table_version=1,
        )
    )
    assert db_rows(settings, "users") == [{"id": 1, "name": "Sam"}, {"id": 2, "name": "Pat"}]
    assert table_meta(settings, "users")["active_version"] == 1

    await api.batch(body([upsert(20, id=1, name="Samantha"), activate(21)], table_version=2))
    assert db_rows(settings, "users") == [{"id": 1, "name": "Samantha"}]

    push = {
        "client_id": 7723,
        "table_name": "users",
        "sequence": 15,
        "action": "upsert",
        "key_names": ["id"],
        "data": {"id": 1, "name": "Old"},
    }
    assert (await api.push([push])).status == 201
    assert db_rows(settings, "users") == [{"id": 1, "name": "Samantha"}]


async def test_rows_of_a_newer_version_are_visible_before_activation(
    api: Api, settings: Any
) -> None:
    await api.batch(body([upsert(1, id=1), activate(2)], table_version=1))
    await api.batch(body([upsert(3, id=2)], table_version=2))
    assert db_rows(settings, "users") == [{"id": 1}, {"id": 2}]


async def test_activating_an_older_version_changes_nothing(api: Api, settings: Any) -> None:
    await api.batch(body([upsert(1, id=1), activate(2)], table_version=5))
    await api.batch(body([activate(3)], table_version=4))
    assert table_meta(settings, "users")["active_version"] == 5
    assert db_rows(settings, "users") == [{"id": 1}]


async def test_activate_version_without_table_version_is_a_no_op(api: Api, settings: Any) -> None:
    await api.batch(body([upsert(1, id=1), activate(2)]))
    assert table_meta(settings, "users")["active_version"] is None
    assert db_rows(settings, "users") == [{"id": 1}]


async def test_activation_takes_effect_at_its_position(api: Api, settings: Any) -> None:
    await api.batch(body([upsert(1, id=1)], table_version=1))
    await api.batch(body([upsert(2, id=2), activate(3), upsert(4, id=3)], table_version=2))
    await api.batch(body([upsert(5, id=4)], table_version=1))  # older than active: dropped
    assert db_rows(settings, "users") == [{"id": 2}, {"id": 3}]


async def test_key_less_tables_append_every_data_point_with_a_uuid(api: Api, settings: Any) -> None:
    for _ in range(2):
        reply = await api.batch(
            body([upsert(1, id=1, name="a"), upsert(1, id=1, name="a")], key_names=[])
        )
        assert reply.status == 201
    rows = db_rows(settings, "users", system=True)
    assert len(rows) == 4
    assert len({uuid.UUID(r["__sdc_primary_key"]) for r in rows}) == 4
    assert table_meta(settings, "users")["key_names"] == "[]"


async def test_batch_without_key_names_is_append_only(api: Api, settings: Any) -> None:
    batch = {
        "table_name": "events",
        "schema": SCHEMA,
        "messages": [upsert(1, id=1), upsert(1, id=1)],
    }
    assert (await api.batch(batch)).status == 201
    assert db_rows(settings, "events") == [{"id": 1}, {"id": 1}]


async def test_bookmark_names_are_kept_as_table_metadata(api: Api, settings: Any) -> None:
    await api.batch(body([upsert(1, id=1)], bookmark_names=["updated_at"]))
    assert json.loads(table_meta(settings, "users")["bookmark_names"]) == ["updated_at"]


async def test_singer_extras_and_high_precision_numbers_are_accepted(
    api: Api, settings: Any
) -> None:
    schema = {
        "type": ["null", "object"],
        "selected": True,
        "properties": {
            "id": {"type": "integer", "inclusion": "automatic"},
            "amount": {"type": ["null", "number"], "multipleOf": 1e-10},
            "at": {"type": ["null", "string"], "format": "date-time"},
        },
    }
    data = b'{"id": 1, "amount": -9999999999999999.9999999999999999999999, "at": "not a date"}'
    raw = (
        b'{"table_name": "t", "schema": '
        + json.dumps(schema).encode()
        + (
            b', "key_names": ["id"], "messages": [{"action": "upsert", "sequence": 1, "data": '
            + data
            + b"}]}"
        )
    )
    reply = await api.request("POST", "/v2/import/batch", data=raw)
    assert reply.status == 201, reply
    # The schema makes "at" a timestamp column; text that is no date-time splits off.
    assert db_rows(settings, "t") == [
        {"id": 1, "amount": -1e16, "at": None, "at__st": "not a date"}
    ]


async def test_a_schema_ref_to_the_network_is_refused_without_fetching(
    api: Api, settings: Any
) -> None:
    schema = {"type": "object", "properties": {"id": {"$ref": "http://127.0.0.1:9/schema.json"}}}
    reply = await api.batch(body([upsert(1, id=1)], schema=schema))
    assert reply.status == 400
    assert reply.body["error"].startswith("Invalid JSON schema: ")
    assert stored_tables(settings) == []


async def test_a_batch_with_other_keys_than_the_table_is_rejected_at_load(
    api: Api, settings: Any
) -> None:
    await api.batch(body([upsert(1, id=1)]))
    reply = await api.batch(body([upsert(2, id=2, name="x")], key_names=["name"]))
    assert reply.status == 201
    assert db_rows(settings, "users") == [{"id": 1}]
    (rejected,) = rejected_rows(settings)
    assert rejected["reason"] == "Keys for table do not match Primary Keys of incoming data"
    assert rejected["record"]["data"] == {"id": 2, "name": "x"}


async def test_a_batch_of_20000_records_loads_in_one_request(api: Api, settings: Any) -> None:
    messages = [upsert(i, id=i, name=f"n{i}") for i in range(20000)]
    reply = await api.batch(body(messages))
    assert reply.status == 201
    assert len(db_rows(settings, "users")) == 20000
