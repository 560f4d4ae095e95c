"""``store/sqlite/sql.py``: pure SQL builders, run here against a real in-memory SQLite database.

The sequence rule (SPEC §10.1) and table-version rule (SPEC §10.5) live in these statements, so
each test loads data points through ``upsert_sql`` and reads the table back.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from importapi_lite.store.sqlite import sql
from importapi_lite.store.sqlite.sql import SQL_TYPES

SYSTEM_TYPES = {
    sql.SEQUENCE: "INTEGER",
    sql.TABLE_VERSION: "INTEGER",
    sql.RECEIVED_AT: "TEXT",
    sql.BATCHED_AT: "TEXT",
    sql.EXTRACTED_AT: "TEXT",
}
SYSTEM = {
    sql.SEQUENCE: None,
    sql.TABLE_VERSION: None,
    sql.RECEIVED_AT: "2024-01-01T00:00:00.000000Z",
    sql.BATCHED_AT: "2024-01-01T00:00:01.000000Z",
    sql.EXTRACTED_AT: None,
}


@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in sql.METADATA_DDL:
        conn.execute(statement)
    yield conn
    conn.close()


def make_table(
    db, table: str, key_names: list[str], data_columns: list[str], parent: str | None = None
) -> None:
    """A table as the store makes it: untyped data columns here, typed system columns."""
    key_columns = key_names or [sql.PRIMARY_KEY]
    columns = {c: "" for c in [*key_columns, *data_columns]} | SYSTEM_TYPES
    db.execute(sql.create_table_sql(table, columns, key_columns, list(SYSTEM_TYPES)))
    created = "2024-01-01T00:00:00.000000Z"
    db.execute(sql.INSERT_META, (table, parent, json.dumps(key_names), created))


def columns_of(db, table: str) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM pragma_table_info(?)", (table,))]


def load(
    db,
    table: str,
    key_names: list[str],
    data: dict[str, Any],
    sequence: int,
    version: int | None = None,
    **system: Any,
) -> int:
    """One data point through ``upsert_sql``; the number of rows it changed."""
    columns = columns_of(db, table)
    row = SYSTEM | {sql.SEQUENCE: sequence, sql.TABLE_VERSION: version} | system | data
    params = [row.get(c) for c in columns] + [table]
    return db.execute(sql.upsert_sql(table, columns, key_names), params).rowcount


def activate(db, tables: list[str], version: int) -> None:
    """``activate_version_sql`` for a top-level table (the last of ``tables``) and subtables."""
    for statement in sql.activate_version_sql(tables, tables[-1]):
        db.execute(statement, (version, tables[-1]))


def rows(db, table: str, *columns: str) -> list[tuple[Any, ...]]:
    names = ", ".join(sql.q(c) for c in columns)
    return db.execute(f"SELECT {names} FROM {sql.q(table)} ORDER BY rowid").fetchall()


def active_version(db, table: str) -> int | None:
    return db.execute(
        f"SELECT active_version FROM {sql.q(sql.META_TABLE)} WHERE table_name = ?", (table,)
    ).fetchone()[0]


# --- quote_identifier ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("users", '"users"'),
        ('a"b', '"a""b"'),
        ('"', '""""'),
        ('""', '""""""'),
        ("it's", '"it\'s"'),
        ("", '""'),
    ],
)
def test_quote_identifier_wraps_in_double_quotes_and_doubles_inner_quotes(name, quoted):
    assert sql.quote_identifier(name) == quoted


