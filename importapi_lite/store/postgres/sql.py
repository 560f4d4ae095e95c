"""Pure SQL builders for the PostgreSQL destination: every statement with a client-supplied name.

Identifiers go through ``quote`` (a NUL never gets here: the planner rejects it), literals of
names through ``literal``; values always travel as parameters or through COPY. The sequence and
table-version rules live in these statements, as on SQLite (SPEC §10.1, §10.5): PostgreSQL
decides them in the statement that writes, ``INSERT … ON CONFLICT … DO UPDATE … WHERE
excluded._sdc_sequence >= existing._sdc_sequence``. Our own bookkeeping lives in the schema
``_importapi`` (``OURS``); each integration's tables in a schema named as the integration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...plan.model import ordered_columns
from ...plan.names import SEQUENCE, TABLE_VERSION, source_key_column
from ...plan.shape import BOOLEAN, DECIMAL, DOUBLE, INTEGER, STRING, TIMESTAMP

OURS = "_importapi"
ORDINAL = "_sdc_ord"  # a data point's position in the load, in the load's temp tables
LOAD_TABLE = "_sdc_load"  # temp: a step's parent rows, as COPY sends them
PICK_TABLE = "_sdc_pick"  # temp: each key's winning row of the step
WON_TABLE = "_sdc_won"  # temp: the keys whose row the upsert wrote
REJECTED_TABLE = "_sdc_rejected"

# Stitch's PostgreSQL types (SPEC §13.9): timestamps are stored in UTC, without a time zone.
SQL_TYPES = {
    INTEGER: "bigint",
    DOUBLE: "double precision",
    DECIMAL: "numeric",
    STRING: "text",
    BOOLEAN: "boolean",
    TIMESTAMP: "timestamp",
}
# How a parameter becomes the column's type: through text, which takes every Python value the
# planner makes (0/1 for a boolean, decimal and timestamp text) the way COPY's text form does.
_CASTS = {stitch: f"::text::{sql}" for stitch, sql in SQL_TYPES.items()}

METADATA_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {OURS}",
    # An integration is a schema, and one client owns it (SPEC §13.1).
    f"CREATE TABLE IF NOT EXISTS {OURS}.integrations ("
    "name text PRIMARY KEY, client_id bigint NOT NULL, state text NOT NULL DEFAULT 'active', "
    "created_at text NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {OURS}.tokens ("
    "id text PRIMARY KEY, secret_sha256 text NOT NULL UNIQUE, client_id bigint NOT NULL, "
    f"integration text NOT NULL REFERENCES {OURS}.integrations (name), region text NOT NULL, "
    "created_at text NOT NULL, revoked_at text)",
    f"CREATE TABLE IF NOT EXISTS {OURS}.admin_token ("
    "id int PRIMARY KEY CHECK (id = 1), secret_sha256 text NOT NULL, created_at text NOT NULL)",
    # A counter each change to tokens, integrations or the admin token moves: every server
    # process polls it, and reloads its copy of them when it moved.
    f"CREATE TABLE IF NOT EXISTS {OURS}.changes (id int PRIMARY KEY CHECK (id = 1), "
    "version bigint NOT NULL)",
    f"INSERT INTO {OURS}.changes VALUES (1, 0) ON CONFLICT DO NOTHING",
    # The tables of every integration: a top-level table's row holds its key names, active
    # version and bookmarks, and a layout version that every change of its columns (or of its
    # subtables') moves, so each process knows when its copy of the layout is old.
    f"CREATE TABLE IF NOT EXISTS {OURS}.tables ("
    "schema_name text NOT NULL, table_name text NOT NULL, parent_table text, "
    "key_names text NOT NULL, active_version bigint, bookmark_names text, "
    "created_at text NOT NULL, layout_version bigint NOT NULL DEFAULT 0, "
    "PRIMARY KEY (schema_name, table_name))",
    f"CREATE TABLE IF NOT EXISTS {OURS}.columns ("
    "schema_name text NOT NULL, table_name text NOT NULL, column_name text NOT NULL, "
    "type text NOT NULL, position int NOT NULL, "
    "PRIMARY KEY (schema_name, table_name, column_name))",
)


def quote(name: str) -> str:
    """``name`` as a quoted PostgreSQL identifier, case and all."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a string literal (standard_conforming_strings: backslashes are plain)."""
    return "'" + text.replace("'", "''") + "'"


