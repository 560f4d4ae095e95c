"""``ingest/validation/patterns.py``: batch schema regexes run by ``regex`` under a time limit,
on both validators."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from importapi_lite.errors import BatchInvalid
from importapi_lite.ingest.validation import parse_batch, patterns
from importapi_lite.ingest.validation.batch import _RecordValidator

STALL = "a" * 40 + "!"  # exponential for ^(a|a)+$, in regex as in re


def _timed_out(validate: Any, data: dict[str, Any]) -> patterns.PatternTimedOut:
    started = time.perf_counter()
    with pytest.raises(patterns.PatternTimedOut) as caught:
        validate(data)
    assert time.perf_counter() - started < 2.0
    return caught.value


@pytest.mark.parametrize(
    "schema",
    [
        {"properties": {"s": {"pattern": "^(a|a)+$"}}},
        {"properties": {"s": {"not": {"pattern": "^(a|a)+$"}}}},  # a timeout is not a non-match
        {"patternProperties": {"^(a|a)+$": {}}},
        {"patternProperties": {"^(a|a)+$": {}}, "additionalProperties": False},
    ],
    ids=["pattern", "under-not", "patternProperties", "additionalProperties"],
)
def test_a_catastrophic_pattern_times_out_on_both_validators(schema: dict[str, Any]) -> None:
    validator = _RecordValidator(schema)
    data = {STALL: 1} if "patternProperties" in schema else {"s": STALL}
    assert validator.fast is not None  # fastjsonschema's own patterns were swapped for timed ones
    fast = _timed_out(validator.fast, data)
    reference = _timed_out(lambda d: list(validator.reference.iter_errors(d)), data)
    assert fast.pattern == reference.pattern == "^(a|a)+$"
    text = next(iter(data)) if "patternProperties" in schema else data["s"]
    assert fast.text is text and reference.text is text


def test_a_batch_that_times_out_is_a_400_naming_the_field() -> None:
    body = {
        "table_name": "t",
        "schema": {"properties": {"o": {"items": {"pattern": "^(a|a)+$"}}}},
        "messages": [
            {"action": "upsert", "sequence": 1, "data": {"o": ["aaa"]}},
            {"action": "upsert", "sequence": 2, "data": {"o": ["aaa", STALL]}},
        ],
    }
    with pytest.raises(BatchInvalid) as caught:
        parse_batch(body)
    assert caught.value.message == (
        "Record 1 did not conform to schema: #/o/1: timed out matching pattern ^(a|a)+$"
    )


def test_all_matches_of_a_batch_share_one_time_limit() -> None:
    with patterns.time_limit(0.0), pytest.raises(patterns.PatternTimedOut):
        patterns.search("a", "a")
    assert patterns.search("a", "a")  # outside it, only the per-match limit applies


def test_the_time_limit_counts_matching_only() -> None:
    # A big batch may take seconds to validate; only its regex matching draws on the budget.
    with patterns.time_limit(0.05):
        time.sleep(0.1)
        assert patterns.search("a", "a")


def test_required_beside_pattern_properties_skips_the_fast_path() -> None:
    # fastjsonschema would match the required names with re, untimed, while compiling.
    schema = {
        "required": [STALL],
        "additionalProperties": False,
        "patternProperties": {"^(a|a)+$": {}},
    }
    assert _RecordValidator(schema).fast is None


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("^[0-9]{5}(-[0-9]{4})?$", "12345-6789"),
        ("^[0-9]{5}(-[0-9]{4})?$", "1234"),
        ("^a$", "a\n"),  # $ before a final newline, as in re
        ("(?i)^ABC", "abcdef"),
        ("é+", "ÉÉé"),
        ("^\\w+@\\w+\\.com$", "x@y.com"),
        ("", ""),
    ],
)
def test_ordinary_patterns_match_as_re_does(pattern: str, text: str) -> None:
    assert patterns.search(pattern, text) == bool(re.search(pattern, text))


def test_locate_finds_a_value_or_a_key_by_identity() -> None:
    value, key = "x" * 30, "k" * 30
    data = {"a": [1, {"b": "x" * 30}, {"c": value}], "d": {key: 1}}
    assert patterns.locate(data, value) == "#/a/2/c"
    assert patterns.locate(data, key) == f"#/d/{key}"
    assert patterns.locate(data, "elsewhere") == "#"
