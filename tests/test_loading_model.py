"""The loading model (SPEC §12, §13): flattened objects, subtables, typed and split columns,
table metadata and ``_sdc_rejected``, each read back from the SQLite file."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from .helpers import (
    BOTH_DESTINATIONS,
    TRANSIT,
    Api,
    db_path,
    db_rows,
    pg_query,
    record,
    rejected_rows,
    sqlite_only,
)

pytestmark = BOTH_DESTINATIONS  # one loading model, both destinations

LINKS = ("_sdc_source_key_", "_sdc_level_")


# PostgreSQL's column types, named as the SQLite destination declares the same Stitch types.
AS_SQLITE = {
    "bigint": "INTEGER",
    "double precision": "REAL",
    "numeric": "DECIMAL_TEXT",
    "text": "TEXT",
    "boolean": "BOOLEAN",
    "timestamp without time zone": "TIMESTAMP_TEXT",
}


def columns(settings: Any, table: str, file_table: str | None = None) -> dict[str, str]:
    """A table's columns and declared SQL types, in order (PostgreSQL's named as SQLite's)."""
    if settings.destination.is_postgresql:
        found = pg_query(
            settings,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'import_api' AND table_name = %s ORDER BY ordinal_position",
            (table,),
        )
        return {r["column_name"]: AS_SQLITE[r["data_type"]] for r in found}
    with sqlite3.connect(db_path(settings, file_table or table)) as db:
        found = {r[1]: r[2] for r in db.execute("SELECT * FROM pragma_table_info(?)", (table,))}
    db.close()
    return found


def stitch_types(settings: Any, table: str, file_table: str | None = None) -> dict[str, str]:
    """The column → Stitch type map kept in ``_sdc_columns`` (PostgreSQL: ``_importapi``)."""
    if settings.destination.is_postgresql:
        found = pg_query(
            settings,
            "SELECT column_name, type FROM _importapi.columns WHERE schema_name = 'import_api' "
            "AND table_name = %s ORDER BY position",
            (table,),
        )
        return {r["column_name"]: r["type"] for r in found}
    with sqlite3.connect(db_path(settings, file_table or table)) as db:
        rows = db.execute(
            "SELECT column_name, type FROM _sdc_columns WHERE table_name = ? ORDER BY position",
            (table,),
        ).fetchall()
    db.close()
    return dict(rows)


def links(rows: list[dict[str, Any]], *data: str) -> list[tuple[Any, ...]]:
    """Each subtable row as (link columns…, data columns…)."""
    return [
        tuple(v for k, v in r.items() if k.startswith(LINKS)) + tuple(r[d] for d in data)
        for r in rows
    ]


CUSTOMER = {
    "id": 1,
    "name": "Finn",
    "address": {"city": "Ooo", "geo": {"lat": 1.5}},
    "tags": ["hero", "human"],
    "friends": [{"name": "Jake", "since": 2010}],
}


async def test_the_spec_customer_example_loads_into_three_tables(api: Api, settings: Any) -> None:
    """SPEC §13.5, exactly."""
    assert (await api.push([record("customers", 100, CUSTOMER)])).status == 201
    assert list(columns(settings, "customers")) == [
        "id",
        "name",
        "address__city",
        "address__geo__lat",
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_received_at",
        "_sdc_batched_at",
        "_sdc_extracted_at",
    ]
    assert db_rows(settings, "customers") == [
        {"id": 1, "name": "Finn", "address__city": "Ooo", "address__geo__lat": 1.5}
    ]
    tags = db_rows(settings, "customers__tags", system=True)
    assert links(tags, "value") == [(1, 0, "hero"), (1, 1, "human")]
    assert {(r["_sdc_sequence"], r["_sdc_table_version"]) for r in tags} == {(100, None)}
    assert list(columns(settings, "customers__tags", "customers")) == [
        "_sdc_source_key_id",
        "_sdc_level_0_id",
        "value",
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_received_at",
        "_sdc_batched_at",
    ]
    friends = db_rows(settings, "customers__friends")
    assert friends == [{"name": "Jake", "since": 2010}]
    assert links(db_rows(settings, "customers__friends", system=True), "name") == [(1, 0, "Jake")]


ORDER = {
    "order_id": "1234",
    "customer_id": "100",
    "line_items": [
        {
            "product_id": "5008798",
            "price": "5.99",
            "tax_lines": [{"price": "5.99", "rate": "0.06", "title": "State Tax"}],
        },
        {"product_id": "3445689", "price": "10.99", "tax_lines": []},
    ],
}


