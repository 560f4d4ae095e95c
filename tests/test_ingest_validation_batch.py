"""``ingest/validation/batch.py``: record validation's fast path (fastjsonschema) agrees with
jsonschema."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import pytest

from importapi_lite.ingest.validation.batch import _RecordValidator

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"id": {"type": "integer"}}},
    {
        "type": "object",
        "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
    },
    {"type": "object", "properties": {"b": {"type": ["null", "boolean"]}}},
    {"type": "object", "properties": {"t": {"type": "string", "format": "date-time"}}},
    {"type": "object", "properties": {"d": {"type": "string", "default": "filled"}}},
    {"type": "object", "additionalProperties": False, "properties": {"a": {}}},
    {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
    {"type": "object", "properties": {"e": {"enum": [1, "a", None]}}},
    {"type": "object", "properties": {"o": {"anyOf": [{"type": "string"}, {"type": "null"}]}}},
    {
        "type": "object",
        "required": ["id"],
        "properties": {"l": {"type": "array", "items": {"type": "integer"}}},
    },
]
VALUES: list[dict[str, Any]] = [
    {},
    {"id": 1},
    {"id": 1.0},
    {"id": True},
    {"id": 2**70},
    {"n": 0},
    {"n": 0.5},
    {"n": True},
    {"b": 1},
    {"b": False},
    {"t": "not a date"},
    {"d": 5},
    {"a": 1, "z": 2},
    {"xyz": 1},
    {"e": True},
    {"e": 1.0},
    {"o": 5},
    {"o": None},
    {"id": 1, "l": [1, "2"]},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_fast_path_agrees_with_the_reference_and_never_changes_the_data(
    schema: dict[str, Any],
) -> None:
    validator = _RecordValidator(schema)
    assert validator.fast is not None
    reference = jsonschema.Draft4Validator(schema)
    for value in VALUES:
        data = copy.deepcopy(value)
        assert (validator.errors(data) == []) == reference.is_valid(value), (schema, value)
        assert data == value  # no defaults filled in


def test_a_schema_with_a_ref_skips_the_fast_path() -> None:
    schema = {
        "definitions": {"i": {"type": "integer"}},
        "properties": {"id": {"$ref": "#/definitions/i"}},
    }
    validator = _RecordValidator(schema)
    assert validator.fast is None
    assert validator.errors({"id": 1}) == [] and validator.errors({"id": "x"}) != []
