"""Batch bodies (SPEC §5): one table's envelope, its JSON schema and messages, or a 400.

Check order (SPEC §5.4): root type, envelope (root violations, then each message's ``oneOf``),
``sequence`` range, schema validity, then per message: schema conformance, key presence, key
length, data points. Texts follow the everit validator that Stitch's gate uses (``#/path: …``).
The records are validated with ``jsonschema`` under Draft 4, ``format`` not enforced; schema
regexes run through ``patterns``, under a time limit.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import fastjsonschema
import jsonschema
import referencing
import referencing.exceptions

from ...errors import BatchInvalid
from ...models import ActivateVersion, Message, TableBatch, Upsert
from . import patterns
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

Violation = tuple[str, str]  # (JSON pointer, text)

# Envelope properties and their types, in the order their errors are listed.
ENVELOPE_TYPES = {
    "table_name": "String",
    "schema": "JSONObject",
    "messages": "JSONArray",
    "table_version": "Integer",
    "key_names": "JSONArray",
    "bookmark_names": "JSONArray",
}
REQUIRED = ("table_name", "schema", "messages")
STRING_LISTS = ("key_names", "bookmark_names")
UPSERT_FIELDS = {
    "action": "String",
    "sequence": "Integer",
    "data": "JSONObject",
    "time_extracted": "String",
}
ACTIVATE_FIELDS = {"action": "String", "sequence": "Integer"}
SIMPLE_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
TYPE_NAMES = {
    "array": "JSONArray",
    "boolean": "Boolean",
    "integer": "Integer",
    "null": "Null",
    "number": "Number",
    "object": "JSONObject",
    "string": "String",
}


def type_name(value: Any) -> str:
    """The everit name of a JSON value's type (``Double`` for non-integers [mock-defined])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, dict):
        return "JSONObject"
    if isinstance(value, list):
        return "JSONArray"
    return type(value).__name__


_TYPE_CHECKS = {
    "String": lambda value: isinstance(value, str),
    "JSONObject": lambda value: isinstance(value, dict),
    "JSONArray": lambda value: isinstance(value, list),
    "Integer": is_integer,
}


def _has_type(value: Any, name: str) -> bool:
    return bool(_TYPE_CHECKS[name](value))


def _is_well_formed(message: Any) -> bool:
    """The shapes target-stitch sends, checked cheaply before the full ``oneOf`` analysis."""
    if type(message) is not dict or type(message.get("sequence")) is not int:
        return False  # exactly these types, as decoded; anything else takes the long way
    action = message.get("action")
    if action == "upsert":
        # With action, sequence and data there, no other key but time_extracted (a string).
        extracted = message.get("time_extracted")
        return type(message.get("data")) is dict and (
            len(message) == 3 or (len(message) == 4 and type(extracted) is str)
        )
    return action == "activate_version" and len(message) == 2


def _all_well_formed(messages: list[Any]) -> bool:
    """Whether every message has one of target-stitch's shapes and a sequence in range: one
    pass for the common case."""
    for message in messages:
        if not _is_well_formed(message):
            return False
        if not MIN_SEQUENCE <= message["sequence"] <= MAX_SEQUENCE:
            return False
    return True


def _failed(violations: list[Violation]) -> BatchInvalid:
    rendered = [f"{pointer}: {text}" for pointer, text in violations]
    if len(rendered) > 1:
        rendered.insert(0, f"#: {len(rendered)} schema violations found")
    return BatchInvalid("Request failed validation:" + " ".join(rendered))


def parse_batch(body: Any) -> TableBatch:
    """Validate a whole batch body; the table batch it describes."""
    if not isinstance(body, dict):
        raise _failed([("#", f"expected type: JSONObject, found: {type_name(body)}")])
    root = list(_envelope_violations(body))
    if root:
        raise _failed(root)
    messages = body["messages"]
    if not 1 <= len(messages) <= MAX_RECORDS:
        bound, limit = ("minimum", 1) if not messages else ("maximum", MAX_RECORDS)
        raise _failed(
            [("#/messages", f"expected {bound} item count: {limit}, found: {len(messages)}")]
        )
    if not _all_well_formed(messages):  # else the checks run in order, to word the first failure
        for index, message in enumerate(messages):
            _check_message(message, index)
        for message in messages:
            if message["sequence"] > MAX_SEQUENCE:
                raise BatchInvalid(
                    f"Request failed validation:#: sequence can not be above {MAX_SEQUENCE}"
                )
            if message["sequence"] < MIN_SEQUENCE:
                raise BatchInvalid(
                    f"Request failed validation:#: sequence can not be below {MIN_SEQUENCE}"
                )

    schema = body["schema"]
    validator = _validator(schema)
    key_names = tuple(body.get("key_names") or ())
    declared = schema.get("properties")
    for key in key_names:
        if not isinstance(declared, dict) or key not in declared:
            raise BatchInvalid(f"Record is missing key property {key}")
    table_version = body.get("table_version")
    parsed: list[Message] = []
    with patterns.time_limit():  # one pass: each record checked, then its message made
        for index, message in enumerate(messages):
            if message["action"] == "upsert":
                data = message["data"]
                _check_record(validator, data, index, key_names)
                extracted = message.get("time_extracted")
                parsed.append(
                    Upsert(message["sequence"], data, key_names, table_version, extracted)
                )
            else:
                parsed.append(ActivateVersion(message["sequence"], table_version))
    return TableBatch(
        table_name=body["table_name"],
        messages=parsed,
        bookmark_names=tuple(body["bookmark_names"]) if "bookmark_names" in body else None,
        schema=schema,
    )


