"""Pure SQL builders: every statement with a client-supplied name is built here.

Every identifier goes through ``quote_identifier``; values always travel as parameters. The
sequence and table-version rules live in these statements, so SQLite decides them inside the
upsert itself, never a read-compare-write in Python (SPEC §10.1, §10.5). Subtable rows follow
their parent through triggers that fire only when the parent's upsert changed its row.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence

from ...plan.model import ordered_columns
from ...plan.names import (
    BATCHED_AT,
    EXTRACTED_AT,
    PRIMARY_KEY,
    RECEIVED_AT,
    SEQUENCE,
    TABLE_VERSION,
    level_column,
    source_key_column,
)
from ...plan.shape import BOOLEAN, DECIMAL, DOUBLE, INTEGER, STRING, TIMESTAMP

__all__ = [  # the loading model's names and column order, which every statement here uses
    "BATCHED_AT",
    "EXTRACTED_AT",
    "PRIMARY_KEY",
    "RECEIVED_AT",
    "SEQUENCE",
    "TABLE_VERSION",
    "level_column",
    "ordered_columns",
    "source_key_column",
]

META_TABLE = "_sdc_table_meta"
COLUMNS_TABLE = "_sdc_columns"
HANDOFF_POINTS = "_sdc_points"  # temp: the data points of one load step, in order

ORDINAL = "_sdc_ord"  # handoff and scratch tables: a data point's position in the load
# Scratch files (scratch.py), attached as SCRATCH: rows by position (_sdc_row, from 1), in order.
SCRATCH = "scratch"
SCRATCH_ROW = "_sdc_row"
SCRATCH_PARENT = "parent"
SCRATCH_POINTS = "points"

# The SQLite type declared for each Stitch type. Each keeps the affinity that stores our values
# unchanged: anything containing "TEXT" has TEXT affinity, so decimal and timestamp text is never
# turned into a REAL.
SQL_TYPES = {
    INTEGER: "INTEGER",
    DOUBLE: "REAL",
    DECIMAL: "DECIMAL_TEXT",
    STRING: "TEXT",
    BOOLEAN: "BOOLEAN",
    TIMESTAMP: "TIMESTAMP_TEXT",
}

SCHEMA_VERSION = 1  # PRAGMA user_version of the metadata tables below


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQLite identifier; any text is safe here except NUL (checked before)."""
    return '"' + name.replace('"', '""') + '"'


q = quote_identifier


def handoff_table(index: int) -> str:
    return f"_sdc_handoff_{index}"


METADATA_DDL = (
    f"CREATE TABLE IF NOT EXISTS {q(META_TABLE)} ("
    "table_name TEXT PRIMARY KEY, "
    "parent_table TEXT, "  # NULL for the top-level table, which owns the file
    "key_names TEXT NOT NULL, "  # JSON array, in order; [] for append-only tables
    "active_version INTEGER, "
    "bookmark_names TEXT, "  # JSON array, or NULL when never sent
    "created_at TEXT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {q(COLUMNS_TABLE)} ("
    "table_name TEXT NOT NULL, "
    "column_name TEXT NOT NULL, "
    "type TEXT NOT NULL, "  # Stitch type: integer, double, decimal, string, boolean, timestamp
    "position INTEGER NOT NULL, "
    "PRIMARY KEY (table_name, column_name))",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)
SELECT_META = f"SELECT table_name, parent_table, key_names FROM {q(META_TABLE)} ORDER BY rowid"
SELECT_COLUMNS = f"SELECT table_name, column_name, type FROM {q(COLUMNS_TABLE)} ORDER BY position"
INSERT_META = (
    f"INSERT INTO {q(META_TABLE)} (table_name, parent_table, key_names, created_at) "
    "VALUES (?, ?, ?, ?)"
)
INSERT_COLUMN = (
    f"INSERT INTO {q(COLUMNS_TABLE)} (table_name, column_name, type, position) VALUES (?, ?, ?, "
    f"(SELECT count(*) FROM {q(COLUMNS_TABLE)} WHERE table_name = ?1))"
)
SET_BOOKMARKS = f"UPDATE {q(META_TABLE)} SET bookmark_names = ? WHERE table_name = ?"


def create_table_sql(
    table: str, columns: Mapping[str, str], key_columns: Sequence[str], system: Sequence[str]
) -> str:
    """DDL for a new table; ``columns`` maps name → SQL type."""
    ordered = ordered_columns(list(columns), key_columns, system)
    definitions = ", ".join(f"{q(c)} {columns[c]}" for c in ordered)
    primary = ", ".join(q(k) for k in key_columns)
    return f"CREATE TABLE {q(table)} ({definitions}, PRIMARY KEY ({primary}))"


def add_column_sql(table: str, column: str, sql_type: str) -> str:
    return f"ALTER TABLE {q(table)} ADD COLUMN {q(column)} {sql_type}"


