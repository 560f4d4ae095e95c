"""/batch columns are typed by the schema, never by the order values arrive in (SPEC §12.3).

Each case sends the same messages in both orders, to two tables, and both must get the same
columns and types. Then the property: any permutation of a batch's messages, loaded through
the store into real SQLite files, gives the same layout (each table's columns and their Stitch
types; columns are made in arrival order, so their order is not compared) and the same rows.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importapi_lite.ingest.codec import JSON, decode_body
from importapi_lite.ingest.validation import parse_batch
from importapi_lite.store.sqlite import SqliteDestination
from importapi_lite.store.sqlite.paths import integration_dir
from importapi_lite.store.sqlite.reading import table_files
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import CLIENT_ID, Api, db_path, db_rows, rejected_rows

HUGE = 123456789012345678901234567890
STAMP = "2026-01-02T03:04:05.000000Z"
DATE_TIME = {"type": ["null", "string"], "format": "date-time"}


def columns(settings: Any, table: str) -> dict[str, str]:
    with sqlite3.connect(db_path(settings, table.split("__")[0])) as db:
        found = db.execute(
            "SELECT column_name, type FROM _sdc_columns WHERE table_name = ? ORDER BY position",
            (table,),
        ).fetchall()
    db.close()
    return {name: type_ for name, type_ in found if not name.startswith(("_sdc", "__sdc"))}


async def both_orders(api: Api, schema: dict[str, Any], values: list[Any]) -> None:
    """``values`` of field ``n`` to table ``fwd`` in order and to ``rev`` reversed."""
    for table, ordered in (("fwd", values), ("rev", values[::-1])):
        messages = [
            {"action": "upsert", "sequence": i, "data": {"id": i, "n": v}}
            for i, v in enumerate(ordered)
        ]
        body = {
            "table_name": table,
            "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "n": schema}},
            "key_names": ["id"],
            "messages": messages,
        }
        reply = await api.batch(body)
        assert reply.status == 201, reply


# (the field's schema, its values, the columns they load into, whichever comes first)
CASES = {
    "integer past 64 bits": (
        {"type": "integer"},
        [HUGE, 5],
        {"id": "integer", "n": "integer", "n__de": "decimal"},
    ),
    "nullable integer past 64 bits": (
        {"type": ["null", "integer"]},
        [None, HUGE, 5],
        {"id": "integer", "n": "integer", "n__de": "decimal"},
    ),
    "number, integer and fraction": (
        {"type": "number"},
        [15, 1.5],
        {"id": "integer", "n": "double"},
    ),
    "date-time text that does not parse": (
        DATE_TIME,
        ["not a date", "2026-01-02T03:04:05Z"],
        {"id": "integer", "n": "timestamp", "n__st": "string"},
    ),
    "type list of integer and string": (
        {"type": ["null", "integer", "string"]},
        ["x", 5],
        {"id": "integer", "n": "integer", "n__st": "string"},
    ),
    "type list of string and integer": (
        {"type": ["string", "integer"]},
        [5, "x"],
        {"id": "integer", "n": "string", "n__it": "integer"},
    ),
    "anyOf date-time or string, as Singer taps declare": (
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": ["null", "string"]}]},
        ["not a date", "2026-01-02T03:04:05Z"],
        {"id": "integer", "n": "timestamp", "n__st": "string"},
    ),
    "anyOf null or integer": (
        {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        [HUGE, 5],
        {"id": "integer", "n": "integer", "n__de": "decimal"},
    ),
}


@pytest.mark.parametrize("case", CASES)
async def test_the_schema_types_the_bare_column_in_either_order(
    api: Api, settings: Any, case: str
) -> None:
    schema, values, expected = CASES[case]

    await both_orders(api, schema, values)

    assert columns(settings, "fwd") == expected
    assert columns(settings, "rev") == expected
    assert rejected_rows(settings) == []


async def test_integers_past_64_bits_go_to_the_decimal_split_and_others_stay_bare(
    api: Api, settings: Any
) -> None:
    await both_orders(api, {"type": "integer"}, [HUGE, 5])

    for table in ("fwd", "rev"):
        rows = {r["n"] or r["n__de"]: r for r in db_rows(settings, table)}
        assert rows[5]["n__de"] is None
        assert rows[str(HUGE)]["n"] is None


async def test_an_object_property_and_array_items_are_typed_by_their_schemas_in_either_order(
    api: Api, settings: Any
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "m": {"type": "integer"},
            "list": {"type": "array", "items": {"type": "integer"}},
        },
    }

    await both_orders(api, schema, [{"m": HUGE, "list": [HUGE]}, {"m": 5, "list": [5]}])

    for table in ("fwd", "rev"):
        assert columns(settings, table) == {
            "id": "integer",
            "n__m": "integer",
            "n__m__de": "decimal",
        }
        assert columns(settings, f"{table}__n__list") == {
            "value": "integer",
            "value__de": "decimal",
        }


async def test_a_key_past_64_bits_under_integer_is_rejected_in_either_order(
    api: Api, settings: Any
) -> None:
    for table, ids in (("fwd", [HUGE, 5]), ("rev", [5, HUGE])):
        body = {
            "table_name": table,
            "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
            "key_names": ["id"],
            "messages": [
                {"action": "upsert", "sequence": n, "data": {"id": i}} for n, i in enumerate(ids)
            ],
        }
        assert (await api.batch(body)).status == 201

    assert db_rows(settings, "fwd") == db_rows(settings, "rev") == [{"id": 5}]
    reasons = {r["reason"] for r in rejected_rows(settings)}
    assert reasons == {"Key column id changed type from integer to decimal"}


async def test_push_still_types_a_column_by_its_first_value(api: Api, settings: Any) -> None:
    """Push has no schema: a column keeps its first-seen type (SPEC §12.2, §12.4)."""
    push = [
        {
            "client_id": CLIENT_ID,
            "table_name": "p",
            "sequence": i,
            "action": "upsert",
            "key_names": ["id"],
            "data": {"id": i, "n": v},
        }
        for i, v in enumerate(["x", 5])
    ]

    await api.push(push)

    assert columns(settings, "p") == {"id": "integer", "n": "string", "n__it": "integer"}


# --- the property: any order, one result -----------------------------------------------------

STAMPS = st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T05:04:05+02:00", STAMP])
FIELDS: dict[str, tuple[dict[str, Any], st.SearchStrategy[Any]]] = {
    "int": ({"type": ["null", "integer"]}, st.none() | st.integers(-5, 5) | st.just(HUGE)),
    "num": (
        {"type": "number"},
        st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    "at": (DATE_TIME, st.none() | STAMPS | st.just("not a date")),
    "text": ({"type": "string"}, st.text(max_size=3)),
    "flag": ({"type": ["null", "boolean"]}, st.none() | st.booleans()),
    "either": ({"type": ["integer", "string"]}, st.integers(-5, 5) | st.text(max_size=2)),
    "singer_at": (
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": ["null", "string"]}]},
        st.none() | STAMPS | st.just("soon"),
    ),
    "obj": (
        {
            "type": ["null", "object"],
            "properties": {"a": {"type": "integer"}, "b": DATE_TIME},
        },
        st.none()
        | st.fixed_dictionaries(
            {}, optional={"a": st.integers(-5, 5) | st.just(HUGE), "b": STAMPS | st.just("x")}
        ),
    ),
    "list": (
        {"type": "array", "items": {"type": ["integer", "string"]}},
        st.lists(st.integers(-5, 5) | st.just(HUGE) | st.text(max_size=2), max_size=3),
    ),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=5, unique=True))
    count = draw(st.integers(1, 8))
    messages = []
    for sequence in range(count):  # distinct sequences: the newest wins in any order
        data = {"id": draw(st.integers(0, 3))}
        for name in names:
            if draw(st.booleans()):
                data[name] = draw(FIELDS[name][1])
        messages.append({"action": "upsert", "sequence": sequence, "data": data})
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}} | {n: FIELDS[n][0] for n in names},
    }
    return schema, messages


def load_in_order(schema: dict[str, Any], messages: list[dict[str, Any]], data_dir: Path) -> None:
    body = {"table_name": "t", "schema": schema, "key_names": ["id"], "messages": messages}
    batch = parse_batch(decode_body(JSON, json.dumps(body).encode()))

    async def load() -> None:
        store = SqliteDestination(data_dir)
        try:
            await store.load(CLIENT_ID, DEFAULT_INTEGRATION, batch, STAMP)
        finally:
            await store.close()

    asyncio.run(load())


LOAD_TIMES = {"_sdc_received_at", "_sdc_batched_at", "_sdc_rejected_at"}


def stored(data_dir: Path) -> dict[str, Any]:
    """Every table's columns (name → Stitch type) and rows (sorted), and the rejections."""
    folder = integration_dir(data_dir, CLIENT_ID, DEFAULT_INTEGRATION)
    found: dict[str, Any] = {}
    for path in [*table_files(folder), folder / "_sdc_rejected.sqlite3"]:
        if not path.exists():
            continue
        with sqlite3.connect(path) as db:
            db.row_factory = sqlite3.Row
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in names:
                if name in ("_sdc_table_meta", "_sdc_columns"):
                    continue
                rows = [
                    json.dumps(
                        {k: v for k, v in dict(r).items() if k not in LOAD_TIMES}, sort_keys=True
                    )
                    for r in db.execute(f'SELECT * FROM "{name}"')
                ]
                found[name] = sorted(rows)
            if "_sdc_columns" in names:
                for table, column, type_ in db.execute(
                    "SELECT table_name, column_name, type FROM _sdc_columns"
                ):
                    found.setdefault(f"columns of {table}", {})[column] = type_
        db.close()
    return found


@pytest.mark.fuzz  # a long property run: real SQLite files for every example
@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(batches(), st.data())
def test_any_order_of_a_batchs_messages_gives_the_same_layout_and_rows(batch, data):
    schema, messages = batch
    shuffled = data.draw(st.permutations(messages))
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        load_in_order(schema, messages, Path(first))
        load_in_order(schema, shuffled, Path(second))

        assert stored(Path(first)) == stored(Path(second))


def test_the_property_compares_what_an_order_would_change():
    """The comparison sees a column typed differently (the bug this file guards against)."""
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "n": {}}}
    messages = [
        {"action": "upsert", "sequence": i, "data": {"id": i, "n": v}}
        for i, v in enumerate(["x", 5])
    ]
    with tempfile.TemporaryDirectory() as first, tempfile.TemporaryDirectory() as second:
        load_in_order(schema, messages, Path(first))
        load_in_order(schema, messages[::-1], Path(second))

        assert stored(Path(first)) != stored(Path(second))