def _envelope_violations(body: dict[str, Any]) -> Iterator[Violation]:
    for name in REQUIRED:
        if name not in body:
            yield "#", f"required key [{name}] not found"
    for name, expected in ENVELOPE_TYPES.items():
        if name in body and not _has_type(body[name], expected):
            yield f"#/{name}", f"expected type: {expected}, found: {type_name(body[name])}"
        elif name in STRING_LISTS and name in body:
            for i, item in enumerate(body[name]):
                if not isinstance(item, str):
                    yield f"#/{name}/{i}", f"expected type: String, found: {type_name(item)}"
    for name in body:
        if name not in ENVELOPE_TYPES:
            yield "#", f"extraneous key [{name}] is not permitted"


def _branch_violations(
    message: dict[str, Any], pointer: str, fields: dict[str, str]
) -> list[Violation]:
    """One ``oneOf`` branch: a closed object; extraneous keys, then required, then types."""
    found: list[Violation] = [
        (pointer, f"extraneous key [{k}] is not permitted") for k in message if k not in fields
    ]
    required = [k for k in fields if k != "time_extracted"]
    found += [(pointer, f"required key [{k}] not found") for k in required if k not in message]
    found += [
        (f"{pointer}/{k}", f"expected type: {t}, found: {type_name(message[k])}")
        for k, t in fields.items()
        if k in message and not _has_type(message[k], t)
    ]
    return found


def _check_message(message: Any, index: int) -> None:
    """A message must match exactly one of the upsert and activate_version object schemas."""
    if _is_well_formed(message):
        return
    pointer = f"#/messages/{index}"
    if not isinstance(message, dict):
        raise _failed([(pointer, f"expected type: JSONObject, found: {type_name(message)}")])
    upsert = _branch_violations(message, pointer, UPSERT_FIELDS)
    activate = _branch_violations(message, pointer, ACTIVATE_FIELDS)
    if upsert and activate:
        # Rendered as Stitch's documented example (SPEC §5.4): the oneOf failure, a count for
        # each branch with several violations, then every violation, upsert branch first.
        parts = [f"{pointer}: #: 0 subschemas matched instead of one"]
        parts += [
            f"{pointer}: {len(branch)} schema violations found"
            for branch in (upsert, activate)
            if len(branch) > 1
        ]
        parts += [f"{p}: {text}" for p, text in upsert + activate]
        raise BatchInvalid("Request failed validation:" + " ".join(parts))
    # The shape matched one branch; the action must name that branch.
    expected = "activate_version" if upsert else "upsert"
    action = message["action"]
    if action == expected:
        return
    if action in ("upsert", "activate_version"):
        raise _failed(upsert or activate)
    raise _failed([(f"{pointer}/action", f"{action} is not a valid enum value")])


def _unknown_types(schema: Any) -> Iterator[str]:
    if isinstance(schema, list):
        for item in schema:
            yield from _unknown_types(item)
        return
    if not isinstance(schema, dict):
        return
    declared = schema.get("type")
    for name in declared if isinstance(declared, list) else [declared]:
        if isinstance(name, str) and name not in SIMPLE_TYPES:
            yield name
    for key in (
        "items",
        "additionalProperties",
        "additionalItems",
        "not",
        "anyOf",
        "allOf",
        "oneOf",
    ):
        yield from _unknown_types(schema.get(key))
    for key in ("properties", "patternProperties", "definitions"):
        if isinstance(schema.get(key), dict):
            yield from _unknown_types(list(schema[key].values()))


# No $ref may reach the network or the disk: only references inside the schema resolve.
_NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry()


