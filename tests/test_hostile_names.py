"""Hostile table and field names, end to end through push and batch (SPEC §8, §13.8).

Whatever the name, the server answers as documented (never a 5xx), writes no file outside its
data directory, never lets a field overwrite a system column, and either loads the name verbatim
(read back from the SQLite file, or from PostgreSQL) or logs the record in ``_sdc_rejected`` with
a reason. A table loaded before the hostile request must come through it untouched.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings
from importapi_lite.store.postgres import without_nul
from importapi_lite.store.sqlite.paths import NameTooLong

from .helpers import (
    BOTH_DESTINATIONS,
    CLIENT_ID,
    Api,
    db_path,
    db_rows,
    pg_query,
    record,
    rejected_rows,
)

HOSTILE = {
    "dot-dot-slash": "../x",
    "deep-traversal": "../../../../../../tmp/evil",
    "dot-dot": "..",
    "dot": ".",
    "absolute": "/etc/passwd",
    "slash": "a/b",
    "backslash": "..\\..\\x",
    "drive": "C:\\Windows\\x",
    "nul": "a\x00b",
    "only-nul": "\x00",
    "double-quote": 'a"b',
    "single-quote": "a'b",
    "backtick": "a`b",
    "sql-drop": '"; DROP TABLE "_sdc_table_meta"; --',
    "sql-delete": "x'); DELETE FROM _sdc_columns; --",
    "sql-comment": "users /*",
    "sqlite-master": "sqlite_master",
    "sqlite-sequence": "sqlite_sequence",
    "sdc-rejected": "_sdc_rejected",
    "sdc-rejected-upper": "_SDC_REJECTED",
    "sdc-table-meta": "_sdc_table_meta",
    "sdc-columns": "_sdc_columns",
    "rjm": "_rjm_x",
    "tokens": "tokens",
    "con": "CON",
    "nul-device": "nul",
    "com1": "com1",
    "lpt9": "LPT9",
    "con-dot-txt": "con.txt",
    "aux-sqlite3": "aux.sqlite3",
    "rtl-override": "\u202eabc.exe",
    "rtl-mark": "\u200fusers",
    "zero-width": "us\u200ders",
    "combining": "e\u0301",
    "precomposed": "\u00e9",
    "emoji": "\U0001f4a9",
    "percent": "%2e%2e%2fx",
    "newline": "a\nb",
    "tab": "a\tb",
    "spaces": " users ",
    "dashes": "-rf",
    "long-1000": "x" * 1000,
    "long-1000-unicode": "\u00e9" * 1000,
    "long-63": "t" * 63,
    "long-64": "t" * 64,
    "double-underscore": "a__b",
    "wal-suffix": "users.sqlite3-wal",
    "placeholder": "a%sb",
    "percent-digit": "a%4b",
    "dollar-placeholder": "$1",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# What the store may write: the token and admin files, and per-table databases with encoded names.
STORED = re.compile(r"(?:[a-z0-9_-]|%[0-9A-F]{2})+\.sqlite3(-wal|-shm|-journal)?")
SEQUENCE = 5


def batch(table: str, data: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "table_name": table,
        "schema": {"type": "object", "properties": properties},
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": SEQUENCE, "data": data}],
    }


async def send(api: Api, endpoint: str, table: str, data: dict[str, Any]) -> Any:
    if endpoint == "push":
        return await api.push([record(table, SEQUENCE, data)])
    properties = {name: {"type": "integer" if name == "id" else "string"} for name in data}
    return await api.batch(batch(table, data, properties))


def assert_contained(tmp_path: Path, settings: Settings) -> None:
    """No file outside the data directory, and none there that the store would not write."""
    data_dir = settings.data_dir.resolve()
    for path in tmp_path.rglob("*"):
        resolved = path.resolve()
        assert resolved == data_dir or data_dir in resolved.parents, path
        if path.is_file() and path.parent != settings.data_dir:
            relative = path.relative_to(settings.data_dir)
            assert relative.parts[:2] == (str(CLIENT_ID), "import_api"), relative
            assert STORED.fullmatch(path.name), path.name
    if not settings.destination.is_postgresql:
        assert (settings.data_dir / "tokens.sqlite3").is_file()


def rejections(settings: Settings, table: str) -> list[dict[str, Any]]:
    if settings.destination.is_postgresql:
        table = without_nul(table)  # as PostgreSQL's text holds it
    found = [r for r in rejected_rows(settings) if r["table_name"] == table]
    assert all(r["reason"] for r in found), found
    return found


def system_columns_intact(row: dict[str, Any]) -> None:
    assert row["_sdc_sequence"] == SEQUENCE, row
    assert TIMESTAMP.fullmatch(row["_sdc_received_at"]), row
    assert TIMESTAMP.fullmatch(row["_sdc_batched_at"]), row
    assert row["_sdc_table_version"] is None, row


async def load_bystander(api: Api, settings: Settings) -> None:
    reply = await api.push([record("bystander", 1, {"id": 1, "v": "safe"})])
    assert reply.status == 201, reply


def bystander_untouched(settings: Settings) -> None:
    assert db_rows(settings, "bystander") == [{"id": 1, "v": "safe"}]
    if settings.destination.is_postgresql:
        schemas = pg_query(settings, "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_'")
        ours = {"public", "information_schema", "import_api", "_importapi"}
        assert {r["nspname"] for r in schemas} == ours
        return
    with sqlite3.connect(db_path(settings, "bystander")) as db:
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"bystander", "_sdc_table_meta", "_sdc_columns"} <= tables


def loaded_rows(settings: Settings, table: str) -> list[dict[str, Any]]:
    """The table's rows with every column, if the store loaded such a table; else []."""
    if settings.destination.is_postgresql:
        if "\x00" in table:
            return []  # no PostgreSQL name holds one
        known = pg_query(
            settings,
            "SELECT 1 FROM _importapi.tables WHERE schema_name = 'import_api' AND table_name = %s",
            (table,),
        )
        return db_rows(settings, table, system=True) if known else []
    try:
        path = db_path(settings, table)
    except NameTooLong:
        return []
    if not path.exists():
        return []
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE name = '_sdc_table_meta'")
        known = (
            tables.fetchone()
            and db.execute(
                "SELECT 1 FROM _sdc_table_meta WHERE table_name = ?", (table,)
            ).fetchone()
        )
    db.close()
    return db_rows(settings, table, system=True) if known else []


