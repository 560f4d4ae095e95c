"""``ingest/validation/push.py``: the one-pass check of plain upserts against the field-by-field
checks.

It may pass a record only where they find nothing (so every error is still worded by them), and
it must pass the plain records real clients send.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from importapi_lite.ingest.validation.common import (
    MAX_DATA_POINTS,
    MAX_KEY_LENGTH,
    MAX_SEQUENCE,
    MIN_SEQUENCE,
)
from importapi_lite.ingest.validation.push import FIELDS, _is_plain_upsert, record_problems

from .helpers import CLIENT_ID

PLAIN = {
    "client_id": CLIENT_ID,
    "table_name": "t",
    "sequence": 1,
    "action": "upsert",
    "key_names": ["id"],
    "data": {"id": 1, "v": "x"},
}
LONG = "x" * (MAX_KEY_LENGTH + 1)
EDGES: list[Any] = [
    None, True, False, 0, -1, 1.0, Decimal("1"), 2**64,
    MIN_SEQUENCE - 1, MIN_SEQUENCE, MAX_SEQUENCE, MAX_SEQUENCE + 1,
    "", " ", "t", "upsert", "switch_view", LONG,
    ["id"], [], [1], ["id", "v"], ["missing"],
    {"id": 1}, {"id": None}, {"id": [1]}, {"id": {"a": 1}}, {"id": LONG}, {"id": "x" * 1024},
    {"other": 1}, {"id": 1, "deep": [[{"a": None}]]},
    {"id": 1, "many": list(range(MAX_DATA_POINTS))},  # one data point too many
]  # fmt: skip
NAMES = [*FIELDS, "namespace", "extra"]


def agrees(record: dict[str, Any]) -> None:
    if _is_plain_upsert(record):
        assert record_problems(record) == {}, record


def test_plain_records_pass() -> None:
    assert _is_plain_upsert(PLAIN)
    assert _is_plain_upsert({**PLAIN, "data": {"id": "k", "n": None, "o": {"a": [1]}}})
    assert _is_plain_upsert({**PLAIN, "sequence": MIN_SEQUENCE})
    assert _is_plain_upsert({**PLAIN, "sequence": MAX_SEQUENCE})


def test_every_change_of_one_field_and_every_missing_field() -> None:
    for name, value in itertools.product(NAMES, EDGES):
        agrees({**PLAIN, name: value})
    for name in NAMES:
        agrees({k: v for k, v in PLAIN.items() if k != name})


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(EDGES), max_size=4))
def test_changes_of_several_fields(changes: dict[str, Any]) -> None:
    agrees({**PLAIN, **changes})
