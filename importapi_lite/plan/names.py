"""The loading model's names: its system columns (SPEC §13.2), the link columns of subtables,
and which table and field names it refuses (SPEC §8, §13.8)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .shape import INTEGER, TIMESTAMP

SEQUENCE = "_sdc_sequence"
TABLE_VERSION = "_sdc_table_version"
RECEIVED_AT = "_sdc_received_at"
BATCHED_AT = "_sdc_batched_at"
EXTRACTED_AT = "_sdc_extracted_at"
PRIMARY_KEY = "__sdc_primary_key"  # key-less tables only (SPEC §9 C15: two underscores)


def source_key_column(key: str) -> str:
    return f"_sdc_source_key_{key}"


def level_column(depth: int) -> str:
    return f"_sdc_level_{depth}_id"


# System columns and their Stitch types: top-level tables, then what subtables copy of them.
PARENT_SYSTEM = {
    SEQUENCE: INTEGER,
    TABLE_VERSION: INTEGER,
    RECEIVED_AT: TIMESTAMP,
    BATCHED_AT: TIMESTAMP,
    EXTRACTED_AT: TIMESTAMP,
}
CHILD_SYSTEM = {c: t for c, t in PARENT_SYSTEM.items() if c != EXTRACTED_AT}

MAX_TABLE_NAME_LENGTH = 63  # PostgreSQL's, the destination modelled (SPEC §8)
# Table names only (SPEC §8): _sdc_rejected and the metadata tables share each file, and
# SQLite keeps sqlite_ for its own tables.
RESERVED_PREFIXES = ("_sdc", "__sdc", "_rjm", "sqlite_")
# Field names: the docs reserve _rjm, and no tap sends it. _sdc_* fields are data columns
# (Stitch's own taps send them, SPEC §13.8) unless named as a system column (below).
RESERVED_FIELD_PREFIX = "_rjm"

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """How SQLite compares identifiers: ASCII letters case-insensitively, nothing else folded."""
    return name.translate(_ASCII_LOWER)


def table_name_problem(name: str) -> str | None:
    """Why a table of this name cannot be loaded, or None."""
    if "\x00" in name:
        return "Table name contains a NUL character"
    if len(name) > MAX_TABLE_NAME_LENGTH:
        return f"Table name {name} is longer than {MAX_TABLE_NAME_LENGTH} characters"
    if fold(name).startswith(RESERVED_PREFIXES):
        return f"Table name {name} uses a reserved prefix"
    return None


def field_name_problem(name: str, in_subtable: bool) -> str | None:
    """Why a field of this name cannot be loaded (in a subtable's row, if ``in_subtable``)."""
    if "\x00" in name:
        return "Field name contains a NUL character"
    folded = fold(name)
    if folded.startswith(RESERVED_FIELD_PREFIX):
        return f"Field {name} uses a reserved prefix"
    # The loading model writes these columns itself; a field named as one would lose its value
    # or overwrite the system's (SPEC §13.8). SQLite compares names with ASCII case folded.
    if folded in _SYSTEM_NAMES or (in_subtable and _SUBTABLE_SYSTEM.fullmatch(folded)):
        return f"Field {name} collides with a system column"
    return None


_SYSTEM_NAMES = frozenset(map(fold, (*PARENT_SYSTEM, PRIMARY_KEY)))


@dataclass(frozen=True)
class Limits:
    """What a destination can hold, beside the loading model's own rules: a destination passes
    its own to the planner, and records past them go to ``_sdc_rejected`` (SPEC §13.8, §13.9).
    The defaults are SQLite's."""

    # Columns per table, system columns included: SQLite's default SQLITE_MAX_COLUMN, less room
    # for the system columns.
    max_columns: int = 2000 - 16
    max_table_name_bytes: int | None = None  # in UTF-8
    max_column_name: int | None = None  # in characters, and in UTF-8 bytes
    empty_column_name: bool = True  # a field named "" (SQLite takes it; PostgreSQL cannot)

    def table_problem(self, name: str) -> str | None:
        """Why a table of this name cannot be loaded here, or None."""
        problem = table_name_problem(name)
        limit = self.max_table_name_bytes
        if problem is None and limit is not None and _utf8_length(name) > limit:
            return f"Table name {name} is longer than {limit} bytes"
        return problem

    def column_problem(self, name: str) -> str | None:
        """Why a column of this name cannot be made here, or None."""
        if not name and not self.empty_column_name:
            return "Column name is empty"
        limit = self.max_column_name
        if limit is not None and max(len(name), _utf8_length(name)) > limit:
            return f"Column name {name} is longer than {limit} characters"
        return None


def _utf8_length(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


_SUBTABLE_SYSTEM = re.compile(r"_sdc_source_key_.*|_sdc_level_[0-9]+_id", re.DOTALL)