INJECTIONS = [
    'x"; DROP TABLE victims; --',
    'x" (a); DROP TABLE victims; CREATE TABLE "y',
    "x'; DROP TABLE victims; --",
    "x]; DROP TABLE victims; --",
    "x`; DROP TABLE victims; --",
    '"',
    '""; DROP TABLE victims; --',
    "select",
    "a b\tc\nd",
    "table.column",
    "😀 \u202e",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_quoted_injection_attempt_creates_exactly_one_table_of_that_name(db, name):
    db.execute("CREATE TABLE victims (id)")

    # executescript runs every statement it finds: a quoting hole would drop ``victims``.
    db.executescript(f"CREATE TABLE {sql.quote_identifier(name)} (id);")

    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {sql.META_TABLE, sql.COLUMNS_TABLE, "victims", name}


def test_quoted_name_of_an_existing_table_collides_instead_of_replacing(db):
    db.execute("CREATE TABLE victims (id)")
    db.execute("INSERT INTO victims VALUES (1)")

    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        db.executescript(f"CREATE TABLE {sql.quote_identifier('victims')} (id);")
    assert db.execute("SELECT id FROM victims").fetchall() == [(1,)]


@pytest.mark.parametrize("column", INJECTIONS)
def test_hostile_column_names_round_trip_through_create_and_upsert(db, column):
    db.execute("CREATE TABLE victims (id)")
    make_table(db, "t", ["id"], ["id", column])

    assert load(db, "t", ["id"], {"id": 1, column: "value"}, sequence=1) == 1

    assert columns_of(db, "t")[:2] == ["id", column]
    assert rows(db, "t", "id", column) == [(1, "value")]
    assert db.execute("SELECT count(*) FROM victims").fetchone() == (0,)


def test_hostile_table_name_round_trips_through_every_builder(db):
    table = 'x"; DROP TABLE victims; --'
    db.execute("CREATE TABLE victims (id)")
    make_table(db, table, ["id"], ["id"])
    db.execute(sql.add_column_sql(table, 'c"; DROP TABLE victims; --', "TEXT"))

    load(db, table, ["id"], {"id": 1, 'c"; DROP TABLE victims; --': "v"}, sequence=1, version=1)
    activate(db, [table], 1)

    assert rows(db, table, "id", 'c"; DROP TABLE victims; --') == [(1, "v")]
    assert active_version(db, table) == 1
    assert db.execute("SELECT count(*) FROM victims").fetchone() == (0,)


# --- create_table_sql / add_column_sql / ordered_columns ---------------------------------------


def test_create_table_puts_keys_then_data_then_system_columns(db):
    system = list(SYSTEM_TYPES)
    columns = {sql.SEQUENCE: "INTEGER", "name": "TEXT", "id": "INTEGER", "age": "INTEGER"}
    columns |= SYSTEM_TYPES

    db.execute(sql.create_table_sql("users", columns, ["id"], system))

    assert columns_of(db, "users") == ["id", "name", "age", *system]
    declared = dict(db.execute("SELECT name, type FROM pragma_table_info('users')").fetchall())
    assert declared["id"] == "INTEGER" and declared["name"] == "TEXT"


def test_ordered_columns_keys_first_then_data_in_order_then_system():
    system = [sql.SEQUENCE, sql.TABLE_VERSION]

    ordered = sql.ordered_columns(["b", sql.TABLE_VERSION, "id", "a", sql.SEQUENCE], ["id"], system)

    assert ordered == ["id", "b", "a", sql.TABLE_VERSION, sql.SEQUENCE]


def test_create_table_with_composite_key_declares_it_primary(db):
    make_table(db, "t", ["a", "b"], ["b", "a", "c"])

    info = db.execute("SELECT name, pk FROM pragma_table_info('t')").fetchall()
    assert [(n, pk) for n, pk in info if pk] == [("a", 1), ("b", 2)]
    assert columns_of(db, "t")[:3] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("stitch_type", "value", "stored"),
    [
        ("integer", 2**63 - 1, "integer"),
        ("double", 15, "real"),  # 15 under "number" loads as 15.0 (SPEC §12.3)
        ("double", 1.5, "real"),
        ("decimal", "1.10", "text"),
        ("decimal", "12345678901234567890123", "text"),
        ("string", "12", "text"),
        ("string", "1e5", "text"),
        ("boolean", 1, "integer"),
        ("timestamp", "2026-01-02T03:04:05.000000Z", "text"),
    ],
)
def test_declared_sql_type_of_each_stitch_type_keeps_the_value_as_bound(
    db, stitch_type, value, stored
):
    # Column affinity could silently turn the text "1.10" into the REAL 1.1; it must not.
    declared = SQL_TYPES[stitch_type]
    columns = {"id": "INTEGER", "v": declared} | SYSTEM_TYPES
    db.execute(sql.create_table_sql("t", columns, ["id"], list(SYSTEM_TYPES)))
    db.execute(sql.INSERT_META, ("t", None, '["id"]', "2024-01-01T00:00:00.000000Z"))

    load(db, "t", ["id"], {"id": 1, "v": value}, sequence=1)

    (kind, back) = db.execute("SELECT typeof(v), v FROM t").fetchone()
    assert kind == stored
    assert back == value and str(back) == str(float(value) if stored == "real" else value)