def table_ref(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def create_table_sql(
    schema: str,
    table: str,
    columns: Mapping[str, str],
    key_columns: Sequence[str],
    system: Sequence[str],
) -> str:
    """DDL for a new table; ``columns`` maps name → Stitch type."""
    ordered = ordered_columns(list(columns), key_columns, system)
    definitions = ", ".join(f"{quote(c)} {SQL_TYPES[columns[c]]}" for c in ordered)
    primary = ", ".join(quote(k) for k in key_columns)
    return f"CREATE TABLE {table_ref(schema, table)} ({definitions}, PRIMARY KEY ({primary}))"


def add_column_sql(schema: str, table: str, column: str, stitch_type: str) -> str:
    return (
        f"ALTER TABLE {table_ref(schema, table)} ADD COLUMN {quote(column)} "
        f"{SQL_TYPES[stitch_type]}"
    )


def _version_ok(version: str, schema: str, top: str) -> str:
    """A data point's table version is none, or not older than the active one."""
    active = (
        f"(SELECT active_version FROM {OURS}.tables WHERE schema_name = {literal(schema)} "
        f"AND table_name = {literal(top)})"
    )
    return f"({version} IS NULL OR {version} >= coalesce({active}, {version}))"


def _on_conflict(columns: Sequence[str], key_names: Sequence[str]) -> str:
    if not key_names:
        return ""  # an append (SPEC §10.3)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in key_names)
    return (
        f" ON CONFLICT ({', '.join(quote(k) for k in key_names)}) DO UPDATE SET {updates} "
        f"WHERE excluded.{quote(SEQUENCE)} >= existing.{quote(SEQUENCE)}"
    )


def upsert_sql(
    schema: str,
    table: str,
    columns: Sequence[str],
    types: Sequence[str],
    key_names: Sequence[str],
) -> str:
    """One data point in: parameters in ``columns`` order (``types`` their Stitch types).

    A data point older than the active table version is dropped; the stored row is kept when
    its sequence is greater; ``>=`` gives ties to the later data point (SPEC §10.1).
    """
    names = ", ".join(quote(c) for c in columns)
    values = ", ".join(f"${n}{_CASTS[t]}" for n, t in enumerate(types, 1))
    version = f"v.{quote(TABLE_VERSION)}"
    return (
        f"INSERT INTO {table_ref(schema, table)} AS existing ({names}) "
        f"SELECT * FROM (VALUES ({values})) AS v ({names}) "
        f"WHERE {_version_ok(version, schema, table)}" + _on_conflict(columns, key_names)
    )


def load_table_sql(schema: str, table: str) -> list[str]:
    """A temp table shaped as ``table``, plus each row's ordinal, for a step's COPY."""
    return [
        f"DROP TABLE IF EXISTS pg_temp.{quote(LOAD_TABLE)}",
        f"CREATE TEMP TABLE {quote(LOAD_TABLE)} ON COMMIT DROP AS "
        f"SELECT *, 0::bigint AS {quote(ORDINAL)} FROM {table_ref(schema, table)} WITH NO DATA",
    ]


def copy_sql(temp: str, columns: Sequence[str]) -> str:
    return f"COPY {quote(temp)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"


def picked_sql(schema: str, table: str, columns: Sequence[str], key_columns: Sequence[str]) -> str:
    """The step's rows that may load (table version), one a key: the greatest sequence, of
    those the latest. The upsert then decides against the stored row, as one data point does.
    (An append-only table's key is a random UUID a row: each row is its own.)"""
    keys = ", ".join(quote(k) for k in key_columns)
    names = ", ".join(quote(c) for c in [*columns, ORDINAL])
    return (
        f"SELECT DISTINCT ON ({keys}) {names} FROM {quote(LOAD_TABLE)} "
        f"WHERE {_version_ok(quote(TABLE_VERSION), schema, table)} "
        f"ORDER BY {keys}, {quote(SEQUENCE)} DESC, {quote(ORDINAL)} DESC"
    )


def pick_table_sql(picked: str) -> list[str]:
    """The picked rows kept for the subtables' replacement, which joins them by ordinal."""
    return [
        f"DROP TABLE IF EXISTS pg_temp.{quote(PICK_TABLE)}",
        f"CREATE TEMP TABLE {quote(PICK_TABLE)} ON COMMIT DROP AS {picked}",
    ]


def upsert_picked_sql(
    schema: str,
    table: str,
    columns: Sequence[str],
    picked: str,
    key_names: Sequence[str],
    won: Sequence[str] = (),
) -> str:
    """The ``picked`` rows (a query, or the pick table) into the table, in their order: an
    upsert on ``key_names``, an append without. With ``won`` (the key columns), the keys of the
    rows it wrote into ``_sdc_won``, whose subtable rows are then replaced."""
    names = ", ".join(quote(c) for c in columns)
    upsert = (
        f"INSERT INTO {table_ref(schema, table)} AS existing ({names}) "
        f"SELECT {names} FROM ({picked}) AS pick ORDER BY {quote(ORDINAL)}"
        + _on_conflict(columns, key_names)
    )
    if not won:
        return upsert
    keys = ", ".join(quote(k) for k in won)
    return (
        f"WITH written AS ({upsert} RETURNING {keys}) "
        f"INSERT INTO {quote(WON_TABLE)} SELECT {keys} FROM written"
    )


def won_table_sql(schema: str, table: str, key_columns: Sequence[str]) -> list[str]:
    keys = ", ".join(quote(k) for k in key_columns)
    return [
        f"DROP TABLE IF EXISTS pg_temp.{quote(WON_TABLE)}",
        f"CREATE TEMP TABLE {quote(WON_TABLE)} ON COMMIT DROP AS "
        f"SELECT {keys} FROM {table_ref(schema, table)} WITH NO DATA",
    ]


def child_table_sql(schema: str, subtable: str, index: int) -> list[str]:
    temp = quote(child_temp(index))
    return [
        f"DROP TABLE IF EXISTS pg_temp.{temp}",
        f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS "
        f"SELECT *, 0::bigint AS {quote(ORDINAL)} FROM {table_ref(schema, subtable)} WITH NO DATA",
    ]


def child_temp(index: int) -> str:
    return f"_sdc_child_{index}"


def replace_children_sql(
    schema: str,
    subtable: str,
    index: int,
    columns: Sequence[str],
    key_columns: Sequence[str],
) -> list[str]:
    """A written parent's subtable rows replaced by its data point's (SPEC §13.4): those of
    every key in ``_sdc_won`` deleted, then the picked data point's rows inserted."""
    links = " AND ".join(
        f"child.{quote(source_key_column(k))} = won.{quote(k)}" for k in key_columns
    )
    picked = " AND ".join(f"pick.{quote(k)} = won.{quote(k)}" for k in key_columns)
    names = ", ".join(quote(c) for c in columns)
    rows = ", ".join(f"rows.{quote(c)}" for c in columns)
    levels = [c for c in columns if c.startswith("_sdc_level_")]
    order = ", ".join(f"rows.{quote(c)}" for c in [ORDINAL, *levels])  # as the elements came
    return [
        f"DELETE FROM {table_ref(schema, subtable)} AS child USING {quote(WON_TABLE)} AS won "
        f"WHERE {links}",
        f"INSERT INTO {table_ref(schema, subtable)} ({names}) SELECT {rows} "
        f"FROM {quote(child_temp(index))} AS rows "
        f"JOIN {quote(PICK_TABLE)} AS pick ON pick.{quote(ORDINAL)} = rows.{quote(ORDINAL)} "
        f"JOIN {quote(WON_TABLE)} AS won ON {picked} ORDER BY {order}",
    ]


def activate_version_sql(schema: str, tables: Sequence[str], top: str) -> list[str]:
    """Delete rows older than version ``$1`` from the subtables and the table, then make it
    active; all no-ops if it is older than the active version (SPEC §10.5). Each statement
    takes the version as its one parameter."""
    active = (
        f"(SELECT active_version FROM {OURS}.tables WHERE schema_name = {literal(schema)} "
        f"AND table_name = {literal(top)})"
    )
    newer = f"$1::bigint >= coalesce({active}, $1::bigint)"
    deletes = [
        f"DELETE FROM {table_ref(schema, t)} WHERE ({quote(TABLE_VERSION)} IS NULL "
        f"OR {quote(TABLE_VERSION)} < $1::bigint) AND {newer}"
        for t in tables
    ]
    activate = (
        f"UPDATE {OURS}.tables SET active_version = $1::bigint "
        f"WHERE schema_name = {literal(schema)} AND table_name = {literal(top)} AND {newer}"
    )
    return [*deletes, activate]


def rejected_ddl(schema: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table_ref(schema, REJECTED_TABLE)} ("
        "_sdc_rejected_at timestamp NOT NULL, table_name text NOT NULL, reason text NOT NULL, "
        "record text NOT NULL)"
    )
