"""The loading model's shaping: a record as Stitch would load it into a relational warehouse.

Pure, no I/O (SPEC §12, §13). Objects flatten into ``parent__child`` cells, recursively; arrays
become rows of subtables (``<table>__<path>``), one row per element with its ``_sdc_level_<n>_id``
positions; scalar elements go in a ``value`` cell. Every cell carries its Stitch type: from the
JSON schema on /batch (SPEC §12.3), else from the value itself (SPEC §12.2). Which column a cell
lands in (and whether it splits) is decided later, against the table's existing columns.

This module owns the loading model's visiting order and typing, once: ``shape`` walks a record
(``_flatten``), ``signature`` walks it the same way for only its scalars and their kinds (the
record plans of ``plans.py`` are keyed by it), and ``conversions`` is the one table of how a
value of each Python type becomes a cell, which ``typed`` and the record plans both follow.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

INTEGER, DOUBLE, DECIMAL, STRING, BOOLEAN, TIMESTAMP = (
    "integer",
    "double",
    "decimal",
    "string",
    "boolean",
    "timestamp",
)
# Split-column suffixes, PostgreSQL destination map (SPEC §12.4).
SUFFIXES = {
    INTEGER: "it",
    DOUBLE: "do",
    DECIMAL: "de",
    STRING: "st",
    BOOLEAN: "bo",
    TIMESTAMP: "ti",
}
SCALAR_VALUE = "value"  # the column of scalar array elements
ARRAY_OF_ARRAYS = "value"  # the path step of arrays nested directly in arrays


@dataclass(frozen=True, slots=True)
class Cell:
    name: str  # flattened name (``address__geo__lat``)
    value: Any  # as SQLite stores it
    type: str | None  # Stitch type; None for a null with nothing to type it
    # The type of the field's bare column when a schema declares one (SPEC §12.3): the column
    # is made with it whatever the first value is, so a value of another type splits in any
    # order. None: the first value seen decides (push, fields a schema does not declare).
    base: str | None = None
    declared: str | None = None  # the type the subschema that fits the value names, if one


@dataclass(slots=True)
class ChildRow:
    path: str  # subtable suffix: the subtable is ``<table>__<path>``
    levels: tuple[int, ...]  # element positions, outermost array first
    cells: list[Cell] = field(default_factory=list)


@dataclass(slots=True)
class Shaped:
    cells: list[Cell] = field(default_factory=list)
    children: list[ChildRow] = field(default_factory=list)


def utc_text(value: dt.datetime) -> str:
    """Timestamps as stored: ISO-8601, UTC, microseconds, ``Z`` (SPEC §12.1)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    # isoformat always writes four-digit years (0999), where glibc's strftime writes 999,
    # which is no ISO-8601 text and would not parse back; it is also faster.
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


# Text already in the stored form (years 1000-9999, where strftime pads nothing): parsing checks
# it is a real date and time, and formatting it again, the costly part, would give it back.
_STORED_FORM = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def parse_timestamp(text: str) -> str | None:
    """ISO-8601 text (offsets with or without a colon, naive = UTC) as stored, or None."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return text if _STORED_FORM.fullmatch(text) else utc_text(value)


def decimal_text(value: Decimal) -> str:
    """Exact digits, positional where that stays short (``1E+2`` is ``100``)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -100 < exponent < 100:
        return format(value, "f")
    return str(value)


@dataclass(frozen=True, slots=True)
class SchemaNode:
    """A JSON schema compiled once per batch into what shaping needs of it."""

    declared: str | None  # the Stitch type of a scalar under it, if it names exactly one
    types: tuple[str, ...]  # the JSON types it lists, for choosing among anyOf options
    properties: Mapping[str, SchemaNode]
    items: SchemaNode | None
    options: tuple[SchemaNode, ...]  # anyOf / oneOf
    # The bare column's type (``Cell.base``): the one type it names; of several types or
    # options, the first (as a null is typed), so the schema alone decides it.
    base: str | None


_JSON_TYPES = {"integer": INTEGER, "number": DOUBLE, "boolean": BOOLEAN, "string": STRING}


