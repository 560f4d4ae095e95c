"""The ``_sdc_*`` fields real taps add to their records load as data columns (SPEC §13.8).

Each tap family's fields, as its schema declares them, on /batch (as target-stitch sends them)
and on /push; only a field named as one of the loading model's own system columns is rejected.
"""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import BOTH_DESTINATIONS, Api, db_rows, record, rejected_rows

pytestmark = BOTH_DESTINATIONS  # one loading model, both destinations

MODIFIED = "2026-11-01T10:00:00.000000Z"

# (schema properties, one record's data, the row it loads as on /batch) per tap family.
FAMILIES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # singer_sdk.contrib.filesystem, as Meltano's file taps use it.
    "singer-sdk file taps": (
        {
            "_sdc_path": {"type": "string"},
            "_sdc_line_number": {"type": "integer"},
            "_sdc_modified_at": {"type": ["null", "string"], "format": "date-time"},
        },
        {"_sdc_path": "/data/people.csv", "_sdc_line_number": 2, "_sdc_modified_at": MODIFIED},
        {"_sdc_path": "/data/people.csv", "_sdc_line_number": 2, "_sdc_modified_at": MODIFIED},
    ),
    # tap-s3-csv, tap-sftp, tap-google-cloud-storage: their discover's metadata_schema.
    "tap-s3-csv and siblings": (
        {
            "_sdc_source_bucket": {"type": "string"},
            "_sdc_source_file": {"type": "string"},
            "_sdc_source_lineno": {"type": "integer"},
            "_sdc_extra": {"type": "array", "items": {"type": "string"}},
        },
        {
            "_sdc_source_bucket": "bucket",
            "_sdc_source_file": "exports/people.csv",
            "_sdc_source_lineno": 2,
            "_sdc_extra": ["surplus"],
        },
        {
            "_sdc_source_bucket": "bucket",
            "_sdc_source_file": "exports/people.csv",
            "_sdc_source_lineno": 2,
        },
    ),
    # tap-postgres, tap-mysql, tap-mssql in log-based replication: the row's deletion time.
    "database taps": (
        {"_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}},
        {"_sdc_deleted_at": MODIFIED},
        {"_sdc_deleted_at": MODIFIED},
    ),
}


def batch_body(properties: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}} | properties,
    }
    return {
        "table_name": "people",
        "schema": schema,
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1, "name": "Ann"} | data}],
    }


@pytest.mark.parametrize("family", FAMILIES)
async def test_tap_metadata_fields_load_as_columns_on_batch(
    api: Api, settings: Any, family: str
) -> None:
    properties, data, row = FAMILIES[family]

    reply = await api.batch(batch_body(properties, data))

    assert reply.status == 201, reply
    assert rejected_rows(settings) == []
    assert db_rows(settings, "people") == [{"id": 1, "name": "Ann"} | row]


@pytest.mark.parametrize("family", FAMILIES)
async def test_tap_metadata_fields_load_as_columns_on_push(
    api: Api, settings: Any, family: str
) -> None:
    _, data, row = FAMILIES[family]

    reply = await api.push([record("people", 1, {"id": 1, "name": "Ann"} | data)])

    assert reply.status == 201, reply
    assert rejected_rows(settings) == []
    assert db_rows(settings, "people") == [{"id": 1, "name": "Ann"} | row]


async def test_sdc_extra_array_loads_into_its_subtable(api: Api, settings: Any) -> None:
    properties, data, _ = FAMILIES["tap-s3-csv and siblings"]

    await api.batch(batch_body(properties, data | {"_sdc_extra": ["a", "b"]}))

    extra = db_rows(settings, "people___sdc_extra", system=True)
    assert [(r["_sdc_source_key_id"], r["_sdc_level_0_id"], r["value"]) for r in extra] == [
        (1, 0, "a"),
        (1, 1, "b"),
    ]


async def test_a_newer_record_from_the_tap_replaces_its_metadata_columns(
    api: Api, settings: Any
) -> None:
    properties, data, _ = FAMILIES["singer-sdk file taps"]
    await api.batch(batch_body(properties, data))
    newer = batch_body(properties, data | {"_sdc_line_number": 7})
    newer["messages"][0]["sequence"] = 2

    await api.batch(newer)

    assert [r["_sdc_line_number"] for r in db_rows(settings, "people")] == [7]


@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_a_field_named_as_a_system_column_is_still_rejected(
    api: Api, settings: Any, endpoint: str
) -> None:
    data = {"id": 1, "name": "Ann", "_sdc_sequence": 99}
    if endpoint == "push":
        reply = await api.push([record("people", 1, data)])
    else:
        body = batch_body({"_sdc_sequence": {"type": "integer"}}, {})
        body["messages"][0]["data"] = data
        reply = await api.batch(body)

    assert reply.status == 201  # accepted, as Stitch does; the record is logged, not loaded
    assert db_rows(settings, "people") == []
    (rejected,) = rejected_rows(settings)
    assert rejected["table_name"] == "people"
    assert rejected["reason"] == "Field _sdc_sequence collides with a system column"
    assert rejected["record"]["data"] == data