def _newer_or_equal(version: str, table_param: str) -> str:
    return (
        f"{version} >= coalesce((SELECT active_version FROM {q(META_TABLE)} "
        f"WHERE table_name = {table_param}), {version})"
    )


def upsert_sql(table: str, columns: Sequence[str], key_names: Sequence[str]) -> str:
    """One data point in, parameters ``?1..?N`` in ``columns`` order, ``?N+1`` the table name.

    The ``SELECT … WHERE`` drops a data point whose table version is older than the active one;
    ``ON CONFLICT … WHERE`` keeps the stored row when it has a greater sequence. ``>=`` makes ties
    go to the later data point: later request, or later position in the same request (SPEC §10.1).
    Every non-key column is set, so a newer data point replaces the whole row (SPEC §15 Q5).
    Without keys it is an append (SPEC §10.3). The SELECT needs its WHERE anyway: without one,
    SQLite would parse ``ON`` as a join constraint (see SQLite's UPSERT docs, "parsing ambiguity").
    """
    return _upsert_sql(table, tuple(columns), tuple(key_names))


@functools.lru_cache(maxsize=256)  # small pushes would otherwise build it for every request
def _upsert_sql(table: str, columns: tuple[str, ...], key_names: tuple[str, ...]) -> str:
    n = len(columns)
    version = f"?{columns.index(TABLE_VERSION) + 1}"
    sql = (
        f"INSERT INTO {q(table)} AS existing ({', '.join(q(c) for c in columns)}) "
        f"SELECT {', '.join(f'?{i}' for i in range(1, n + 1))} "
        f"WHERE {version} IS NULL OR {_newer_or_equal(version, f'?{n + 1}')}"
    )
    return sql + _newer_sequence_wins(columns, key_names)


def _newer_sequence_wins(columns: Sequence[str], key_names: Sequence[str]) -> str:
    """The upsert's conflict clause: the whole row replaced unless the stored sequence is
    greater; nothing (an append) without keys."""
    if not key_names:
        return ""
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in key_names)
    return (
        f" ON CONFLICT ({', '.join(q(k) for k in key_names)}) DO UPDATE SET {updates} "
        f"WHERE excluded.{q(SEQUENCE)} >= existing.{q(SEQUENCE)}"
    )


def scratch_child(index: int) -> str:
    return f"child_{index}"


def scratch_file_sql(
    columns: Sequence[str], identity: Sequence[str], subtables: Sequence[Sequence[str]]
) -> list[str]:
    """The tables of a scratch file: parent rows, data points, one table per subtable's rows.

    Columns have no declared type, so every value stays exactly as bound until the load gives it
    its column's affinity. ``_sdc_row`` (rowid) numbers the rows; no client column can be named
    so (reserved prefix), as one can be named ``rowid``.
    """
    row = f"{SCRATCH_ROW} INTEGER PRIMARY KEY"
    tables = [(SCRATCH_PARENT, list(columns))]
    if subtables:
        tables.append((SCRATCH_POINTS, [ORDINAL, *identity]))
        tables += [(scratch_child(i), [ORDINAL, *c]) for i, c in enumerate(subtables)]
    return [f"CREATE TABLE {q(name)} ({', '.join([row, *map(q, cols)])})" for name, cols in tables]


def _scratch_range(table: str, columns: Sequence[str], written: Collection[str]) -> str:
    """``columns`` of the scratch rows ``?1 < _sdc_row <= ?2`` of ``table``, in order; NULL for
    those not ``written`` there (columns a concurrent load added after the plan was made)."""
    values = ", ".join(q(c) if c in written else "NULL" for c in columns)
    rows = f"{SCRATCH_ROW} > ?1 AND {SCRATCH_ROW} <= ?2"
    return f"SELECT {values} FROM {SCRATCH}.{q(table)} WHERE {rows}"


def scratch_upsert_sql(
    table: str, columns: Sequence[str], key_names: Sequence[str], written: Collection[str]
) -> str:
    """``upsert_sql`` for the scratch parent rows ``?1 < _sdc_row <= ?2``; ``?3`` the table name.

    The same rules in the same statement: one INSERT … SELECT moves a whole step in, in order.
    """
    version = q(TABLE_VERSION)
    sql = (
        f"INSERT INTO main.{q(table)} AS existing ({', '.join(q(c) for c in columns)}) "
        f"{_scratch_range(SCRATCH_PARENT, columns, written)} "
        f"AND ({version} IS NULL OR {_newer_or_equal(version, '?3')}) ORDER BY {SCRATCH_ROW}"
    )
    return sql + _newer_sequence_wins(columns, key_names)


def copy_scratch_sql(
    scratch_table: str, temp: str, columns: Sequence[str], written: Collection[str]
) -> str:
    """Scratch rows ``?1 < _sdc_row <= ?2`` into a handoff table of the children triggers."""
    names = ", ".join(q(c) for c in columns)
    return f"INSERT INTO temp.{q(temp)} ({names}) {_scratch_range(scratch_table, columns, written)}"