def compile_schema(schema: Any) -> SchemaNode | None:
    """The parts of a (validated) JSON schema that type and shape values; None if it has none."""
    if not isinstance(schema, Mapping):
        return None
    declared = schema.get("type")
    types = tuple(declared if isinstance(declared, list) else [declared] if declared else [])
    scalars = [t for t in types if t != "null"]
    stitch_type = _JSON_TYPES.get(scalars[0]) if len(scalars) == 1 else None
    if stitch_type == STRING and schema.get("format") == "date-time":
        stitch_type = TIMESTAMP
    properties = schema.get("properties")
    options = next(
        (o for o in (schema.get("anyOf"), schema.get("oneOf")) if isinstance(o, list)), []
    )
    compiled = tuple(node for o in options if (node := compile_schema(o)) is not None)
    if compiled:
        base = next((o.base for o in compiled if o.base is not None), None)
    else:
        base = stitch_type or next((_JSON_TYPES[t] for t in scalars if t in _JSON_TYPES), None)
    return SchemaNode(
        declared=stitch_type,
        types=types,
        properties={
            k: node
            for k, v in (properties.items() if isinstance(properties, Mapping) else ())
            if (node := compile_schema(v)) is not None
        },
        items=compile_schema(schema.get("items")),
        options=compiled,
        base=base,
    )


def shape(data: Mapping[str, Any], schema: SchemaNode | None = None) -> Shaped:
    """Flatten one record's ``data`` into typed cells and subtable rows."""
    shaped = Shaped()
    _flatten(data, schema, None, "", (), shaped.cells, shaped.children)
    return shaped


def _flatten(
    obj: Mapping[str, Any],
    schema: SchemaNode | None,
    prefix: str | None,  # the object's column name; None for a row's own fields
    path: str,
    levels: tuple[int, ...],
    cells: list[Cell],
    children: list[ChildRow],
) -> None:
    properties = schema.properties if schema is not None else {}
    for key, value in obj.items():
        name = key if prefix is None else f"{prefix}__{key}"  # an object named "" too: __x
        node = properties.get(key)
        sub = resolve(node, value)
        if isinstance(value, dict):
            _flatten(value, sub, name, path, levels, cells, children)
        elif isinstance(value, list):
            # Inside an element (levels set), even an empty path is one: "" holds "" is "__".
            array_path = f"{path}__{name}" if levels else name
            items = sub.items if sub is not None else None
            for index, element in enumerate(value):
                _element(element, items, array_path, (*levels, index), children)
        else:
            cells.append(typed(value, sub, name, node))


def _element(
    element: Any,
    schema: SchemaNode | None,
    path: str,
    levels: tuple[int, ...],
    children: list[ChildRow],
) -> None:
    sub = resolve(schema, element)
    if isinstance(element, list):  # arrays of arrays: rows of ``<path>__value`` (SPEC §13.4)
        items = sub.items if sub is not None else None
        for index, inner in enumerate(element):
            _element(inner, items, f"{path}__{ARRAY_OF_ARRAYS}", (*levels, index), children)
        return
    row = ChildRow(path, levels)
    children.append(row)
    if isinstance(element, dict):
        _flatten(element, sub, None, path, levels, row.cells, children)
    else:
        row.cells.append(typed(element, sub, SCALAR_VALUE, schema))


def typed(
    value: Any, schema: SchemaNode | None, name: str, field: SchemaNode | None = None
) -> Cell:
    """A scalar as a cell: the schema's type where it gives one, else the value's own.

    ``schema`` is the subschema that fits the value (``resolve``); ``field`` the field's own,
    before choosing among its options, which decides the bare column's type (``Cell.base``).
    """
    declared = schema.declared if schema is not None else None
    base = field.base if field is not None else None
    if value is None:
        return Cell(name, None, declared or base, base, declared)
    for stitch_type, convert in conversions(type(value), declared):
        if convert is None:
            return Cell(name, value, stitch_type, base, declared)
        try:
            return Cell(name, convert(value), stitch_type, base, declared)
        except Mismatch:
            continue  # the next conversion takes it
    raise AssertionError("the last conversion takes every value")  # pragma: no cover


class Mismatch(Exception):
    """A value its conversion does not take: the next conversion of its kind does."""