def test_create_table_without_keys_has_a_primary_key_column(db):
    make_table(db, "events", [], ["x"])

    assert columns_of(db, "events") == [sql.PRIMARY_KEY, "x", *SYSTEM_TYPES]


def test_add_column_appends_at_the_end_with_its_type(db):
    make_table(db, "t", ["id"], ["id"])

    db.execute(sql.add_column_sql("t", "later", "REAL"))

    assert db.execute("SELECT name, type FROM pragma_table_info('t')").fetchall()[-1] == (
        "later",
        "REAL",
    )


# --- upsert_sql: the sequence rule -----------------------------------------------------------


@pytest.mark.parametrize("order", [(1, 2), (2, 1)], ids=["in-order", "out-of-order"])
def test_upsert_greater_sequence_wins_regardless_of_arrival_order(db, order):
    make_table(db, "users", ["id"], ["id", "name"])

    for sequence in order:
        load(db, "users", ["id"], {"id": 1, "name": f"seq{sequence}"}, sequence=sequence)

    assert rows(db, "users", "id", "name", sql.SEQUENCE) == [(1, "seq2", 2)]


def test_upsert_with_equal_sequence_the_later_data_point_wins(db):
    # SPEC §10.1 / §15 Q1: ties go to the later-received data point (>=).
    make_table(db, "users", ["id"], ["id", "name"])

    load(db, "users", ["id"], {"id": 1, "name": "first"}, sequence=5)
    changed = load(db, "users", ["id"], {"id": 1, "name": "second"}, sequence=5)

    assert changed == 1
    assert rows(db, "users", "id", "name") == [(1, "second")]


def test_upsert_with_lower_sequence_changes_nothing(db):
    make_table(db, "users", ["id"], ["id", "name"])
    load(db, "users", ["id"], {"id": 1, "name": "new"}, sequence=10, version=3)
    before = db.execute("SELECT * FROM users").fetchall()

    later = {sql.RECEIVED_AT: "2030-01-01T00:00:00.000000Z"}
    changed = load(db, "users", ["id"], {"id": 1, "name": "old"}, 9, 3, **later)

    assert changed == 0
    assert db.execute("SELECT * FROM users").fetchall() == before


def test_upsert_newer_data_point_replaces_the_whole_row(db):
    # SPEC §10.2 / §15 Q5: absent fields become NULL.
    make_table(db, "users", ["id"], ["id", "name", "email"])
    load(db, "users", ["id"], {"id": 1, "name": "Sam", "email": "s@x"}, sequence=1)

    load(db, "users", ["id"], {"id": 1, "name": "Samantha"}, sequence=2)

    assert rows(db, "users", "id", "name", "email") == [(1, "Samantha", None)]


def test_upsert_keeps_one_row_per_composite_key(db):
    make_table(db, "t", ["a", "b"], ["a", "b", "v"])

    load(db, "t", ["a", "b"], {"a": 1, "b": "x", "v": 1}, sequence=1)
    load(db, "t", ["a", "b"], {"a": 1, "b": "y", "v": 2}, sequence=1)
    load(db, "t", ["a", "b"], {"a": 1, "b": "x", "v": 3}, sequence=2)

    assert sorted(rows(db, "t", "a", "b", "v")) == [(1, "x", 3), (1, "y", 2)]


def test_upsert_sequence_rule_holds_at_the_int64_extremes(db):
    make_table(db, "t", ["id"], ["id", "v"])

    load(db, "t", ["id"], {"id": 1, "v": "max"}, sequence=2**63 - 1)
    load(db, "t", ["id"], {"id": 1, "v": "min"}, sequence=-(2**63))

    assert rows(db, "t", "v", sql.SEQUENCE) == [("max", 2**63 - 1)]


def test_upsert_different_keys_do_not_interact(db):
    make_table(db, "t", ["id"], ["id", "v"])

    load(db, "t", ["id"], {"id": 1, "v": "a"}, sequence=100)
    load(db, "t", ["id"], {"id": 2, "v": "b"}, sequence=1)

    assert rows(db, "t", "id", "v") == [(1, "a"), (2, "b")]


def test_upsert_string_and_integer_keys_are_different_keys(db):
    make_table(db, "t", ["id"], ["id", "v"])

    load(db, "t", ["id"], {"id": 1, "v": "int"}, sequence=2)
    load(db, "t", ["id"], {"id": "1", "v": "str"}, sequence=1)

    assert rows(db, "t", "id", "v") == [(1, "int"), ("1", "str")]