def insert_sql(table: str, columns: Sequence[str]) -> str:
    placeholders = ", ".join("?" for _ in columns)
    return f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) VALUES ({placeholders})"


def activate_version_sql(tables: Sequence[str], top: str) -> list[str]:
    """Delete rows older than version ``?1`` from the subtables and the table, then make ``?1``
    active; all no-ops if ``?1`` is older than the active version (SPEC §10.5). Parameters:
    ``(version, top-level table name)``. The metadata update comes last: the deletes read it."""
    newer = _newer_or_equal("?1", "?2")
    deletes = [
        f"DELETE FROM {q(t)} WHERE ({q(TABLE_VERSION)} IS NULL OR {q(TABLE_VERSION)} < ?1) "
        f"AND {newer}"
        for t in tables
    ]
    activate = f"UPDATE {q(META_TABLE)} SET active_version = ?1 WHERE table_name = ?2 AND {newer}"
    return [*deletes, activate]


def handoff_sql(
    parent: str, identity: Sequence[str], subtables: Sequence[tuple[str, Sequence[str]]]
) -> list[str]:
    """Temp tables and triggers that make each winning parent upsert replace its subtable rows.

    ``_sdc_points`` lists the load's data points in order, by identity (the parent's key columns)
    and ``(sequence, table version)``; ``_sdc_handoff_<i>`` holds their subtable rows. When the
    upsert inserts or updates a parent row (it does not when the sequence or version rule drops
    the data point), the trigger deletes that parent's subtable rows and moves in the rows
    handed off for the first pending data point with the same identity, then marks it done. A
    data point with the same identity and sequence as an earlier one fires after it, so ties go
    to the later one.
    """
    match = " AND ".join(
        [*(f"{q(c)} = NEW.{q(c)}" for c in identity), _same_sequence_and_version()]
    )
    current = f"(SELECT min({ORDINAL}) FROM {q(HANDOFF_POINTS)} WHERE {match})"
    body = []
    for index, (table, columns) in enumerate(subtables):
        links = " AND ".join(f"{q(source_key_column(c))} = NEW.{q(c)}" for c in identity)
        names = ", ".join(q(c) for c in columns)
        body.append(f"DELETE FROM {q(table)} WHERE {links};")
        body.append(
            f"INSERT INTO {q(table)} ({names}) SELECT {names} FROM {q(handoff_table(index))} "
            f"WHERE {ORDINAL} = {current};"
        )
    body.append(f"DELETE FROM {q(HANDOFF_POINTS)} WHERE {ORDINAL} = {current};")
    points_columns = ", ".join(
        [f"{ORDINAL} INTEGER PRIMARY KEY", *map(q, identity), SEQUENCE, TABLE_VERSION]
    )
    identity_index = ", ".join([*map(q, identity), SEQUENCE])
    statements = [
        *drop_handoff_sql(len(subtables)),
        f"CREATE TEMP TABLE {q(HANDOFF_POINTS)} ({points_columns})",
        # Each trigger firing looks its data point and child rows up: without these indexes
        # every lookup scans the handoff tables, and a request's cost grows with its square.
        f"CREATE INDEX temp.{q(HANDOFF_POINTS + '_identity')} "
        f"ON {q(HANDOFF_POINTS)} ({identity_index})",
    ]
    for i, (_, columns) in enumerate(subtables):
        # Columns without types: the subtable's own apply when the trigger moves the rows in.
        # Not CREATE TABLE … AS SELECT, which names a column "true" or "false" "columnN".
        handoff = ", ".join([ORDINAL, *map(q, columns)])
        table = handoff_table(i)
        statements += [
            f"CREATE TEMP TABLE {q(table)} ({handoff})",
            f"CREATE INDEX temp.{q(table + '_ord')} ON {q(table)} ({ORDINAL})",
        ]
    for event in ("INSERT", "UPDATE"):
        statements.append(
            f"CREATE TEMP TRIGGER {q('_sdc_children_' + event.lower())} AFTER {event} "
            f"ON main.{q(parent)} BEGIN {' '.join(body)} END"
        )
    return statements


def _same_sequence_and_version() -> str:
    return f"{q(SEQUENCE)} = NEW.{q(SEQUENCE)} AND {q(TABLE_VERSION)} IS NEW.{q(TABLE_VERSION)}"


def drop_handoff_sql(subtable_count: int) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS temp.{q('_sdc_children_insert')}",
        f"DROP TRIGGER IF EXISTS temp.{q('_sdc_children_update')}",
        f"DROP TABLE IF EXISTS temp.{q(HANDOFF_POINTS)}",
        *(f"DROP TABLE IF EXISTS temp.{q(handoff_table(i))}" for i in range(subtable_count)),
    ]