class _RecordValidator:
    """Draft-4 validation of records: fast, with the reference validator's words on failure.

    ``fastjsonschema`` compiles the schema to Python and checks a record far faster than
    ``jsonschema``, which stays the reference: it alone decides a failure and words it (SPEC
    §5.4). Schemas with a ``$ref`` skip the fast path, since fastjsonschema would fetch remote
    references; ``use_default=False`` keeps it from filling defaults into the data. Both match
    regexes through ``patterns``, time-limited; a schema whose patterns fastjsonschema would
    match with ``re`` while compiling (``required`` beside ``patternProperties``) skips it too.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.reference = patterns.Draft4Validator(schema, registry=_NO_RETRIEVAL)
        self.fast: Any = None
        # Under a schema that tests flat records by their field names and value types alone,
        # one valid record vouches for every record with the same names and types.
        self.valid_signatures: set[tuple[Any, ...]] | None = (
            set() if _types_decide(schema) else None
        )
        if "$ref" not in json.dumps(schema) and _compiles_without_matching(schema):
            try:
                self.fast = fastjsonschema.compile(
                    {**schema, "$schema": DRAFT_4}, use_default=False, use_formats=False
                )
            # Client schemas reach code generation: deep nesting gives a SyntaxError, and more.
            except Exception:  # noqa: BLE001
                self.fast = None  # what it cannot compile, the reference still checks
        if self.fast is not None and _has_patterns(schema):
            if not patterns.time_fast_patterns(self.fast):
                self.fast = None  # a client's pattern must never reach untimed ``re``

    def errors(
        self, data: dict[str, Any], flat_types: tuple[type, ...] | None = None
    ) -> list[jsonschema.ValidationError]:
        """The record's violations; ``flat_types`` is ``flat_types(data)``, which the caller
        needs too."""
        signature, valid = None, self.valid_signatures
        if valid is not None and flat_types is not None:
            signature = (tuple(data), flat_types)
            if signature in valid:
                return []
        if self.fast is not None:
            try:
                self.fast(data)
            except fastjsonschema.JsonSchemaValueException:
                pass
            else:
                if signature is not None and valid is not None and len(valid) < MAX_SIGNATURES:
                    valid.add(signature)
                return []
        return list(self.reference.iter_errors(data))


DRAFT_4 = "http://json-schema.org/draft-04/schema#"
MAX_SIGNATURES = 4096  # valid signatures remembered per schema

# Draft-4 keywords that test a scalar by more than its type (or reach elsewhere, $ref).
_VALUE_KEYWORDS = {
    "$ref", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern",
}  # fmt: skip
_COMBINERS = ("allOf", "anyOf", "oneOf")


def _types_decide(schema: dict[str, Any]) -> bool:
    """Whether validity of a flat record (no object or array values) under this root schema
    depends only on its field names and the types of its values. ``format`` is not enforced;
    keywords for objects and arrays do nothing to a scalar; names decide ``required``,
    ``additionalProperties: false``, ``patternProperties`` and property counts."""
    if any(k in schema for k in (*_COMBINERS, "not", "$ref", "enum")):
        return False
    subschemas = [
        *(schema.get("properties") or {}).values(),
        *(schema.get("patternProperties") or {}).values(),
    ]
    additional = schema.get("additionalProperties", True)
    if not isinstance(additional, bool):
        subschemas.append(additional)
    dependencies = schema.get("dependencies") or {}
    if not all(isinstance(d, list) for d in dependencies.values()):
        return False  # a schema dependency tests the whole record
    return all(_type_tests_only(s) for s in subschemas)


def _type_tests_only(schema: Any) -> bool:
    """Whether this schema tests a scalar by nothing but its type."""
    if not isinstance(schema, dict) or not _VALUE_KEYWORDS.isdisjoint(schema):
        return False
    combined = [s for k in _COMBINERS for s in schema.get(k) or ()]
    if "not" in schema:
        combined.append(schema["not"])
    return all(_type_tests_only(s) for s in combined)


@functools.lru_cache(maxsize=64)
def _compiled(schema_text: str) -> _RecordValidator:
    """Validators by schema: target-stitch sends the same schema with every batch."""
    schema = json.loads(schema_text)
    unknown = next(_unknown_types(schema), None)
    if unknown is not None:
        raise BatchInvalid(f"Invalid JSON schema: unknown type: [{unknown}]")
    try:
        jsonschema.Draft4Validator.check_schema(schema, format_checker=patterns.SCHEMA_FORMATS)
    except jsonschema.SchemaError as exc:
        raise BatchInvalid(
            f"Invalid JSON schema: {_pointer(exc.absolute_path)}: {exc.message}"
        ) from None
    except RecursionError:
        raise BatchInvalid("Invalid JSON schema: nested too deeply") from None
    problem = _unusable_part(schema)
    if problem is not None:
        raise BatchInvalid(f"Invalid JSON schema: {problem}")
    return _RecordValidator(schema)


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every object in a schema: subschemas, and the maps that hold them."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            yield node
            stack.extend(node.values())


def _patterns_in(node: dict[str, Any]) -> list[str]:
    found = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
    if isinstance(node.get("patternProperties"), dict):
        found += list(node["patternProperties"])
    return found


def _has_patterns(schema: dict[str, Any]) -> bool:
    return any(_patterns_in(node) for node in _nodes(schema))


def _compiles_without_matching(schema: dict[str, Any]) -> bool:
    """fastjsonschema matches ``required`` names to ``patternProperties`` with ``re``, untimed,
    while it compiles; such schemas skip the fast path."""
    return not any("required" in n and "patternProperties" in n for n in _nodes(schema))


def _unusable_part(schema: dict[str, Any]) -> str | None:
    """What the metaschema lets through but validation cannot use: bad regexes, odd $refs."""
    for node in _nodes(schema):
        if "$ref" in node and not isinstance(node["$ref"], str):
            return "$ref must be a string"
        for pattern in _patterns_in(node):
            if not patterns.is_valid(pattern):
                return f"invalid regular expression {json.dumps(pattern)}"
    return None


def _validator(schema: dict[str, Any]) -> _RecordValidator:
    try:
        text = json.dumps(schema, sort_keys=True)
    except RecursionError:
        raise BatchInvalid("Invalid JSON schema: nested too deeply") from None
    return _compiled(text)


def _pointer(path: Any) -> str:
    return "#" + "".join(f"/{part}" for part in path)


def flat_types(data: dict[str, Any]) -> tuple[type, ...] | None:
    """The types of a record's values, if none is an object or an array."""
    types = tuple(map(type, data.values()))
    return None if dict in types or list in types else types