Conversion = tuple[str, Any]  # (the cell's Stitch type, value -> stored value, or None: as is)


def conversions(kind: type, declared: str | None) -> tuple[Conversion, ...]:
    """How a value of Python type ``kind`` becomes a cell, where the schema declares ``declared``
    (or nothing): the conversions to try in order; the first that takes the value types it.

    Only a later one depends on more than the value's type: an integer past 64 bits is a
    decimal (under ``integer`` too: no bigint holds it, SPEC §12.3), and text that is no
    date-time under ``format: date-time`` stays a string (SPEC §5.2: the format is not enforced).
    """
    found = _CONVERSIONS.get((kind, declared))
    if found is None:
        found = _CONVERSIONS[(kind, declared)] = _conversions(kind, declared)
    return found


def _conversions(kind: type, declared: str | None) -> tuple[Conversion, ...]:
    if kind is bool:
        return ((BOOLEAN, int),)
    if kind is int:
        if declared == DOUBLE:
            return ((DOUBLE, float),)  # 15 under "number" loads as 15.0, no split
        return ((INTEGER, _int64), (DECIMAL, str))
    if kind is float:
        return ((DOUBLE, None),)
    if kind is Decimal:
        return ((DOUBLE, float),) if declared == DOUBLE else ((DECIMAL, decimal_text),)
    if kind is str:
        if declared == TIMESTAMP:
            return ((TIMESTAMP, _stamp), (STRING, None))
        return ((STRING, None),)
    if kind is dt.datetime:
        return ((TIMESTAMP, utc_text),)
    return ((STRING, str),)  # UUIDs and the like: their text


_CONVERSIONS: dict[tuple[type, str | None], tuple[Conversion, ...]] = {}


def _int64(value: int) -> int:
    if -(2**63) <= value < 2**63:
        return value
    raise Mismatch


def _stamp(text: str) -> str:
    stamp = parse_timestamp(text)
    if stamp is None:
        raise Mismatch
    return stamp


def signature(
    data: dict[str, Any], values: list[Any], elements: list[list[Any]]
) -> tuple[Any, ...] | None:
    """Append the scalars of a record's row to ``values`` and those of each of its subtable
    rows to ``elements``, in the order ``shape`` visits them; the record's signature (names
    and value types, object by object and element by element), or None for an array of
    arrays. Records of one signature shape alike but for their values."""
    kinds: list[Any] = []
    for value in data.values():
        kind = _kind(value, values, elements)
        if kind is None:
            return None
        kinds.append(kind)
    return tuple(data), tuple(kinds)


def _kind(value: Any, row: list[Any], elements: list[list[Any]]) -> Any:
    """A value's part of the signature: a scalar's type (the scalar appended to ``row``), an
    object's names and kinds (its scalars appended to ``row``), an array's element kinds (each
    element a new row of ``elements``); None for an array of arrays."""
    kind = type(value)
    if kind is dict:
        return signature(value, row, elements)
    if kind is not list:
        row.append(value)
        return kind
    items: list[Any] = [list]  # never a field name tuple: the two cannot be confused
    for element in value:
        if type(element) is list:
            return None
        element_row: list[Any] = []
        elements.append(element_row)
        inner = _kind(element, element_row, elements)
        if inner is None:
            return None
        items.append(inner)
    return tuple(items)


def _matches(node: SchemaNode, value: Any) -> bool:
    types = node.types
    if not types:
        return False  # an option without a type cannot say it fits
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return "integer" in types or "number" in types
    if isinstance(value, (float, Decimal)):
        return "number" in types
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, dict):
        return "object" in types
    return isinstance(value, list) and "array" in types


def resolve(schema: SchemaNode | None, value: Any) -> SchemaNode | None:
    """The subschema that types ``value``: for ``anyOf``/``oneOf``, the first that fits it.

    A type list of several non-null types (``["integer", "string"]``) leaves the value's own
    type to decide, so such a field can split (SPEC §12.3).
    """
    if schema is None or not schema.options:
        return schema
    if value is None:  # a null takes the type of the first typed option, for its column
        fits = [o for o in schema.options if o.declared is not None]
    else:
        fits = [o for o in schema.options if _matches(o, value)]
    return resolve(fits[0], value) if fits else None
