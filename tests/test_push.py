"""/v2/import/push and /v2/import/validate end to end: HTTP in, rows read from the SQLite file."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
from typing import Any

from importapi_lite.store.sqlite.paths import table_path

from .helpers import (
    BOTH_DESTINATIONS,
    CLIENT_ID,
    TRANSIT,
    WIRE,
    Api,
    db_path,
    db_rows,
    record,
    rejected_rows,
    sqlite_only,
    stored_tables,
    table_files,
    table_meta,
)

pytestmark = BOTH_DESTINATIONS  # one loading model, both destinations

ACCEPTED = {"status": "OK", "message": "Batch Accepted!"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def test_push_answers_201_and_the_row_is_in_the_documented_file(
    api: Api, settings: Any
) -> None:
    reply = await api.push([record("customers", 1565880017, {"id": 1, "name": "Finn"})])
    assert (reply.status, reply.body) == (201, ACCEPTED)
    assert stored_tables(settings) == ["customers"]
    if not settings.destination.is_postgresql:  # the SQLite destination's documented file
        assert table_files(settings) == ["7723/import_api/customers.sqlite3", "tokens.sqlite3"]
    (row,) = db_rows(settings, "customers", system=True)
    assert row["id"] == 1 and row["name"] == "Finn"
    assert row["_sdc_sequence"] == 1565880017
    assert row["_sdc_table_version"] is None and row["_sdc_extracted_at"] is None
    assert TIMESTAMP.match(row["_sdc_received_at"]) and TIMESTAMP.match(row["_sdc_batched_at"])
    assert row["_sdc_received_at"] <= row["_sdc_batched_at"]
    assert table_meta(settings, "customers")["key_names"] == '["id"]'


async def test_push_with_lower_sequence_keeps_existing_row(api: Api, settings: Any) -> None:
    assert (await api.push([record("users", 2, {"id": 1, "name": "new"})])).status == 201
    assert (await api.push([record("users", 1, {"id": 1, "name": "old"})])).status == 201
    assert db_rows(settings, "users") == [{"id": 1, "name": "new"}]


async def test_push_with_higher_sequence_replaces_the_whole_row(api: Api, settings: Any) -> None:
    await api.push([record("users", 1, {"id": 1, "name": "a", "age": 3})])
    await api.push([record("users", 2, {"id": 1, "name": "b"})])
    assert db_rows(settings, "users") == [{"id": 1, "name": "b", "age": None}]


async def test_equal_sequence_goes_to_the_later_request(api: Api, settings: Any) -> None:
    await api.push([record("users", 7, {"id": 1, "name": "first"})])
    await api.push([record("users", 7, {"id": 1, "name": "second"})])
    assert db_rows(settings, "users") == [{"id": 1, "name": "second"}]


async def test_within_one_request_newest_sequence_wins_and_ties_go_to_the_later_record(
    api: Api, settings: Any
) -> None:
    await api.push(
        [
            record("users", 5, {"id": 1, "name": "five"}),
            record("users", 3, {"id": 1, "name": "three"}),
            record("users", 9, {"id": 2, "name": "nine"}),
            record("users", 9, {"id": 2, "name": "nine again"}),
        ]
    )
    assert db_rows(settings, "users") == [
        {"id": 1, "name": "five"},
        {"id": 2, "name": "nine again"},
    ]


async def test_concurrent_pushes_in_random_order_leave_the_newest_sequence(
    api: Api, settings: Any
) -> None:
    sequences = list(range(1, 41))
    random.Random(5).shuffle(sequences)
    replies = await asyncio.gather(
        *(api.push([record("users", s, {"id": s % 4, "seq": s})]) for s in sequences)
    )
    assert {r.status for r in replies} == {201}
    rows = db_rows(settings, "users", order_by="id")
    assert rows == [{"id": k, "seq": max(s for s in sequences if s % 4 == k)} for k in range(4)]


async def test_new_fields_add_columns_and_missing_fields_load_as_null(
    api: Api, settings: Any
) -> None:
    await api.push([record("users", 1, {"id": 1, "a": 1})])
    await api.push([record("users", 2, {"id": 2, "b": "x"})])
    assert db_rows(settings, "users") == [
        {"id": 1, "a": 1, "b": None},
        {"id": 2, "a": None, "b": "x"},
    ]


async def test_one_push_for_several_tables_writes_one_file_per_table(
    api: Api, settings: Any
) -> None:
    reply = await api.push(
        [record("a", 1, {"id": 1}), record("b", 1, {"id": 1, "v": True}), record("a", 2, {"id": 2})]
    )
    assert reply.status == 201
    assert db_rows(settings, "a") == [{"id": 1}, {"id": 2}]
    assert db_rows(settings, "b") == [{"id": 1, "v": 1}]


async def test_composite_keys_upsert_on_the_whole_tuple(api: Api, settings: Any) -> None:
    keys = ["org", "id"]
    await api.push(
        [
            record("m", 1, {"org": "x", "id": 1, "v": 1}, key_names=keys),
            record("m", 1, {"org": "y", "id": 1, "v": 2}, key_names=keys),
            record("m", 2, {"org": "x", "id": 1, "v": 3}, key_names=keys),
        ]
    )
    assert db_rows(settings, "m") == [{"org": "x", "id": 1, "v": 3}, {"org": "y", "id": 1, "v": 2}]


async def test_stitchclient_transit_capture_loads_typed_values(api: Api, settings: Any) -> None:
    body = (WIRE / "stitchclient-1.0.1-push.transit.json").read_bytes()
    reply = await api.request("POST", "/v2/import/push", data=body, content_type=TRANSIT)
    assert (reply.status, reply.body) == (201, ACCEPTED)
    rows = db_rows(settings, "pc")
    assert [r["id"] for r in rows] == [0, 1, 2]
    assert rows[1] == {
        "id": 1,
        "at": "2026-01-02T03:04:05.000000Z",
        "price": "12.345",
        "big": 1152921504606846977,
        "uid": "00000000-0000-0000-0000-000000000001",
        "ok": 0,
    }
    nested = db_rows(settings, "pc__nested__k", system=True)
    assert [(r["_sdc_source_key_id"], r["_sdc_level_0_id"], r["value"]) for r in nested] == [
        (i, n, n + 1) for i in range(3) for n in range(3)
    ]


async def test_transit_sequence_at_the_maximum_is_accepted(api: Api, settings: Any) -> None:
    body = (
        '[["^ ","client_id",7723,"table_name","t","sequence","~n9223372036854775807",'
        '"action","upsert","key_names",["id"],"data",["^ ","id",1]]]'
    )
    reply = await api.request("POST", "/v2/import/push", data=body, content_type=TRANSIT)
    assert reply.status == 201
    assert db_rows(settings, "t", system=True)[0]["_sdc_sequence"] == 2**63 - 1


async def test_validate_answers_200_and_stores_nothing(api: Api, settings: Any) -> None:
    reply = await api.validate([record("users", 1, {"id": 1})])
    assert (reply.status, reply.body) == (200, {"status": "OK", "message": "Batch is valid!"})
    assert stored_tables(settings) == []


async def test_a_rejected_request_loses_nothing_accepted_before(api: Api, settings: Any) -> None:
    await api.push([record("users", 1, {"id": 1, "name": "kept"})])
    reply = await api.push([record("users", 2, {"id": 1, "name": "new"}), record("users", 3, {})])
    assert reply.status == 422
    assert db_rows(settings, "users") == [{"id": 1, "name": "kept"}]


async def test_table_version_older_than_the_active_one_is_dropped(api: Api, settings: Any) -> None:
    await api.push([record("v", 1, {"id": 1}, table_version=2)])
    await api.push(
        [
            {k: v for k, v in record("v", 2, {}).items() if k not in ("key_names", "data")}
            | {"action": "switch_view", "table_version": 2}
        ]
    )
    await api.push([record("v", 3, {"id": 2}, table_version=1), record("v", 4, {"id": 3})])
    assert table_meta(settings, "v")["active_version"] == 2
    assert db_rows(settings, "v") == [{"id": 1}, {"id": 3}]


async def test_switch_view_drops_rows_of_older_versions(api: Api, settings: Any) -> None:
    await api.push(
        [
            record("sv", 1, {"id": 1}, table_version=1),
            record("sv", 2, {"id": 2}, table_version=2, namespace=None),
            {
                "client_id": CLIENT_ID,
                "table_name": "sv",
                "sequence": 3,
                "action": "switch_view",
                "table_version": 2,
                "namespace": "legacy",
            },
        ]
    )
    assert db_rows(settings, "sv") == [{"id": 2}]


async def test_unloadable_records_are_accepted_and_logged_in_sdc_rejected(
    api: Api, settings: Any
) -> None:
    reply = await api.push(
        [
            record("users", 1, {"id": 1, "name": "ok"}),
            record("users", 2, {"id": 2, "ID": 3}),
            record("users", 3, {"id": 3, "_sdc_sequence": 99}),
            record("users", 4, {"id": 4, "org": "x"}, key_names=["id", "org"]),
            record("x" * 64, 5, {"id": 5}),
        ]
    )
    assert (reply.status, reply.body) == (201, ACCEPTED)
    assert db_rows(settings, "users") == [{"id": 1, "name": "ok"}]
    # Tables load concurrently, so only each table's own rejections keep request order.
    rejected = sorted(rejected_rows(settings), key=lambda r: r["record"]["sequence"])
    assert [(r["table_name"], r["reason"]) for r in rejected] == [
        ("users", "Field collision on ID"),
        ("users", "Field _sdc_sequence collides with a system column"),
        ("users", "Keys for table do not match Primary Keys of incoming data"),
        ("x" * 64, f"Table name {'x' * 64} is longer than 63 characters"),
    ]
    assert rejected[0]["record"]["data"] == {"id": 2, "ID": 3}
    assert all(TIMESTAMP.match(r["_sdc_rejected_at"]) for r in rejected)


async def test_a_field_differing_only_in_case_from_a_column_is_rejected(
    api: Api, settings: Any
) -> None:
    await api.push([record("users", 1, {"id": 1, "Name": "a"})])
    await api.push([record("users", 2, {"id": 2, "name": "b"})])
    assert db_rows(settings, "users") == [{"id": 1, "Name": "a"}]
    assert [r["reason"] for r in rejected_rows(settings)] == ["Field collision on name"]


async def test_hostile_table_names_stay_inside_the_data_dir_and_keep_their_sql_name(
    api: Api, settings: Any
) -> None:
    names = ["../../escape", "a/b", "Robert'); DROP TABLE users;--", 'q"uote', "CON", "نام"]
    reply = await api.push([record(name, 1, {"id": i}) for i, name in enumerate(names)])
    assert reply.status == 201
    for i, name in enumerate(names):
        assert db_rows(settings, name) == [{"id": i}]
    assert stored_tables(settings) == sorted(names)
    if settings.destination.is_postgresql:
        return
    root = settings.data_dir.resolve()
    for name in names:
        path = table_path(settings.data_dir, CLIENT_ID, "import_api", name).resolve()
        assert path.is_relative_to(root / "7723" / "import_api")
    assert len(list((root / "7723" / "import_api").glob("*.sqlite3"))) == len(names)


async def test_the_database_is_in_wal_mode(api: Api, settings: Any) -> None:
    sqlite_only(settings)
    await api.push([record("users", 1, {"id": 1})])
    with sqlite3.connect(db_path(settings, "users")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
