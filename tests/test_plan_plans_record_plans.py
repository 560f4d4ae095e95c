"""``plan/plans.py``: plan_load's record plans (``plan/model.py``) against the general way,
case by generated case.

The first record without arrays of each signature (field names and value types, object by
object, and key_names) is placed the general way and leaves a plan its look-alikes follow.
Every plan must equal what placing each record the general way gives: the same rows, columns
(in order), splits, rejections and counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importapi_lite.models import TableBatch, Upsert
from importapi_lite.plan.model import LoadPlan, RowsStep, cells
from importapi_lite.plan.plans import plan_load
from importapi_lite.plan.shape import parse_timestamp, utc_text
from importapi_lite.store.sqlite.sql import PRIMARY_KEY, RECEIVED_AT, source_key_column

RECEIVED = "2024-01-01T00:00:00.000000Z"
NAMES = ["a", "b", "A", "_x", "a__st", "_sdc_x", "id"]

values = (
    st.none()
    | st.booleans()
    | st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**70])
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.sampled_from(
        [
            "2026-01-01T00:00:00.000000Z",
            "2026-01-01T10:00:00+02:00",
            "0999-01-01T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "not a date",
        ]
    )
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
    | st.datetimes(timezones=st.just(dt.UTC))
)
scalar_schemas = st.sampled_from(
    [
        {"type": "integer"},
        {"type": "number"},
        {"type": ["null", "string"]},
        {"type": "string", "format": "date-time"},
        {"type": "boolean"},
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
        {"type": ["integer", "string"]},
        {},
    ]
)
# Objects flatten into the parent row (``a__b``), so plans follow them too; their names can
# meet a field's (``a__st``), and their schemas type their fields. Arrays become subtable rows,
# typed by their items.
object_schemas = st.builds(
    lambda props: {"type": ["null", "object"], "properties": props},
    st.dictionaries(st.sampled_from(NAMES), scalar_schemas, max_size=3),
)
array_schemas = st.builds(
    lambda items: {"type": ["null", "array"], "items": items}, scalar_schemas | object_schemas
)
field_schemas = scalar_schemas | object_schemas | array_schemas
schemas = st.none() | st.builds(
    lambda props: {"type": "object", "properties": props},
    st.dictionaries(st.sampled_from(NAMES), field_schemas, max_size=4),
)


@st.composite
def batches(draw: Any) -> tuple[TableBatch, dict[str, Any] | None]:
    # Few templates, many records: signatures repeat, so plans are made and followed.
    # A template's field is a scalar (None), an object of scalar fields or of objects (dict,
    # list), or an array of a length (tuple): of scalars, objects, arrays or drawn lengths.
    names = st.lists(st.sampled_from(NAMES), max_size=3, unique=True)
    arrays = st.tuples(st.integers(0, 3), st.none() | names | st.just("arrays") | st.just("any"))
    inner = st.none() | names | arrays
    fields = st.none() | arrays | st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)
    templates = draw(
        st.lists(
            st.dictionaries(st.sampled_from(NAMES), fields, max_size=4), min_size=1, max_size=3
        )
    )
    keyed = draw(st.booleans())
    messages = []

    def fill(template: dict[str, Any]) -> dict[str, Any]:
        return {name: value(sub) for name, sub in template.items()}

    def value(sub: Any) -> Any:
        if sub is None:
            return draw(values)
        if isinstance(sub, list):
            return fill(dict.fromkeys(sub))
        if isinstance(sub, dict):
            return fill(sub)
        length, element = sub
        if element == "any":  # a length of its own: signatures that rarely repeat
            return [draw(values) for _ in range(draw(st.integers(0, 4)))]
        if element == "arrays":  # arrays of arrays always go the general way
            return [[draw(values)] for _ in range(length)]
        return [value(element) for _ in range(length)]

    for sequence in range(draw(st.integers(1, 25))):
        data = fill(draw(st.sampled_from(templates)))
        if keyed:
            data["id"] = draw(st.integers(0, 5))
        extracted = draw(st.none() | st.sampled_from(["2026-01-01T00:00:00Z", "garbage"]))
        messages.append(Upsert(sequence, data, ("id",) if keyed else (), None, extracted))
    schema = draw(schemas)
    return TableBatch("t", messages, schema=schema), schema


def comparable(plan: LoadPlan) -> Any:
    random = {PRIMARY_KEY, source_key_column(PRIMARY_KEY)}  # append-only rows' random ids
    points = [p for step in plan.steps if isinstance(step, RowsStep) for p in step.points]
    rows = [
        [
            {c: v for c, v in point.row.items() if c not in random},
            {
                name: [{c: v for c, v in r.items() if c not in random} for r in child_rows]
                for name, child_rows in point.children.items()
            },
        ]
        for point in points
    ]
    # What a load reads of each row: its cells in the table's column order (None if absent).
    columns = [c for c in plan.table.columns if c not in random] if plan.table else []
    return (
        rows,
        cells(points, columns),
        {n: list(t.columns.items()) for n, t in plan.layout.items()},
        plan.new_tables,
        plan.new_columns,
        [(r.reason, r.record) for r in plan.rejected],
        plan.accepted_upserts,
    )


def same_rows(a: Any, b: Any) -> bool:
    # Values compared with their types: 1 and 1.0 and True differ in a column.
    return repr(a) == repr(b)


@pytest.mark.fuzz  # a long property run
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(batches(), st.booleans())
def test_plans_place_records_exactly_as_the_general_way(case, loaded_before):
    batch, _ = case
    layout: dict[str, Any] = {}
    if loaded_before:  # plans also follow columns that existed before this batch
        layout = plan_load(batch, {}, RECEIVED, RECEIVED, reuse_plans=False).layout

    fast = plan_load(batch, layout, RECEIVED, RECEIVED)
    general = plan_load(batch, layout, RECEIVED, RECEIVED, reuse_plans=False)

    assert same_rows(comparable(fast), comparable(general))


@pytest.mark.fuzz  # a long property run
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(batches())
def test_plans_shared_by_one_record_batches_place_them_as_the_general_way(case):
    """A group commit's pushes: a batch of one record each, planned in a row, each on the
    layout the last one made, arriving at its own time, sharing one dict of record plans."""
    batch, _ = case
    shared: dict[Any, Any] = {}
    fast_layout: dict[str, Any] = {}
    general_layout: dict[str, Any] = {}
    for second, message in enumerate(batch.messages):
        # Pushes in a row often share a sequence (a client's clock): not a time, though.
        one = TableBatch("t", [dataclasses.replace(message, sequence=second // 3)])
        received = f"2024-01-01T00:00:{second:02d}.000000Z"
        fast = plan_load(one, fast_layout, received, RECEIVED, plans=shared)
        general = plan_load(one, general_layout, received, RECEIVED, reuse_plans=False)
        assert same_rows(comparable(fast), comparable(general))
        points = [p for step in fast.steps if isinstance(step, RowsStep) for p in step.points]
        assert all(p.row[RECEIVED_AT] == received for p in points)  # its own, not the last's
        fast_layout, general_layout = fast.layout, general.layout


def test_plans_are_not_shared_by_batches_with_a_schema():
    batch = TableBatch("t", [Upsert(1, {"a": 1}, ())], schema={"type": "object"})
    with pytest.raises(ValueError):
        plan_load(batch, {}, RECEIVED, RECEIVED, plans={})


def test_a_value_its_plan_cannot_convert_is_placed_the_general_way():
    schema = {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}}
    records = [
        {"id": 1, "at": "2026-01-01T00:00:00Z", "n": 5},
        {"id": 2, "at": "not a date", "n": 6},  # same signature: "at" splits to a string
        {"id": 3, "at": "2026-01-02T00:00:00Z", "n": 2**70},  # and "n" goes decimal
    ]
    batch = TableBatch("t", [Upsert(i, r, ("id",)) for i, r in enumerate(records)], schema=schema)

    plan = plan_load(batch, {}, RECEIVED, RECEIVED)

    rows = [p.row for p in plan.steps[0].points]  # type: ignore[union-attr]
    assert rows[0]["at"] == "2026-01-01T00:00:00.000000Z" and rows[0]["n"] == 5
    assert rows[1]["at__st"] == "not a date" and rows[1]["n"] == 6
    assert rows[2]["at"] == "2026-01-02T00:00:00.000000Z" and rows[2]["n__de"] == str(2**70)
    assert "at" not in rows[1] and "n" not in rows[2]


@pytest.mark.parametrize("field", ["o", "list"])
def test_plans_type_an_objects_fields_and_an_arrays_items_by_their_own_schemas(field):
    at = {"type": "string", "format": "date-time"}
    schemas = {"o": {"type": "object", "properties": {"at": at}}, "list": {"items": at}}
    schema = {"type": "object", "properties": {field: schemas[field]}}
    # Text that is no date-time splits to a string column, though it comes first: the schema
    # makes the bare column a timestamp (SPEC §12.3). The second record of the signature
    # would leave a plan, which the third would follow.
    texts = ["soon", "later", "2026-01-02T00:00:00Z", "never"]
    values = [{"at": t} if field == "o" else [t] for t in texts]
    records = [{"id": i, field: value} for i, value in enumerate(values)]
    batch = TableBatch("t", [Upsert(i, r, ("id",)) for i, r in enumerate(records)], schema=schema)

    plan = plan_load(batch, {}, RECEIVED, RECEIVED)

    points = plan.steps[0].points  # type: ignore[union-attr]
    stamp = "2026-01-02T00:00:00.000000Z"
    if field == "o":
        assert [p.row.get("o__at__st") for p in points] == ["soon", "later", None, "never"]
        assert points[2].row["o__at"] == stamp
    else:
        cells = [child for p in points for child in p.children["t__list"]]
        assert [c.get("value__st") for c in cells] == ["soon", "later", None, "never"]
        assert cells[2]["value"] == stamp
    general = plan_load(batch, {}, RECEIVED, RECEIVED, reuse_plans=False)
    assert same_rows(comparable(plan), comparable(general))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    st.datetimes(
        timezones=st.none() | st.just(dt.UTC) | st.timezones(),
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
    )
)
def test_timestamps_are_stored_as_iso_8601_utc_that_parses_back(value):
    utc = (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)

    # Four-digit years, 0999 too (strftime would write "999"), then microseconds and Z.
    assert utc_text(value) == f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")
    assert parse_timestamp(utc_text(value)) == utc_text(value)
