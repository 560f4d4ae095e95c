"""Pure SQL builders: every statement with a client-supplied name is built here, as text + params.

Every identifier goes through ``quote_identifier``; values always travel as parameters. The
sequence and table-version rules live in these statements, so SQLite decides them inside the
upsert itself, never a read-compare-write in Python (SPEC §10.1, §10.5).
"""

from __future__ import annotations

from collections.abc import Sequence

META_TABLE = "_sdc_table_meta"

SEQUENCE = "_sdc_sequence"
TABLE_VERSION = "_sdc_table_version"
RECEIVED_AT = "_sdc_received_at"
BATCHED_AT = "_sdc_batched_at"
EXTRACTED_AT = "_sdc_extracted_at"
PRIMARY_KEY = "__sdc_primary_key"  # key-less tables only (SPEC §9 C15: two underscores)
SYSTEM_COLUMNS = (SEQUENCE, TABLE_VERSION, RECEIVED_AT, BATCHED_AT, EXTRACTED_AT)
SYSTEM_TYPES = {
    SEQUENCE: "INTEGER",
    TABLE_VERSION: "INTEGER",
    RECEIVED_AT: "TEXT",
    BATCHED_AT: "TEXT",
    EXTRACTED_AT: "TEXT",
    PRIMARY_KEY: "TEXT",
}


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQLite identifier; any text is safe here except NUL (checked before)."""
    return '"' + name.replace('"', '""') + '"'


q = quote_identifier


def create_table_sql(table: str, key_names: Sequence[str], data_columns: Sequence[str]) -> str:
    """DDL for a destination table: keys, then data columns, then the ``_sdc_*`` columns.

    Data columns carry no declared type, so SQLite keeps each value exactly as bound (a declared
    INTEGER would silently turn the string "12" into 12).
    """
    key_set = set(key_names)
    columns = [q(k) for k in key_names] if key_names else [f"{q(PRIMARY_KEY)} TEXT"]
    columns += [q(c) for c in data_columns if c not in key_set]
    columns += [f"{q(c)} {SYSTEM_TYPES[c]}" for c in SYSTEM_COLUMNS]
    primary = ", ".join(q(k) for k in (key_names or [PRIMARY_KEY]))
    return f"CREATE TABLE {q(table)} ({', '.join(columns)}, PRIMARY KEY ({primary}))"


def add_column_sql(table: str, column: str) -> str:
    return f"ALTER TABLE {q(table)} ADD COLUMN {q(column)}"


def upsert_sql(table: str, columns: Sequence[str], key_names: Sequence[str]) -> str:
    """One data point in, parameters ``?1..?N`` in ``columns`` order, ``?N+1`` the table name.

    The ``SELECT … WHERE`` drops a data point whose table version is older than the active one;
    ``ON CONFLICT … WHERE`` keeps the stored row when it has a greater sequence. ``>=`` makes ties
    go to the later data point: later request, or later position in the same request (SPEC §10.1).
    Every non-key column is set, so a newer data point replaces the whole row (SPEC §15 Q5).
    Without keys it is an append (SPEC §10.3). The SELECT needs its WHERE anyway: without one,
    SQLite would parse ``ON`` as a join constraint (see SQLite's UPSERT docs, "parsing ambiguity").
    """
    n = len(columns)
    version = f"?{columns.index(TABLE_VERSION) + 1}"
    sql = (
        f"INSERT INTO {q(table)} AS existing ({', '.join(q(c) for c in columns)}) "
        f"SELECT {', '.join(f'?{i}' for i in range(1, n + 1))} "
        f"WHERE {version} IS NULL OR {version} >= coalesce("
        f"(SELECT active_version FROM {q(META_TABLE)} WHERE table_name = ?{n + 1}), {version})"
    )
    if not key_names:
        return sql
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in key_names)
    return (
        f"{sql} ON CONFLICT ({', '.join(q(k) for k in key_names)}) DO UPDATE SET {updates} "
        f"WHERE excluded.{q(SEQUENCE)} >= existing.{q(SEQUENCE)}"
    )


def activate_version_sql(table: str) -> tuple[str, str]:
    """Delete rows older than version ``?1``, then make ``?1`` active; both no-ops if ``?1`` is
    older than the active version (SPEC §10.5). Parameters: ``(version, table_name)``."""
    newer_or_equal = (
        f"?1 >= coalesce((SELECT active_version FROM {q(META_TABLE)} WHERE table_name = ?2), ?1)"
    )
    delete = (
        f"DELETE FROM {q(table)} WHERE ({q(TABLE_VERSION)} IS NULL OR {q(TABLE_VERSION)} < ?1) "
        f"AND {newer_or_equal}"
    )
    activate = (
        f"UPDATE {q(META_TABLE)} SET active_version = ?1 WHERE table_name = ?2 AND {newer_or_equal}"
    )
    return delete, activate


SET_BOOKMARKS = f"UPDATE {q(META_TABLE)} SET bookmark_names = ? WHERE table_name = ?"
INSERT_META = f"INSERT INTO {q(META_TABLE)} (table_name, key_names, created_at) VALUES (?, ?, ?)"

META_DDL = (
    f"CREATE TABLE IF NOT EXISTS {q(META_TABLE)} ("
    "table_name TEXT PRIMARY KEY, "
    "key_names TEXT NOT NULL, "  # JSON array, in order; [] for append-only tables
    "active_version INTEGER, "
    "bookmark_names TEXT, "  # JSON array, or NULL when never sent
    "created_at TEXT NOT NULL)"
)