# --- upsert_sql: the table-version rule ------------------------------------------------------


def test_upsert_with_version_older_than_active_is_dropped(db):
    make_table(db, "t", ["id"], ["id", "v"])
    activate(db, ["t"], 5)

    changed = load(db, "t", ["id"], {"id": 1, "v": "old"}, sequence=100, version=4)

    assert changed == 0
    assert rows(db, "t", "id") == []


@pytest.mark.parametrize("version", [5, 6])
def test_upsert_with_version_equal_or_newer_than_active_loads(db, version):
    make_table(db, "t", ["id"], ["id", "v"])
    activate(db, ["t"], 5)

    load(db, "t", ["id"], {"id": 1, "v": "x"}, sequence=1, version=version)

    assert rows(db, "t", "id", sql.TABLE_VERSION) == [(1, version)]


def test_upsert_with_null_version_loads_even_when_a_version_is_active(db):
    make_table(db, "t", ["id"], ["id", "v"])
    activate(db, ["t"], 5)

    load(db, "t", ["id"], {"id": 1, "v": "x"}, sequence=1, version=None)

    assert rows(db, "t", "id", sql.TABLE_VERSION) == [(1, None)]


def test_upsert_with_any_version_loads_before_a_version_is_active(db):
    make_table(db, "t", ["id"], ["id", "v"])

    load(db, "t", ["id"], {"id": 1}, sequence=1, version=-7)

    assert rows(db, "t", "id", sql.TABLE_VERSION) == [(1, -7)]


def test_upsert_version_rule_reads_only_its_own_tables_meta_row(db):
    make_table(db, "a", ["id"], ["id"])
    make_table(db, "b", ["id"], ["id"])
    activate(db, ["a"], 9)

    load(db, "b", ["id"], {"id": 1}, sequence=1, version=1)

    assert rows(db, "b", "id") == [(1,)]


# --- activate_version_sql --------------------------------------------------------------------


def test_activate_version_deletes_older_and_null_version_rows(db):
    make_table(db, "t", ["id"], ["id"])
    for id_, version in [(1, None), (2, 1), (3, 2), (4, 3)]:
        load(db, "t", ["id"], {"id": id_}, sequence=1, version=version)

    activate(db, ["t"], 2)

    assert rows(db, "t", "id", sql.TABLE_VERSION) == [(3, 2), (4, 3)]
    assert active_version(db, "t") == 2


def test_activate_older_version_is_a_no_op(db):
    make_table(db, "t", ["id"], ["id"])
    load(db, "t", ["id"], {"id": 1}, sequence=1, version=3)
    activate(db, ["t"], 3)
    load(db, "t", ["id"], {"id": 2}, sequence=1, version=None)
    before = db.execute("SELECT * FROM t").fetchall()

    activate(db, ["t"], 2)

    assert db.execute("SELECT * FROM t").fetchall() == before
    assert active_version(db, "t") == 3


def test_activate_same_version_again_removes_rows_loaded_without_version(db):
    make_table(db, "t", ["id"], ["id"])
    load(db, "t", ["id"], {"id": 1}, sequence=1, version=2)
    activate(db, ["t"], 2)
    load(db, "t", ["id"], {"id": 2}, sequence=1, version=None)

    activate(db, ["t"], 2)

    assert rows(db, "t", "id") == [(1,)]
    assert active_version(db, "t") == 2


def test_activate_version_does_not_touch_other_tables(db):
    make_table(db, "a", ["id"], ["id"])
    make_table(db, "b", ["id"], ["id"])
    load(db, "b", ["id"], {"id": 1}, sequence=1, version=None)

    activate(db, ["a"], 7)

    assert rows(db, "b", "id") == [(1,)]
    assert active_version(db, "b") is None


def test_worked_sequence_and_version_flow_of_spec_13_6(db):
    make_table(db, "users", ["id"], ["id", "name"])
    load(db, "users", ["id"], {"id": 1, "name": "Sam"}, sequence=10, version=1)
    load(db, "users", ["id"], {"id": 2, "name": "Pat"}, sequence=11, version=1)
    activate(db, ["users"], 1)
    assert rows(db, "users", "id", "name") == [(1, "Sam"), (2, "Pat")]

    load(db, "users", ["id"], {"id": 1, "name": "Samantha"}, sequence=20, version=2)
    activate(db, ["users"], 2)
    assert rows(db, "users", "id", "name") == [(1, "Samantha")]

    load(db, "users", ["id"], {"id": 1, "name": "Old"}, sequence=15)
    assert rows(db, "users", "id", "name", sql.TABLE_VERSION) == [(1, "Samantha", 2)]