def loaded_or_rejected(
    settings: Settings, table: str, data: dict[str, Any], column: str, value: Any
) -> str | None:
    """None if the data point is the table's one row, ``column`` holding ``value`` verbatim
    and the system columns intact, or else logged in ``_sdc_rejected`` with a reason; else what
    is wrong."""
    rows = loaded_rows(settings, table)
    logged = rejections(settings, table)
    if rows:
        if logged:
            return f"both loaded and rejected: {logged}"
        if len(rows) != 1 or rows[0].get(column) != value:
            return f"not read back verbatim: {rows}"
        try:
            system_columns_intact(rows[0])
        except AssertionError as exc:
            return f"system columns overwritten: {exc}"
        return None
    if [r["record"]["data"] for r in logged] != [data]:
        return f"neither loaded nor rejected: {logged}"
    return None


async def check_names(
    api: Api, settings: Settings, tmp_path: Path, cases: list[tuple[str, str, Any]]
) -> None:
    """Send each (label, table, request) in turn; collect every name that went wrong."""
    await load_bystander(api, settings)
    problems: dict[str, str] = {}
    for label, table, (column, value, data, reply_of) in cases:
        reply = await reply_of()
        if reply.status != 201:
            problems[label] = f"answered {reply!r}"
            continue
        problem = loaded_or_rejected(settings, table, data, column, value)
        if problem is not None:
            problems[label] = problem
    assert_contained(tmp_path, settings)
    bystander_untouched(settings)
    assert problems == {}


@BOTH_DESTINATIONS
@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_hostile_table_names_load_verbatim_or_are_rejected(
    api: Api, settings: Settings, tmp_path: Path, endpoint: str
) -> None:
    data = {"id": 1, "v": "x"}
    cases = [
        (label, name, ("v", "x", data, lambda name=name: send(api, endpoint, name, data)))
        for label, name in HOSTILE.items()
    ]
    await check_names(api, settings, tmp_path, cases)


FIELD_NAMES = HOSTILE | {
    "sdc-sequence": "_sdc_sequence",
    "sdc-received-at": "_sdc_received_at",
    "sdc-batched-at-upper": "_SDC_BATCHED_AT",
    "sdc-table-version": "_sdc_table_version",
    "sdc-primary-key": "__sdc_primary_key",
    "sdc-source-key": "_sdc_source_key_id",
    "sdc-level": "_sdc_level_0_id",
    "rowid": "rowid",
    "oid": "oid",
    "empty": "",
    "key-case": "ID",
    "split-suffix": "v__st",
}


@BOTH_DESTINATIONS
@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_hostile_field_names_load_verbatim_or_are_rejected(
    api: Api, settings: Settings, tmp_path: Path, endpoint: str
) -> None:
    cases = []
    for i, (label, name) in enumerate(FIELD_NAMES.items()):
        table, data = f"fields{i}", {"id": 1, name: "hostile"}
        cases.append(
            (
                label,
                table,
                (name, "hostile", data, lambda t=table, d=data: send(api, endpoint, t, d)),
            )
        )
    await check_names(api, settings, tmp_path, cases)


