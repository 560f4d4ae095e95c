"""Push and validate bodies (SPEC §3): an array of records to per-table batches, or an error.

Checks run in SPEC §3.3 order, steps 6-10: array shape, record count, per-record field rules (one
422 ``reason`` per failing record), one client, the token's client.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ...errors import Forbidden, ValidationFailed, bad_record_count, multiple_clients, not_an_array
from ...models import ActivateVersion, Message, TableBatch, Upsert
from .common import (
    MAX_DATA_POINTS,
    MAX_KEY_LENGTH,
    MAX_RECORDS,
    MAX_SEQUENCE,
    MIN_SEQUENCE,
    exceeds_data_points,
    is_integer,
    is_scalar,
)

BLANK = "can't be blank"
NOT_INTEGER = "should be an integer"
NOT_NUMBER = "should be a number"
NOT_STRING = "should be a string"
NOT_STRINGS = "should be an array of strings"
UNKNOWN_KEY = "unknown key"
ABOVE_MAX = f"can not be above {MAX_SEQUENCE}"
BELOW_MIN = f"can not be below {MIN_SEQUENCE}"  # [mock-defined]
NOT_UPSERT = "must be upsert"  # [mock-defined]
DATA_NOT_OBJECT = "data must be an object"
MISSING_KEYS = "data must include keys"
NULL_KEYS = "keys cannot not be null in data"  # sic, Stitch's text
NON_SCALAR_KEYS = "keys must be scalar values"  # [mock-defined]
LONG_KEYS = f"String keys cannot be longer than {MAX_KEY_LENGTH} characters"
TOO_MANY_POINTS = f"data cannot contain more than {MAX_DATA_POINTS} data points"  # [mock-defined]

ACTIONS = ("upsert", "switch_view")  # switch_view: legacy Java/Clojure clients (SPEC §10.6)
# Known record fields in the order their errors are listed; namespace is accepted and ignored.
FIELDS = ("client_id", "table_name", "sequence", "action", "key_names", "data", "table_version")
IGNORED = ("namespace",)

Problems = dict[str, list[str]]


def parse_push(body: Any, client_id: int) -> list[TableBatch]:
    """Validate a whole push body for the token's ``client_id``; its data grouped by table."""
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise not_an_array()
    if not 1 <= len(body) <= MAX_RECORDS:
        raise bad_record_count()
    if not all(map(_is_plain_upsert, body)):
        reasons = [problems for problems in map(record_problems, body) if problems]
        if reasons:
            raise ValidationFailed(reasons)
    client_ids = {record["client_id"] for record in body}
    if len(client_ids) > 1:
        raise multiple_clients(client_id)
    if client_ids != {client_id}:
        raise Forbidden()
    return _group_by_table(body)


_PLAIN_FIELDS = frozenset(("client_id", "table_name", "sequence", "action", "key_names", "data"))


def _is_plain_upsert(record: dict[str, Any]) -> bool:
    """Nearly every record, checked in one go: True only where ``record_problems`` finds
    nothing (``tests/test_ingest_validation_push.py`` compares the two); False sends the
    record to those checks, which word what is wrong."""
    if len(record) != 6 or not _PLAIN_FIELDS.issuperset(record) or record["action"] != "upsert":
        return False
    table_name, sequence, key_names, data = (
        record["table_name"],
        record["sequence"],
        record["key_names"],
        record["data"],
    )
    if not (
        type(record["client_id"]) is int
        and type(table_name) is str
        and table_name.strip()
        and type(sequence) is int
        and MIN_SEQUENCE <= sequence <= MAX_SEQUENCE
        and type(key_names) is list
        and key_names
        and type(data) is dict
        and not exceeds_data_points(data)
    ):
        return False
    for key in key_names:
        if type(key) is not str:
            return False
        value = data.get(key)
        if (
            value is None
            or not is_scalar(value)
            or (type(value) is str and len(value) > MAX_KEY_LENGTH)
        ):
            return False
    return True