async def test_the_spec_orders_example_gives_two_levels_of_subtables(
    api: Api, settings: Any
) -> None:
    """SPEC §13.4: orders → line_items → tax_lines, five rows in all."""
    await api.push([record("orders", 1, ORDER, key_names=["order_id"])])
    assert db_rows(settings, "orders") == [{"order_id": "1234", "customer_id": "100"}]
    items = db_rows(settings, "orders__line_items", system=True)
    assert links(items, "product_id", "price") == [
        ("1234", 0, "5008798", "5.99"),
        ("1234", 1, "3445689", "10.99"),
    ]
    taxes = db_rows(settings, "orders__line_items__tax_lines", system=True)
    assert links(taxes, "price", "rate", "title") == [("1234", 0, 0, "5.99", "0.06", "State Tax")]
    key = ["_sdc_source_key_order_id", "_sdc_level_0_id", "_sdc_level_1_id"]
    assert [
        c for c in columns(settings, "orders__line_items__tax_lines", "orders") if c in key
    ] == key


async def test_a_newer_parent_replaces_all_of_its_subtable_rows(api: Api, settings: Any) -> None:
    await api.push([record("orders", 1, ORDER, key_names=["order_id"])])
    shrunk = ORDER | {"line_items": [{"product_id": "9", "price": "1.00", "tax_lines": []}]}
    await api.push([record("orders", 2, shrunk, key_names=["order_id"])])
    assert db_rows(settings, "orders__line_items") == [{"product_id": "9", "price": "1.00"}]
    assert db_rows(settings, "orders__line_items__tax_lines") == []


async def test_a_stale_parent_changes_no_subtable(api: Api, settings: Any) -> None:
    await api.push([record("customers", 5, CUSTOMER)])
    await api.push([record("customers", 4, CUSTOMER | {"tags": ["old"], "friends": []})])
    assert [r["value"] for r in db_rows(settings, "customers__tags")] == ["hero", "human"]
    assert len(db_rows(settings, "customers__friends")) == 1


async def test_within_a_request_the_winning_data_point_owns_the_subtable_rows(
    api: Api, settings: Any
) -> None:
    await api.push(
        [
            record("c", 7, {"id": 1, "tags": ["a", "b"]}),
            record("c", 7, {"id": 1, "tags": []}),  # a tie: the later one wins, with no tags
            record("c", 9, {"id": 2, "tags": ["new"]}),
            record("c", 8, {"id": 2, "tags": ["stale", "stale"]}),
            record("c", 3, {"id": 3}),
            record("c", 3, {"id": 3, "tags": ["later"]}),
        ]
    )
    assert links(db_rows(settings, "c__tags", system=True), "value") == [
        (2, 0, "new"),
        (3, 0, "later"),
    ]


async def test_arrays_of_arrays_load_into_a_value_subtable(api: Api, settings: Any) -> None:
    await api.push(
        [record("grid", 1, {"id": 1, "cells": [[1, 2], [3]], "empty": [], "none": None})]
    )
    assert links(db_rows(settings, "grid__cells__value", system=True), "value") == [
        (1, 0, 0, 1),
        (1, 0, 1, 2),
        (1, 1, 0, 3),
    ]
    assert db_rows(settings, "grid") == [{"id": 1}]  # empty and null arrays add nothing


async def test_push_splits_a_column_when_a_value_of_another_type_arrives(
    api: Api, settings: Any
) -> None:
    """SPEC §12.4's example."""
    for sequence, cost in enumerate([3.14, 10, "n/a", None, 11]):
        await api.push([record("products", sequence, {"id": sequence, "cost": cost})])
    assert db_rows(settings, "products") == [
        {"id": 0, "cost": 3.14, "cost__it": None, "cost__st": None},
        {"id": 1, "cost": None, "cost__it": 10, "cost__st": None},
        {"id": 2, "cost": None, "cost__it": None, "cost__st": "n/a"},
        {"id": 3, "cost": None, "cost__it": None, "cost__st": None},
        {"id": 4, "cost": None, "cost__it": 11, "cost__st": None},
    ]
    types = stitch_types(settings, "products")
    assert (types["cost"], types["cost__it"], types["cost__st"]) == ("double", "integer", "string")
    assert columns(settings, "products")["cost"] == "REAL"


SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "amount": {"type": ["null", "number"]},
        "at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
        "flag": {"type": ["null", "boolean"]},
        "meta": {"type": "object", "properties": {"score": {"type": "number"}}},
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
    },
}


async def test_batch_types_come_from_the_schema_so_they_never_split(
    api: Api, settings: Any
) -> None:
    messages = [
        {
            "action": "upsert",
            "sequence": 1,
            "data": {
                "id": 1,
                "amount": 15,
                "at": "2020-01-13T21:25:03+0000",
                "flag": True,
                "meta": {"score": 2},
                "items": [{"n": 1}],
            },
        },
        {
            "action": "upsert",
            "sequence": 2,
            "data": {"id": 2, "amount": 15.5, "at": None, "flag": None, "meta": {"score": 2.5}},
        },
        {"action": "upsert", "sequence": 3, "data": {"id": 3, "amount": None, "at": "not a date"}},
    ]
    body = {"table_name": "t", "schema": SCHEMA, "key_names": ["id"], "messages": messages}
    assert (await api.batch(body)).status == 201
    assert db_rows(settings, "t") == [
        {
            "id": 1,
            "amount": 15.0,
            "at": "2020-01-13T21:25:03.000000Z",
            "flag": 1,
            "meta__score": 2.0,
            "at__st": None,
        },
        {"id": 2, "amount": 15.5, "at": None, "flag": None, "meta__score": 2.5, "at__st": None},
        {
            "id": 3,
            "amount": None,
            "at": None,
            "flag": None,
            "meta__score": None,
            "at__st": "not a date",
        },
    ]
    assert stitch_types(settings, "t") == {
        "id": "integer",
        "amount": "double",
        "at": "timestamp",
        "flag": "boolean",
        "meta__score": "double",
        "_sdc_sequence": "integer",
        "_sdc_table_version": "integer",
        "_sdc_received_at": "timestamp",
        "_sdc_batched_at": "timestamp",
        "_sdc_extracted_at": "timestamp",
        "at__st": "string",
    }
    assert db_rows(settings, "t__items") == [{"n": 1}]


async def test_transit_types_load_losslessly(api: Api, settings: Any) -> None:
    body = (
        '[["^ ","client_id",7723,"table_name","tx","sequence",1,"action","upsert",'
        '"key_names",["id"],'
        '"data",["^ ","id","~u550E8400-E29B-41D4-A716-446655440000","at","~m1565880017123",'
        '"t","~t2020-01-01T10:00:00.5+02:00","price","~f1234567890.123456789012345678901",'
        '"big","~n123456789012345678901234567890","i64","~i9223372036854775807","e","~f1E+3",'
        '"inf","~zINF","nan","~zNaN","kw","~:keyword","set",["~#set",["x"]]]]]'
    )
    reply = await api.request("POST", "/v2/import/push", data=body, content_type=TRANSIT)
    assert reply.status == 201, reply
    assert db_rows(settings, "tx") == [
        {
            "id": "550e8400-e29b-41d4-a716-446655440000",
            "at": "2019-08-15T14:40:17.123000Z",
            "t": "2020-01-01T08:00:00.500000Z",
            "price": "1234567890.123456789012345678901",
            "big": "123456789012345678901234567890",
            "i64": 9223372036854775807,
            "e": "1000",
            "inf": float("inf"),
            "kw": "keyword",
        }
    ]
    types = stitch_types(settings, "tx")
    assert [types[c] for c in ("id", "at", "price", "big", "i64", "inf")] == [
        "string",
        "timestamp",
        "decimal",
        "decimal",
        "integer",
        "double",
    ]
    assert columns(settings, "tx")["price"] == "DECIMAL_TEXT"
    assert db_rows(settings, "tx__set") == [{"value": "x"}]


async def test_table_metadata_lists_subtables_keys_and_columns(api: Api, settings: Any) -> None:
    sqlite_only(settings)
    await api.push([record("orders", 1, ORDER, key_names=["order_id"])])
    with sqlite3.connect(db_path(settings, "orders")) as db:
        meta = db.execute(
            "SELECT table_name, parent_table, key_names FROM _sdc_table_meta"
        ).fetchall()
        version = db.execute("PRAGMA user_version").fetchone()[0]
    db.close()
    assert meta == [
        ("orders", None, '["order_id"]'),
        ("orders__line_items", "orders", "[]"),
        ("orders__line_items__tax_lines", "orders", "[]"),
    ]
    assert version == 1