async def send_keyed(api: Api, endpoint: str, table: str, key: str, data: dict[str, Any]) -> Any:
    if endpoint == "push":
        return await api.push([record(table, SEQUENCE, data, key_names=[key])])
    body = batch(table, data, {key: {"type": "integer"}, "v": {"type": "string"}})
    return await api.batch(body | {"key_names": [key]})


@BOTH_DESTINATIONS
@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_hostile_key_names_load_verbatim_or_are_rejected(
    api: Api, settings: Settings, tmp_path: Path, endpoint: str
) -> None:
    cases = []
    for i, (label, name) in enumerate(FIELD_NAMES.items()):
        table, data = f"keys{i}", {name: 7, "v": "x"}
        reply_of = lambda t=table, k=name, d=data: send_keyed(api, endpoint, t, k, d)  # noqa: E731
        cases.append((label, table, (name, 7, data, reply_of)))
    await check_names(api, settings, tmp_path, cases)


@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_tables_differing_only_in_case_stay_apart(
    api: Api, settings: Settings, tmp_path: Path, endpoint: str
) -> None:
    names = ["users", "Users", "USERS", "uSeRs"]
    for i, name in enumerate(names):
        reply = await send(api, endpoint, name, {"id": i, "v": name})
        assert reply.status == 201, reply
    assert_contained(tmp_path, settings)
    for i, name in enumerate(names):
        assert db_rows(settings, name) == [{"id": i, "v": name}], name
    assert len({db_path(settings, n) for n in names}) == len(names)


async def test_push_of_tables_differing_only_in_case_in_one_request(
    api: Api, settings: Settings
) -> None:
    names = ["orders", "Orders", "ORDERS"]
    reply = await api.push([record(n, 1, {"id": 1, "v": n}) for n in names])
    assert reply.status == 201, reply
    for name in names:
        assert db_rows(settings, name) == [{"id": 1, "v": name}]


@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_fields_differing_only_in_case_collide_into_sdc_rejected(
    api: Api, settings: Settings, endpoint: str
) -> None:
    assert (await send(api, endpoint, "users", {"id": 1, "name": "a"})).status == 201
    reply = await send(api, endpoint, "users", {"id": 2, "NAME": "b"})
    assert reply.status == 201, reply
    assert db_rows(settings, "users") == [{"id": 1, "name": "a"}]
    (rejected,) = rejections(settings, "users")
    assert rejected["reason"] == "Field collision on NAME"
    assert rejected["record"]["data"] == {"id": 2, "NAME": "b"}


async def test_fields_differing_only_in_case_in_one_record_are_rejected(
    api: Api, settings: Settings
) -> None:
    reply = await api.push([record("users", 1, {"id": 1, "name": "a", "Name": "b"})])
    assert reply.status == 201, reply
    assert db_rows(settings, "users") == []
    (rejected,) = rejections(settings, "users")
    assert rejected["reason"].startswith("Field collision on ")


async def test_a_flattened_field_colliding_with_a_literal_one_is_rejected(
    api: Api, settings: Settings
) -> None:
    reply = await api.push([record("users", 1, {"id": 1, "a": {"b": 1}, "a__b": 2})])
    assert reply.status == 201, reply
    (rejected,) = rejections(settings, "users")
    assert rejected["reason"] == "Field collision on a__b"


@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_key_name_with_nul_is_rejected_not_a_500(
    api: Api, settings: Settings, endpoint: str
) -> None:
    # A NUL in a key name reaches CREATE TABLE (sqlite3: "the query contains a null character").
    data = {"a\x00b": 1}
    if endpoint == "push":
        reply = await api.push([record("users", 1, data, key_names=["a\x00b"])])
    else:
        body = batch("users", data, {"a\x00b": {"type": "integer"}})
        reply = await api.batch(body | {"key_names": ["a\x00b"]})
    assert reply.status == 201, reply
    (rejected,) = rejections(settings, "users")
    assert rejected["record"]["data"] == data


@pytest.mark.parametrize("endpoint", ["push", "batch"])
async def test_key_names_differing_only_in_case_are_rejected_not_a_500(
    api: Api, settings: Settings, endpoint: str
) -> None:
    # Both reach CREATE TABLE as key columns (sqlite3: "duplicate column name: ID").
    data = {"id": 1, "ID": 2}
    if endpoint == "push":
        reply = await api.push([record("users", 1, data, key_names=["id", "ID"])])
    else:
        body = batch("users", data, {"id": {"type": "integer"}, "ID": {"type": "integer"}})
        reply = await api.batch(body | {"key_names": ["id", "ID"]})
    assert reply.status == 201, reply
    (rejected,) = rejections(settings, "users")
    assert rejected["reason"].startswith("Field collision on ")
