"""Plan a table batch's load: which data points are rejected, which columns to add, the SQL rows.

Pure: no I/O. ``storage.Store`` runs the plan inside one transaction. Rejections follow SPEC §13.8:
the API accepted the request, the record cannot load, so it goes to ``_sdc_rejected`` with a reason.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..models import ActivateVersion, Message, TableBatch, Upsert
from .sql import BATCHED_AT, EXTRACTED_AT, PRIMARY_KEY, RECEIVED_AT, SEQUENCE, TABLE_VERSION

MAX_TABLE_NAME_LENGTH = 63  # PostgreSQL's, the destination modelled (SPEC §8)
MAX_COLUMNS = 2000 - 8  # SQLite's default SQLITE_MAX_COLUMN, less the system columns
RESERVED_PREFIXES = ("_sdc", "__sdc", "_rjm", "sqlite_")  # SPEC §8; sqlite_ is SQLite's own
INT64 = range(-(2**63), 2**63)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """How SQLite compares identifiers: ASCII letters case-insensitively, nothing else folded."""
    return name.translate(_ASCII_LOWER)


def utc_text(value: dt.datetime) -> str:
    """Timestamps as stored: ISO-8601, UTC, microseconds, ``Z`` (SPEC §12.1)."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_text() -> str:
    return utc_text(dt.datetime.now(dt.UTC))


def table_name_problem(name: str) -> str | None:
    """Why a table of this name cannot be loaded, or None."""
    if "\x00" in name:
        return "Table name contains a NUL character"
    if len(name) > MAX_TABLE_NAME_LENGTH:
        return f"Table name is longer than {MAX_TABLE_NAME_LENGTH} characters"
    if fold(name).startswith(RESERVED_PREFIXES):
        return f"Table name {name} uses a reserved prefix"
    return None


def _field_problem(name: str) -> str | None:
    if "\x00" in name:
        return "Field name contains a NUL character"
    if fold(name).startswith(RESERVED_PREFIXES):
        return f"Field {name} uses a reserved prefix"
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return utc_text(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    raise TypeError(f"cannot store {type(value).__name__}")


def sql_value(value: Any) -> Any:
    """A decoded value as SQLite stores it. Objects and arrays stay JSON text for now."""
    if value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value if value in INT64 else str(value)  # SQLite integers are 64-bit
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return utc_text(value)
    return json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def extracted_at(time_extracted: str | None) -> str | None:
    """``time_extracted`` normalised to our timestamp text; kept verbatim if it does not parse."""
    if time_extracted is None:
        return None
    try:
        return utc_text(dt.datetime.fromisoformat(time_extracted))
    except ValueError:
        return time_extracted


@dataclass(frozen=True)
class TableState:
    """What the table already is, as read inside the load's transaction."""

    exists: bool
    key_names: tuple[str, ...] | None = None
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejection:
    reason: str
    record: dict[str, Any]


@dataclass
class RowsStep:
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LoadPlan:
    key_names: tuple[str, ...]
    create_columns: list[str]  # data columns of a table created by this load
    add_columns: list[str]  # data columns added to an existing table
    steps: list[RowsStep | ActivateVersion]
    rejected: list[Rejection]
    accepted_upserts: int


def raw_record(message: Message) -> dict[str, Any]:
    """The data point as the client sent it, for ``_sdc_rejected.record``."""
    if isinstance(message, ActivateVersion):
        return {"action": "activate_version", "sequence": message.sequence}
    record: dict[str, Any] = {
        "action": "upsert",
        "sequence": message.sequence,
        "key_names": list(message.key_names),
        "data": message.data,
    }
    if message.table_version is not None:
        record["table_version"] = message.table_version
    return record


def plan_load(batch: TableBatch, state: TableState, received_at: str, batched_at: str) -> LoadPlan:
    problem = table_name_problem(batch.table_name)
    if problem is not None:
        return LoadPlan(
            (), [], [], [], [Rejection(problem, raw_record(m)) for m in batch.messages], 0
        )

    key_names = state.key_names
    columns = {fold(c): c for c in state.columns}
    new_columns: list[str] = []
    steps: list[RowsStep | ActivateVersion] = []
    rejected: list[Rejection] = []
    accepted = 0
    for message in batch.messages:
        if isinstance(message, ActivateVersion):
            if message.table_version is not None:
                steps.append(message)
            continue
        reason = _upsert_problem(message, key_names, columns, len(state.columns) + len(new_columns))
        if reason is not None:
            rejected.append(Rejection(reason, raw_record(message)))
            continue
        if key_names is None:
            key_names = message.key_names  # the first accepted keys define the table (§10.2)
        for name in message.data:
            if fold(name) not in columns:
                columns[fold(name)] = name
                new_columns.append(name)
        if not steps or not isinstance(steps[-1], RowsStep):
            steps.append(RowsStep())
        step = steps[-1]
        assert isinstance(step, RowsStep)
        step.rows.append(_system_values(message, received_at, batched_at) | message.data)
        accepted += 1

    if state.exists:
        return LoadPlan(key_names or (), [], new_columns, steps, rejected, accepted)
    return LoadPlan(key_names or (), new_columns, [], steps, rejected, accepted)


def _upsert_problem(
    message: Upsert,
    key_names: tuple[str, ...] | None,
    columns: dict[str, str],
    column_count: int,
) -> str | None:
    if key_names is not None and message.key_names != key_names:
        return "Keys for table do not match Primary Keys of incoming data"
    seen: set[str] = set()
    added = 0
    for name in message.data:
        problem = _field_problem(name)
        if problem is not None:
            return problem
        folded = fold(name)
        if folded in seen or columns.get(folded, name) != name:
            return f"Field collision on {name}"
        seen.add(folded)
        added += folded not in columns
    if column_count + added > MAX_COLUMNS:
        return f"Too many columns: a table holds at most {MAX_COLUMNS}"
    return None


def _system_values(message: Upsert, received_at: str, batched_at: str) -> dict[str, Any]:
    values = {
        SEQUENCE: message.sequence,
        TABLE_VERSION: message.table_version,
        RECEIVED_AT: received_at,
        BATCHED_AT: batched_at,
        EXTRACTED_AT: extracted_at(message.time_extracted),
    }
    if not message.key_names:
        values[PRIMARY_KEY] = str(uuid.uuid4())  # append-only rows get a random id (SPEC §10.3)
    return values


def row_params(row: dict[str, Any], columns: Sequence[str], table_name: str) -> tuple[Any, ...]:
    """Parameters for ``sql.upsert_sql`` in ``columns`` order (absent fields load as NULL)."""
    return (*[sql_value(row.get(c)) for c in columns], table_name)
