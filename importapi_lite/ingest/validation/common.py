"""Limits and checks shared by push and batch validation (SPEC §8)."""

from __future__ import annotations

from typing import Any

MAX_RECORDS = 20_000
MAX_DATA_POINTS = 10_000
MAX_KEY_LENGTH = 1_024
MAX_SEQUENCE = 9223372036854775807
MIN_SEQUENCE = -9223372036854775808
_NESTED = frozenset((dict, list))  # decoded JSON holds exactly these types, never subclasses


def is_integer(value: Any) -> bool:
    """A JSON integer: ``True`` is not one, and neither is ``1.0`` (SPEC §3.1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def exceeds_data_points(data: dict[str, Any], limit: int = MAX_DATA_POINTS) -> bool:
    """More than ``limit`` scalar leaves, nulls included [mock-defined count, SPEC §15 Q11]."""
    if len(data) <= limit and _NESTED.isdisjoint(map(type, data.values())):
        return False  # flat records, the common case: one leaf per field
    count = 0
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        else:
            count += 1
            if count > limit:
                return True
    return False
