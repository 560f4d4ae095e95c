"""``ingest/validation/batch.py``: record validation by signature, against the reference validator.

Under a schema whose verdict on a flat record depends only on its field names and value types,
one valid record vouches for the rest with the same names and types. Whatever the schema, the
verdict on every record must equal jsonschema's own.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from importapi_lite.ingest.validation.batch import _RecordValidator, _types_decide, flat_types

NAMES = ["a", "b", "c"]
scalar_schemas = st.sampled_from(
    [
        {"type": "integer"},
        {"type": "number"},
        {"type": ["null", "string"]},
        {"type": "string", "format": "date-time"},
        {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        {"not": {"type": "boolean"}},
        {"type": "integer", "minimum": 3},  # not decided by type: never vouched for
        {"type": "string", "maxLength": 2},
        {"enum": [1, "x"]},
        {"type": "object", "properties": {"z": {"type": "integer"}}},
        {},
    ]
)
schemas = st.builds(
    lambda props, required, additional: {
        "type": "object",
        "properties": props,
        **({"required": required} if required else {}),
        **({"additionalProperties": additional} if additional is not None else {}),
    },
    st.dictionaries(st.sampled_from(NAMES), scalar_schemas, max_size=3),
    st.lists(st.sampled_from(NAMES), max_size=2, unique=True),
    st.none() | st.booleans() | scalar_schemas,
)
values = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
    | st.just({"z": 1})
    | st.just([1])
)
records = st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=3), max_size=30)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(schemas, records)
def test_every_verdict_equals_the_reference_validators(schema: dict[str, Any], batch):
    validator = _RecordValidator(schema)
    reference = jsonschema.Draft4Validator(schema)

    for record in batch:
        verdict = not validator.errors(record, flat_types(record))
        assert verdict == reference.is_valid(record), (schema, record)


def test_schemas_that_test_values_are_never_decided_by_type():
    assert _types_decide({"properties": {"a": {"type": "integer"}}})
    assert not _types_decide({"properties": {"a": {"type": "integer", "minimum": 1}}})
    assert not _types_decide({"properties": {"a": {"anyOf": [{"enum": [1]}]}}})
    assert not _types_decide({"additionalProperties": {"pattern": "x"}})
    assert not _types_decide({"dependencies": {"a": {"required": ["b"]}}})
    assert not _types_decide({"properties": {"a": {"$ref": "#/definitions/x"}}})