def _check_record(
    validator: _RecordValidator,
    data: dict[str, Any],
    index: int,
    key_names: tuple[str, ...],
) -> None:
    types = flat_types(data)
    try:
        errors = validator.errors(data, types)
    except patterns.PatternTimedOut as exc:
        where = patterns.locate(data, exc.text)
        raise BatchInvalid(
            f"Record {index} did not conform to schema: {where}: "
            f"timed out matching pattern {exc.pattern}"  # [mock-defined]
        ) from None
    except referencing.exceptions.Unresolvable:
        raise BatchInvalid("Invalid JSON schema: a $ref cannot be resolved") from None
    except RecursionError:
        raise BatchInvalid("Invalid JSON schema: its references nest too deeply") from None
    # The schema is client input too: whatever else keeps it from being applied is its fault.
    except Exception:  # noqa: BLE001
        raise BatchInvalid("Invalid JSON schema: it cannot be applied to the records") from None
    if errors:
        details = "\n".join(dict.fromkeys(_describe(error) for error in errors))
        raise BatchInvalid(f"Record {index} did not conform to schema: {details}")
    for key in key_names:
        value = data.get(key)
        if value is None:
            raise BatchInvalid(f"Record is missing key property {key}")
        if not is_scalar(value):
            raise BatchInvalid(
                f"Record {index} key property {key} must be a scalar value"
            )  # [mock-defined]
        if isinstance(value, str) and len(value) > MAX_KEY_LENGTH:
            raise BatchInvalid(f"String keys cannot be longer than {MAX_KEY_LENGTH} characters")
    if (types is None or len(data) > MAX_DATA_POINTS) and exceeds_data_points(data):
        raise BatchInvalid(f"Record {index} contains more than {MAX_DATA_POINTS} data points")


def _describe(error: jsonschema.ValidationError) -> str:
    """A record violation in the docs' template, ``#/field: expected: T, found: U`` (§9 C13)."""
    pointer = _pointer(error.absolute_path)
    instance, value = error.instance, error.validator_value
    if error.validator == "type":
        names = [TYPE_NAMES.get(t, str(t)) for t in (value if isinstance(value, list) else [value])]
        expected = names[0] if len(names) == 1 else f"one of [{', '.join(names)}]"
        return f"{pointer}: expected: {expected}, found: {type_name(instance)}"
    if error.validator == "required" and isinstance(instance, dict):
        missing = ", ".join(k for k in value if k not in instance)
        return f"{pointer}: required key [{missing}] not found"
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        declared = error.schema.get("properties", {})
        extra = ", ".join(k for k in instance if k not in declared)
        return f"{pointer}: extraneous key [{extra}] is not permitted"
    if error.validator == "enum":
        return f"{pointer}: {json.dumps(instance, default=str)} is not a valid enum value"
    if error.validator in ("anyOf", "oneOf"):
        return f"{pointer}: #: no subschema matched out of the total {len(value)} subschemas"
    return f"{pointer}: {error.message}"