def record_problems(record: dict[str, Any]) -> Problems:
    """Every failing field of one record, known fields first, then unknown keys in record order."""
    problems: Problems = {}
    for name in FIELDS:
        found = _CHECKS[name](record)
        if found:
            problems[name] = found
    for name in record:
        if name not in FIELDS and name not in IGNORED:
            problems[name] = [UNKNOWN_KEY]
    return problems


def _client_id(record: dict[str, Any]) -> list[str]:
    value = record.get("client_id")
    if value is None:
        return [BLANK]
    return [] if is_integer(value) else [NOT_INTEGER]


def _table_name(record: dict[str, Any]) -> list[str]:
    value = record.get("table_name")
    if value is None or (isinstance(value, str) and not value.strip()):
        return [BLANK]
    return [] if isinstance(value, str) else [NOT_STRING]


def _integer_in_range(value: Any) -> list[str]:
    # A Transit ~f decimal is a number, but never an integer.
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return [NOT_INTEGER, NOT_NUMBER]
    if not is_integer(value):
        return [NOT_INTEGER]
    if value > MAX_SEQUENCE:
        return [ABOVE_MAX]
    if value < MIN_SEQUENCE:
        return [BELOW_MIN]
    return []


def _sequence(record: dict[str, Any]) -> list[str]:
    value = record.get("sequence")
    return [BLANK] if value is None else _integer_in_range(value)


def _table_version(record: dict[str, Any]) -> list[str]:
    value = record.get("table_version")
    return [] if value is None else _integer_in_range(value)


def _action(record: dict[str, Any]) -> list[str]:
    value = record.get("action")
    if value is None:
        return [BLANK]
    if not isinstance(value, str):
        return [NOT_STRING]
    return [] if value in ACTIONS else [NOT_UPSERT]


def _needs_data(record: dict[str, Any]) -> bool:
    # key_names and data are required for upserts (SPEC §9 C3); an unknown or missing action is
    # already an error, and the record is checked as the upsert it most likely meant to be.
    return record.get("action") != "switch_view"


def _valid_key_names(record: dict[str, Any]) -> list[str] | None:
    value = record.get("key_names")
    if isinstance(value, list) and value and all(isinstance(k, str) for k in value):
        return value
    return None


def _key_names(record: dict[str, Any]) -> list[str]:
    if not _needs_data(record):
        return []
    value = record.get("key_names")
    if value is None or value == []:
        return [BLANK]
    return [] if _valid_key_names(record) is not None else [NOT_STRINGS]


def _data(record: dict[str, Any]) -> list[str]:
    if not _needs_data(record):
        return []
    data = record.get("data")
    if data is None:
        return [BLANK]
    if not isinstance(data, dict):
        return [DATA_NOT_OBJECT]
    problems: list[str] = []
    for key in _valid_key_names(record) or ():
        if key not in data:
            problem = MISSING_KEYS
        elif data[key] is None:
            problem = NULL_KEYS
        elif not is_scalar(data[key]):
            problem = NON_SCALAR_KEYS
        elif isinstance(data[key], str) and len(data[key]) > MAX_KEY_LENGTH:
            problem = LONG_KEYS
        else:
            continue
        if problem not in problems:
            problems.append(problem)
    if exceeds_data_points(data):
        problems.append(TOO_MANY_POINTS)
    return problems


_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "client_id": _client_id,
    "table_name": _table_name,
    "sequence": _sequence,
    "action": _action,
    "key_names": _key_names,
    "data": _data,
    "table_version": _table_version,
}


def _group_by_table(records: list[dict[str, Any]]) -> list[TableBatch]:
    """Per table, in order of first appearance; each table's messages keep request order."""
    by_table: dict[str, list[Message]] = {}
    for record in records:
        version = record.get("table_version")
        message: Message
        if record["action"] == "switch_view":  # treated as activate_version (SPEC §10.6)
            message = ActivateVersion(record["sequence"], version)
        else:
            message = Upsert(
                record["sequence"], record["data"], tuple(record["key_names"]), version
            )
        by_table.setdefault(record["table_name"], []).append(message)
    return [TableBatch(name, messages) for name, messages in by_table.items()]
