"""``plan/plans.py``: plan_load's rejections (SPEC §13.8) and how values reach the rows."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from decimal import Decimal

import pytest

from importapi_lite.clock import now_text
from importapi_lite.models import ActivateVersion, TableBatch, Upsert
from importapi_lite.plan.model import RowsStep, layout_from_rows, raw_record
from importapi_lite.plan.names import MAX_TABLE_NAME_LENGTH, PARENT_SYSTEM
from importapi_lite.plan.plans import KEY_MISMATCH, MAX_COLUMNS, extracted_at, plan_load
from importapi_lite.plan.shape import utc_text
from importapi_lite.store.sqlite import sql
from importapi_lite.store.sqlite.sql import SQL_TYPES

RECEIVED = "2024-01-01T00:00:00.000000Z"
BATCHED = "2024-01-01T00:00:01.000000Z"


def upsert(data, key_names=("id",), sequence=1, **kwargs):
    return Upsert(sequence=sequence, data=data, key_names=tuple(key_names), **kwargs)


def plan(table, *messages, layout=None):
    return plan_load(TableBatch(table, list(messages)), layout or {}, RECEIVED, BATCHED)


def existing(table, *messages):
    """The layout of a file after ``messages`` loaded into ``table``: what the store reads back."""
    result = plan(table, *messages)
    assert result.rejected == []
    return result.layout


def reasons(load_plan):
    return [r.reason for r in load_plan.rejected]


def only_row(load_plan):
    (step,) = load_plan.steps
    (point,) = step.points
    return point.row


def data_columns(load_plan, table=None):
    return load_plan.layout[table or load_plan.table.name].data_columns


# --- table names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        "_sdc_x",
        "_sdc",
        "__sdc_primary_key",
        "_SDC_x",
        "_Sdc_rejected",
        "_rjm_x",
        "sqlite_master",
        "SQLITE_sequence",
    ],
)
def test_table_with_reserved_prefix_rejects_every_upsert(table):
    messages = [upsert({"id": 1}), upsert({"id": 2}, sequence=2)]

    result = plan(table, *messages)

    assert reasons(result) == [f"Table name {table} uses a reserved prefix"] * 2
    assert [r.record for r in result.rejected] == [raw_record(m) for m in messages]
    assert result.accepted_upserts == 0
    assert result.table is None and result.new_tables == []
    assert not any(isinstance(s, RowsStep) for s in result.steps)


@pytest.mark.parametrize("table", ["sdc_x", "x_sdc", "rjm", "sqlite", "my_sqlite_table", "_sd"])
def test_table_names_that_only_resemble_reserved_prefixes_load(table):
    assert plan(table, upsert({"id": 1})).rejected == []


def test_table_name_of_63_characters_loads_and_64_is_rejected():
    assert MAX_TABLE_NAME_LENGTH == 63
    assert plan("t" * 63, upsert({"id": 1})).rejected == []

    (reason,) = reasons(plan("t" * 64, upsert({"id": 1})))

    assert reason.endswith("is longer than 63 characters")


def test_subtable_name_longer_than_63_rejects_the_data_point():
    table = "t" * 60

    result = plan(table, upsert({"id": 1, "items": [1]}), upsert({"id": 2}, sequence=2))

    assert reasons(result) == [f"Table name {table}__items is longer than 63 characters"]
    assert list(result.layout) == [table]


def test_table_name_with_nul_is_rejected():
    assert reasons(plan("us\x00ers", upsert({"id": 1}))) == ["Table name contains a NUL character"]


# --- field names -----------------------------------------------------------------------------


# Fields the taps people run send (SPEC §13.8): Singer SDK file taps, tap-s3-csv and its
# siblings, the database taps' log-based replication.
TAP_METADATA_FIELDS = [
    "_sdc_path",
    "_sdc_line_number",
    "_sdc_modified_at",
    "_sdc_source_bucket",
    "_sdc_source_file",
    "_sdc_source_lineno",
    "_sdc_extra",
    "_sdc_deleted_at",
]


@pytest.mark.parametrize("field", [*TAP_METADATA_FIELDS, "_sdc", "_SDC_x", "sqlite_x"])
def test_sdc_fields_of_taps_load_as_data_columns(field):
    result = plan("t", upsert({"id": 1, field: "v"}))

    assert result.rejected == []
    assert result.table.data_columns == ["id", field]
    assert only_row(result)[field] == "v"


@pytest.mark.parametrize(
    "field",
    [
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_received_at",
        "_sdc_batched_at",
        "_sdc_extracted_at",
        "__sdc_primary_key",
        "_SDC_Sequence",  # SQLite would see the same column
    ],
)
def test_field_named_as_a_system_column_rejects_the_record(field):
    result = plan("t", upsert({"id": 1, field: 7}), upsert({"id": 2}, sequence=2))

    assert reasons(result) == [f"Field {field} collides with a system column"]
    assert result.rejected[0].record["data"] == {"id": 1, field: 7}
    assert result.accepted_upserts == 1
    assert field not in result.table.data_columns


@pytest.mark.parametrize("field", ["_sdc_source_key_id", "_sdc_level_0_id", "_SDC_LEVEL_12_ID"])
def test_subtable_field_named_as_a_link_column_rejects_the_record(field):
    result = plan("t", upsert({"id": 1, "items": [{field: 5}]}), upsert({"id": 2}, sequence=2))

    assert reasons(result) == [f"Field {field} collides with a system column"]
    assert result.accepted_upserts == 1


@pytest.mark.parametrize("field", ["_sdc_source_key_id", "_sdc_level_0_id"])
def test_top_level_field_named_like_a_link_column_loads(field):
    """Link columns exist only in subtables: at the top a field so named collides with none."""
    result = plan("t", upsert({"id": 1, field: 5, "items": [1]}))

    assert result.rejected == []
    assert only_row(result)[field] == 5


def test_sdc_metadata_fields_of_subtable_elements_load():
    result = plan("t", upsert({"id": 1, "items": [{"_sdc_extra": "x", "_sdc_path": "/a"}]}))

    assert result.rejected == []
    assert data_columns(result, "t__items")[-2:] == ["_sdc_extra", "_sdc_path"]


def test_null_field_named_as_a_system_column_still_rejects_the_record():
    assert reasons(plan("t", upsert({"id": 1, "_sdc_batched_at": None}))) == [
        "Field _sdc_batched_at collides with a system column"
    ]


def test_field_with_reserved_rjm_prefix_rejects_the_record():
    result = plan("t", upsert({"id": 1, "_rjm_y": "v"}))

    assert reasons(result) == ["Field _rjm_y uses a reserved prefix"]


def test_field_with_nul_rejects_the_record():
    result = plan("t", upsert({"id": 1, "a\x00b": 1}))

    assert reasons(result) == ["Field name contains a NUL character"]
    assert result.table is None


def test_fields_differing_only_in_case_within_a_record_collide():
    result = plan("t", upsert({"id": 1, "ID": 2}))

    assert reasons(result) == ["Field collision on ID"]


def test_field_colliding_with_an_existing_column_by_case_is_rejected():
    layout = existing("t", upsert({"id": 1, "name": "a"}))

    result = plan("t", upsert({"id": 2, "Name": "x"}), layout=layout)

    assert reasons(result) == ["Field collision on Name"]
    assert result.new_columns == []


def test_field_colliding_with_a_column_added_earlier_in_the_batch_is_rejected():
    result = plan("t", upsert({"id": 1, "name": "a"}), upsert({"id": 2, "NAME": "b"}, sequence=2))

    assert reasons(result) == ["Field collision on NAME"]
    assert data_columns(result) == ["id", "name"]


def test_literal_double_underscore_field_collides_with_a_flattened_object():
    # SPEC §13.8: a literal ``a__b`` next to the flattened ``a.b``.
    result = plan("t", upsert({"id": 1, "a__b": 1, "a": {"b": 2}}))

    assert reasons(result) == ["Field collision on a__b"]


def test_exact_existing_column_name_is_not_a_collision():
    layout = existing("t", upsert({"id": 1, "Name": "a"}))

    result = plan("t", upsert({"id": 2, "Name": "x"}), layout=layout)

    assert result.rejected == [] and result.new_columns == []


def test_non_ascii_case_variants_are_distinct_columns_as_in_sqlite():
    result = plan("t", upsert({"id": 1, "é": 1, "É": 2, "ß": 3, "SS": 4}))

    assert result.rejected == []
    assert data_columns(result) == ["id", "é", "É", "ß", "SS"]
    # Ground truth: SQLite folds only ASCII letters, so it accepts these as four columns ...
    conn = sqlite3.connect(":memory:")
    conn.execute('CREATE TABLE t ("é", "É", "ß", "SS")')
    # ... and refuses ASCII case variants.
    with pytest.raises(sqlite3.OperationalError, match="duplicate column name"):
        conn.execute('CREATE TABLE u ("id", "ID")')
    conn.close()


# --- keys ------------------------------------------------------------------------------------


def test_key_names_different_from_the_existing_tables_are_rejected():
    layout = existing("t", upsert({"id": 1, "other": 2}))

    result = plan("t", upsert({"id": 1, "other": 2}, key_names=("other",)), layout=layout)

    assert reasons(result) == [KEY_MISMATCH]
    assert KEY_MISMATCH == "Keys for table do not match Primary Keys of incoming data"


def test_key_names_in_a_different_order_are_a_mismatch():
    layout = existing("t", upsert({"a": 1, "b": 2}, key_names=("a", "b")))

    result = plan("t", upsert({"a": 1, "b": 2}, key_names=("b", "a")), layout=layout)

    assert reasons(result) == [KEY_MISMATCH]


def test_first_accepted_key_names_define_a_new_table():
    result = plan(
        "t",
        upsert({"id": 1, "_sdc_sequence": 1}, key_names=("_sdc_sequence",)),  # defines nothing
        upsert({"id": 1}, key_names=("id",), sequence=2),
        upsert({"id": 2, "x": 1}, key_names=("x",), sequence=3),
    )

    assert result.table.key_names == ("id",)
    assert reasons(result) == ["Field _sdc_sequence collides with a system column", KEY_MISMATCH]


def test_key_less_table_rejects_records_with_keys():
    layout = existing("events", upsert({"x": 1}, key_names=()))

    result = plan("events", upsert({"x": 1}, key_names=("x",)), layout=layout)

    assert reasons(result) == [KEY_MISMATCH]


def test_key_column_changing_type_rejects_the_record():
    layout = existing("t", upsert({"id": 1}))

    result = plan("t", upsert({"id": "2"}), layout=layout)

    assert reasons(result) == ["Key column id changed type from integer to string"]


# --- column count ----------------------------------------------------------------------------


def fields(count):
    return {f"c{i}": i for i in range(count)}


def test_record_reaching_exactly_the_column_limit_loads():
    room = MAX_COLUMNS - 1 - len(PARENT_SYSTEM)  # less the key and the system columns

    result = plan("t", upsert({"id": 1} | fields(room)))

    assert result.rejected == []
    assert len(result.table.columns) == MAX_COLUMNS


def test_record_that_would_pass_the_column_limit_is_rejected():
    room = MAX_COLUMNS - 1 - len(PARENT_SYSTEM)

    result = plan("t", upsert({"id": 1} | fields(room + 1)))

    (reason,) = reasons(result)
    assert reason.startswith("Too many columns")
    assert result.table is None


def test_column_limit_counts_columns_of_an_existing_table():
    room = MAX_COLUMNS - 1 - len(PARENT_SYSTEM)
    layout = existing("t", upsert({"id": 1} | fields(room)))

    result = plan("t", upsert({"id": 2, "one_more": 1}), layout=layout)

    (reason,) = reasons(result)
    assert reason.startswith("Too many columns")
    assert result.new_columns == []


def test_a_table_at_the_column_limit_can_be_created_in_sqlite():
    room = MAX_COLUMNS - 1 - len(PARENT_SYSTEM)
    info = plan("t", upsert({"id": 1} | fields(room))).table
    columns = {c: SQL_TYPES[t] for c, t in info.columns.items()}

    conn = sqlite3.connect(":memory:")
    conn.execute(sql.create_table_sql("t", columns, info.key_columns, list(PARENT_SYSTEM)))
    conn.execute(sql.add_column_sql("t", "subtable_link_room", "INTEGER"))
    conn.close()


# --- the plan --------------------------------------------------------------------------------


def test_plan_for_a_new_table_lists_data_columns_in_first_seen_order():
    result = plan("t", upsert({"id": 1, "b": 1}), upsert({"id": 2, "a": 1, "b": 2}, sequence=2))

    assert data_columns(result) == ["id", "b", "a"]
    assert result.new_tables == ["t"] and result.new_columns == []
    assert result.accepted_upserts == 2


def test_plan_for_an_existing_table_lists_only_new_columns():
    layout = existing("t", upsert({"id": 1, "a": 1}))

    result = plan("t", upsert({"id": 1, "a": 1, "b": 2}), layout=layout)

    assert result.new_tables == [] and result.new_columns == [("t", "b")]


def test_plan_does_not_change_the_layout_it_was_given():
    layout = existing("t", upsert({"id": 1, "a": 1}))
    before = {name: dict(info.columns) for name, info in layout.items()}

    plan("t", upsert({"id": 1, "b": 2, "list": [1]}), layout=layout)

    assert {name: dict(info.columns) for name, info in layout.items()} == before


def test_plan_layout_survives_a_round_trip_through_metadata_rows():
    layout = existing("t", upsert({"id": 1, "a": 1.5, "items": [{"x": "y"}]}))
    meta = [(i.name, i.parent, list(i.key_names)) for i in layout.values()]
    columns = {i.name: list(i.columns.items()) for i in layout.values()}

    again = layout_from_rows(meta, columns)

    assert {n: (i.parent, i.key_columns, i.key_names, i.columns) for n, i in again.items()} == {
        n: (i.parent, i.key_columns, i.key_names, i.columns) for n, i in layout.items()
    }


def test_plan_rows_carry_system_values_and_data():
    row = only_row(plan("t", upsert({"id": 1}, sequence=7, table_version=3)))

    assert row == {
        "_sdc_sequence": 7,
        "_sdc_table_version": 3,
        "_sdc_received_at": RECEIVED,
        "_sdc_batched_at": BATCHED,
        "_sdc_extracted_at": None,
        "id": 1,
    }


def test_plan_rows_of_a_key_less_table_get_distinct_uuid_primary_keys():
    result = plan("events", upsert({"x": 1}, key_names=()), upsert({"x": 1}, key_names=()))

    ids = [point.row[sql.PRIMARY_KEY] for point in result.steps[0].points]
    assert len(set(ids)) == 2
    assert all(str(uuid.UUID(i)) == i for i in ids)
    assert result.table.key_names == () and result.table.key_columns == (sql.PRIMARY_KEY,)


def test_plan_keeps_activate_version_at_its_position():
    activate = ActivateVersion(sequence=3, table_version=2)

    result = plan("t", upsert({"id": 1}), activate, upsert({"id": 2}, sequence=4))

    assert [type(s) for s in result.steps] == [RowsStep, ActivateVersion, RowsStep]
    assert result.steps[1] == activate
    assert [p.row["id"] for p in result.steps[2].points] == [2]


def test_plan_skips_activate_version_without_a_table_version():
    result = plan("t", upsert({"id": 1}), ActivateVersion(sequence=2, table_version=None))

    assert [type(s) for s in result.steps] == [RowsStep]
    assert result.rejected == []


def test_rejected_records_add_no_columns_or_tables():
    result = plan("t", upsert({"id": 1, "ok": 1}), upsert({"id": 2, "ID": 1, "extra": [1]}))

    assert data_columns(result) == ["id", "ok"]
    assert list(result.layout) == ["t"]


# --- values as stored --------------------------------------------------------------------------


def test_booleans_become_integers():
    row = only_row(plan("t", upsert({"id": 1, "yes": True, "no": False})))

    assert (row["yes"], row["no"]) == (1, 0)
    assert type(row["yes"]) is int and type(row["no"]) is int


@pytest.mark.parametrize("value", [0, -1, 2**63 - 1, -(2**63)])
def test_int64_stays_integer(value):
    row = only_row(plan("t", upsert({"id": 1, "n": value})))

    assert row["n"] == value and type(row["n"]) is int


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2**63, "9223372036854775808"),
        (-(2**63) - 1, "-9223372036854775809"),
        (10**30, "1000000000000000000000000000000"),
    ],
)
def test_integer_beyond_int64_becomes_exact_text(value, text):
    result = plan("t", upsert({"id": 1, "n": value}))

    assert only_row(result)["n"] == text
    assert result.table.columns["n"] == "decimal"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("12.345"), "12.345"),
        (Decimal("1.10"), "1.10"),
        (
            Decimal("-9999999999999999.9999999999999999999999"),
            "-9999999999999999.9999999999999999999999",
        ),
        (Decimal("1E+3"), "1000"),
    ],
)
def test_decimal_becomes_its_exact_text(value, text):
    result = plan("t", upsert({"id": 1, "price": value}))

    assert only_row(result)["price"] == text
    assert result.table.columns["price"] == "decimal"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2026-01-02T03:04:05.000000Z"),
        (
            dt.datetime(2020, 1, 13, 21, 25, 3, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2020-01-13T19:25:03.123456Z",
        ),
        (
            dt.datetime(2020, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2020-01-01T05:30:00.000000Z",
        ),
        (
            dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
            "1969-12-31T23:59:59.999000Z",
        ),
    ],
)
def test_datetime_becomes_utc_text_with_microseconds(value, text):
    result = plan("t", upsert({"id": 1, "at": value}))

    assert only_row(result)["at"] == text
    assert result.table.columns["at"] == "timestamp"


def test_now_text_is_the_time_now_as_utc_text():
    before = utc_text(dt.datetime.now(dt.UTC))
    now = now_text()
    after = utc_text(dt.datetime.now(dt.UTC))

    assert before <= now <= after  # the same fixed-width form sorts as the times do
    assert utc_text(dt.datetime.fromisoformat(now)) == now


@pytest.mark.parametrize(
    "nanoseconds",
    [
        1_767_225_599_999_999_000,  # the last microsecond of 2025: a new second, day and year next
        1_767_225_600_000_000_000,
        1_767_225_600_000_001_999,  # below a microsecond: cut, as datetime does
        951_782_400_123_456_000,  # 29 February 2000
    ],
)
def test_now_text_writes_each_second_and_microsecond(monkeypatch, nanoseconds):
    monkeypatch.setattr("importapi_lite.clock.time.time_ns", lambda: nanoseconds)
    expected = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(
        microseconds=nanoseconds // 1000
    )

    assert now_text() == utc_text(expected)


def test_strings_and_floats_stay_as_they_are():
    row = only_row(plan("t", upsert({"id": 1, "s": "12", "f": 1.5, "e": ""})))

    assert (row["s"], row["f"], row["e"]) == ("12", 1.5, "")


def test_null_adds_no_column():
    result = plan("t", upsert({"id": 1, "nothing": None}))

    assert "nothing" not in result.table.columns
    assert "nothing" not in only_row(result)


def test_object_becomes_flattened_columns():
    result = plan("t", upsert({"id": 1, "address": {"city": "Ooo", "geo": {"lat": 1.5}}}))

    row = only_row(result)
    assert (row["address__city"], row["address__geo__lat"]) == ("Ooo", 1.5)
    assert data_columns(result) == ["id", "address__city", "address__geo__lat"]


def test_an_object_named_empty_keeps_its_empty_prefix():
    # <object>__<property> (SPEC §13.3) with an object named "": its x is __x, not x.
    result = plan("t", upsert({"id": 1, "": {"x": 2, "": {"y": 3}}, "x": 4}))

    assert result.rejected == []
    row = only_row(result)
    assert (row["__x"], row["____y"], row["x"]) == (2, 3, 4)
    assert data_columns(result) == ["id", "__x", "____y", "x"]


def test_array_becomes_subtable_rows_linked_to_the_parent_key():
    result = plan("customers", upsert({"id": 7, "tags": ["hero", "human"]}))

    (point,) = result.steps[0].points
    children = point.children["customers__tags"]
    assert [(c["_sdc_source_key_id"], c["_sdc_level_0_id"], c["value"]) for c in children] == [
        (7, 0, "hero"),
        (7, 1, "human"),
    ]
    assert "tags" not in point.row
    assert result.layout["customers__tags"].parent == "customers"


def test_value_of_another_type_splits_into_a_suffixed_column():
    # SPEC §12.4's cost example.
    result = plan(
        "t",
        upsert({"id": 1, "cost": 3.14}),
        upsert({"id": 2, "cost": 10}, sequence=2),
        upsert({"id": 3, "cost": "n/a"}, sequence=3),
    )

    assert data_columns(result) == ["id", "cost", "cost__it", "cost__st"]
    assert [p.row.get("cost") for p in result.steps[0].points] == [3.14, None, None]
    assert [p.row.get("cost__it") for p in result.steps[0].points] == [None, 10, None]
    assert [p.row.get("cost__st") for p in result.steps[0].points] == [None, None, "n/a"]


# --- time_extracted ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("1970-01-01T03:45:23.000000Z", "1970-01-01T03:45:23.000000Z"),
        ("2020-01-13T21:25:03+02:00", "2020-01-13T19:25:03.000000Z"),
        ("2020-01-13T21:25:03+0000", "2020-01-13T21:25:03.000000Z"),
        (None, None),
    ],
)
def test_extracted_at_normalises_time_extracted(sent, stored):
    assert extracted_at(sent) == stored


@pytest.mark.parametrize("reuse", [False, True], ids=["general", "record plans"])
def test_a_time_extracted_that_is_no_date_time_rejects_its_record(reuse):
    messages = [upsert({"id": i}, time_extracted="1970-01-01T00:00:00Z") for i in range(4)]
    messages.insert(3, upsert({"id": 9}, time_extracted="not a time"))

    result = plan_load(TableBatch("t", messages), {}, RECEIVED, BATCHED, reuse_plans=reuse)

    assert [r.reason for r in result.rejected] == ["time_extracted not a time is not a date-time"]
    assert [p.row["id"] for p in result.steps[0].points] == [0, 1, 2, 3]


def test_plan_rows_carry_time_extracted_as_utc_text():
    row = only_row(plan("t", upsert({"id": 1}, time_extracted="2020-01-13T21:25:03+02:00")))

    assert row["_sdc_extracted_at"] == "2020-01-13T19:25:03.000000Z"


# --- names that differ only in case --------------------------------------------------------------


def test_arrays_whose_names_differ_only_in_case_collide_within_a_record():
    # SQLite table names are case-insensitive like column names: "t__Items" and "t__items" are
    # one table, so the record is rejected whole rather than failing the store's CREATE TABLE.
    result = plan("t", upsert({"id": 1, "Items": [1], "items": [2]}))

    assert list(result.layout) == []
    (reason,) = reasons(result)
    assert reason == "Table name collision on t__items"


def test_array_whose_name_differs_only_in_case_from_an_existing_subtable_collides():
    layout = existing("t", upsert({"id": 1, "items": [1]}))

    result = plan("t", upsert({"id": 1, "ITEMS": [2]}, sequence=2), layout=layout)

    assert result.new_tables == []
    (reason,) = reasons(result)
    assert reason == "Table name collision on t__ITEMS"