async def test_activating_a_version_drops_old_subtable_rows_too(api: Api, settings: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }

    def body(version: int, ids: list[int]) -> dict[str, Any]:
        messages = [
            {
                "action": "upsert",
                "sequence": version * 10 + i,
                "data": {"id": i, "tags": [f"v{version}"]},
            }
            for i in ids
        ]
        messages.append({"action": "activate_version", "sequence": version * 10 + 9})
        return {
            "table_name": "s",
            "schema": schema,
            "key_names": ["id"],
            "messages": messages,
            "table_version": version,
        }

    await api.batch(body(1, [1, 2]))
    await api.batch(body(2, [2]))
    assert links(db_rows(settings, "s__tags", system=True), "value") == [(2, 0, "v2")]


async def test_key_less_tables_link_subtables_through_the_row_uuid(api: Api, settings: Any) -> None:
    body = {
        "table_name": "events",
        "schema": {},
        "key_names": [],
        "messages": [
            {"action": "upsert", "sequence": 1, "data": {"kind": "a", "tags": ["x", "y"]}}
        ],
    }
    await api.batch(body)
    (event,) = db_rows(settings, "events", system=True)
    tags = db_rows(settings, "events__tags", system=True)
    assert [(t["_sdc_source_key___sdc_primary_key"], t["value"]) for t in tags] == [
        (event["__sdc_primary_key"], "x"),
        (event["__sdc_primary_key"], "y"),
    ]


async def test_field_names_are_kept_verbatim(api: Api, settings: Any) -> None:
    weird = {
        "id": 1,
        "select": 1,
        'quo"te': 2,
        "with space": 3,
        "ümlaut": 4,
        "a.b": 5,
        "x;DROP TABLE t": 6,
    }
    await api.push([record("w", 1, weird)])
    assert db_rows(settings, "w") == [weird]


async def test_each_unloadable_record_is_logged_in_sdc_rejected_and_touches_nothing(
    api: Api, settings: Any
) -> None:
    await api.push([record("r", 1, {"id": 1, "a": {"b": 1}})])
    wide = {"id": 9, **{f"f{i}": i for i in range(2000)}}
    reply = await api.push(
        [
            record("r", 2, {"id": 2, "name": "x", "NAME": "y"}),
            record("r", 3, {"id": 3, "a__b": 2}),  # fine alone: the same column as a.b
            record("r", 4, {"id": 4, "a__b": 2, "a": {"b": 3}}),
            record("r", 5, {"id": "5"}),
            record("r", 6, {"id": 6, "o": 1}, key_names=["id", "o"]),
            record("r", 7, {"id": 7, "items": [{"_sdc_level_0_id": 1}]}),
            record("r", 8, wide),
            record("r", 10, {"id": 10, "n" * 70: [1]}),
        ]
    )
    assert reply.status == 201
    assert [r["id"] for r in db_rows(settings, "r")] == [1, 3]
    assert [(r["record"]["sequence"], r["reason"]) for r in rejected_rows(settings)] == [
        (2, "Field collision on NAME"),
        (4, "Field collision on a__b"),
        (5, "Key column id changed type from integer to string"),
        (6, "Keys for table do not match Primary Keys of incoming data"),
        (7, "Field _sdc_level_0_id collides with a system column"),
        (8, "Too many columns: table r would have 2007"),
        (10, f"Table name r__{'n' * 70} is longer than 63 characters"),
    ]
    assert db_rows(settings, "r__items") == []


REPO = Path(__file__).resolve().parents[1]


async def test_the_readme_example_produces_exactly_the_rows_it_shows(
    api: Api, settings: Any
) -> None:
    sqlite_only(settings)  # the docs show sqlite3 on the file
    example = (REPO / "examples" / "customers.push.json").read_text()
    readme = (REPO / "docs" / "loading-model.md").read_text()
    assert example.strip() in readme
    assert (await api.push(json.loads(example))).status == 201
    queries = re.findall(r"^\$ sqlite3 -header customers\.sqlite3 '(.*)'$", readme, re.MULTILINE)
    assert len(queries) == 3
    with sqlite3.connect(db_path(settings, "customers")) as db:
        for query in queries:
            cursor = db.execute(query)
            lines = ["|".join(d[0] for d in cursor.description)]
            lines += ["|".join("" if v is None else str(v) for v in row) for row in cursor]
            shown = "\n".join(lines)
            assert f"$ sqlite3 -header customers.sqlite3 '{query}'\n{shown}\n" in readme
    db.close()