# --- key-less tables -------------------------------------------------------------------------


def test_upsert_without_keys_appends_every_data_point(db):
    make_table(db, "events", [], ["x"])

    for sequence, pk in [(2, "uuid-a"), (1, "uuid-b"), (2, "uuid-c")]:
        changed = load(db, "events", [], {"x": sequence, sql.PRIMARY_KEY: pk}, sequence=sequence)
        assert changed == 1

    assert rows(db, "events", sql.PRIMARY_KEY, "x") == [("uuid-a", 2), ("uuid-b", 1), ("uuid-c", 2)]


def test_upsert_without_keys_still_drops_an_older_table_version(db):
    make_table(db, "events", [], ["x"])
    activate(db, ["events"], 3)

    load(db, "events", [], {"x": 1, sql.PRIMARY_KEY: "a"}, sequence=1, version=2)
    load(db, "events", [], {"x": 2, sql.PRIMARY_KEY: "b"}, sequence=1, version=3)

    assert rows(db, "events", "x") == [(2,)]


def test_upsert_without_keys_has_no_conflict_clause():
    statement = sql.upsert_sql("events", [sql.PRIMARY_KEY, "x", *SYSTEM_TYPES], [])

    assert "ON CONFLICT" not in statement


# --- activation across subtables -------------------------------------------------------------


def make_parent_and_child(db) -> None:
    make_table(db, "t", ["id"], ["id"])
    links = [sql.source_key_column("id"), sql.level_column(0)]
    columns = {c: "INTEGER" for c in links} | {"value": ""} | SYSTEM_TYPES
    db.execute(sql.create_table_sql("t__items", columns, links, list(SYSTEM_TYPES)))
    db.execute(sql.INSERT_META, ("t__items", "t", "[]", "2024-01-01T00:00:00.000000Z"))


def add_child(db, parent_id: int, level: int, version: int | None) -> None:
    columns = [sql.source_key_column("id"), sql.level_column(0), "value", sql.TABLE_VERSION]
    db.execute(sql.insert_sql("t__items", columns), (parent_id, level, f"v{version}", version))


def test_activate_version_deletes_older_subtable_rows_too(db):
    make_parent_and_child(db)
    for level, version in enumerate([None, 1, 2, 3]):
        load(db, "t", ["id"], {"id": level}, sequence=1, version=version)
        add_child(db, level, 0, version)

    activate(db, ["t__items", "t"], 2)

    assert rows(db, "t__items", "value") == [("v2",), ("v3",)]
    assert rows(db, "t", "id") == [(2,), (3,)]


def test_activate_older_version_leaves_subtable_rows_alone(db):
    make_parent_and_child(db)
    activate(db, ["t__items", "t"], 3)
    add_child(db, 1, 0, 2)  # a row of an older version that arrived anyway

    activate(db, ["t__items", "t"], 2)

    assert rows(db, "t__items", "value") == [("v2",)]
    assert active_version(db, "t") == 3


def test_source_key_and_level_column_names():
    assert sql.source_key_column("order_id") == "_sdc_source_key_order_id"
    assert sql.level_column(0) == "_sdc_level_0_id"
    assert sql.level_column(1) == "_sdc_level_1_id"


def test_the_children_triggers_find_handed_off_rows_through_indexes() -> None:
    """Without them each trigger firing scans the handoff tables: quadratic in request size."""
    db = sqlite3.connect(":memory:")
    db.execute('CREATE TABLE "t" ("id", "_sdc_sequence", "_sdc_table_version", PRIMARY KEY ("id"))')
    db.execute('CREATE TABLE "t__x" ("_sdc_source_key_id", "_sdc_level_0_id", "value")')
    for statement in sql.handoff_sql(
        "t", ["id"], [("t__x", ["_sdc_source_key_id", "_sdc_level_0_id", "value"])]
    ):
        db.execute(statement)
    lookups = [
        'SELECT min(_sdc_ord) FROM "_sdc_points" WHERE "id" = 1 AND "_sdc_sequence" = 1',
        'SELECT * FROM "_sdc_handoff_0" WHERE _sdc_ord = 1',
    ]
    for lookup in lookups:
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + lookup))
        assert "USING" in plan and "INDEX" in plan, plan
    db.close()
