"""Fault injection: rules that make the next data requests fail, slow down or drop.

Pure, no aiohttp: ``middleware.checks_middleware`` asks ``Faults.take`` for each data request that
passed auth, media-type and size checks. A rule fires for the next ``count`` matching requests
(``None``: until cleared), each with ``probability``, drawn from its own ``random.Random(seed)``
so a run repeats exactly. Rules are tried oldest first; one fires per request at most.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import AdminError

DATA_ENDPOINTS = ("push", "batch", "validate")
FAULT_STATUSES = (202, 413, 429, 500, 503, 504)
MAX_DELAY_MS = 120_000
_FIELDS = ("status", "delay_ms", "drop", "count", "endpoint", "table", "probability", "seed")


@dataclass
class Fault:
    id: int
    status: int | None  # None: answer as usual (after any delay)
    delay_ms: int
    drop: bool  # close the connection without an answer
    remaining: int | None  # requests it will still fire on; None: until cleared
    endpoint: str | None  # push, batch or validate; None: any
    table: str | None  # only requests with data for this table; None: any
    probability: float
    seed: int
    fired: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Seeded so that a test can replay which requests fail; it guards no secret.
        self._random = random.Random(self.seed)  # nosec B311

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "delay_ms": self.delay_ms,
            "drop": self.drop,
            "remaining": self.remaining,
            "endpoint": self.endpoint,
            "table": self.table,
            "probability": self.probability,
            "seed": self.seed,
            "fired": self.fired,
        }

    def _matches(self, endpoint: str, tables: Callable[[], set[str]]) -> bool:
        if self.endpoint is not None and self.endpoint != endpoint:
            return False
        if self.table is not None and self.table not in tables():
            return False
        # Drawn only for matching requests, so the sequence of outcomes depends on the seed alone.
        return self.probability >= 1 or self._random.random() < self.probability


class Faults:
    """The active fault rules of one server."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: Any) -> Fault:
        """A new rule from its JSON description; ``AdminError`` (400) says what is wrong."""
        fault = parse_fault(spec, next(self._ids))
        self._faults.append(fault)
        return fault

    def __bool__(self) -> bool:
        """Whether any rule is armed: without one, a request need not be looked at."""
        return bool(self._faults)

    def list(self) -> list[Fault]:
        return list(self._faults)

    def clear(self) -> int:
        count = len(self._faults)
        self._faults.clear()
        return count

    def remove(self, fault_id: int) -> bool:
        kept = [f for f in self._faults if f.id != fault_id]
        removed = len(kept) != len(self._faults)
        self._faults = kept
        return removed

    def take(self, endpoint: str, tables: Callable[[], set[str]]) -> Fault | None:
        """The rule that fires on this request, if any, counted as used.

        ``tables`` is called only if a rule filters by table: it decodes the body.
        """
        known: set[str] | None = None

        def cached_tables() -> set[str]:
            nonlocal known
            if known is None:
                known = tables()
            return known

        for fault in self._faults:
            if fault._matches(endpoint, cached_tables):
                fault.fired += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                return fault
        return None


def tables_named_in(body: Any) -> set[str]:
    """The table names in a decoded push (a list of records) or batch (one object) body."""
    items = body if isinstance(body, list) else [body]
    return {
        item["table_name"]
        for item in items
        if isinstance(item, Mapping) and isinstance(item.get("table_name"), str)
    }


def parse_fault(spec: Any, fault_id: int) -> Fault:
    if not isinstance(spec, dict):
        raise AdminError("A fault is a JSON object")
    unknown = sorted(set(spec) - set(_FIELDS))
    if unknown:
        raise AdminError(f"Unknown fault field(s): {', '.join(unknown)}")
    status = _whole(spec.get("status"))
    if status is not None and (isinstance(status, bool) or status not in FAULT_STATUSES):
        raise AdminError(f"status must be one of {', '.join(map(str, FAULT_STATUSES))}")
    delay_ms = _integer(spec, "delay_ms", 0, 0, MAX_DELAY_MS)
    drop = spec.get("drop", False)
    if not isinstance(drop, bool):
        raise AdminError("drop must be true or false")
    if drop and status is not None:
        raise AdminError("A fault either drops the connection or answers a status, not both")
    if status is None and not drop and delay_ms == 0:
        raise AdminError("A fault needs a status, a delay_ms or drop")
    count = spec.get("count", 1)
    if count is not None:
        count = _integer(spec, "count", 1, 1, None)
    endpoint = spec.get("endpoint")
    if endpoint is not None and endpoint not in DATA_ENDPOINTS:
        raise AdminError(f"endpoint must be one of {', '.join(DATA_ENDPOINTS)}")
    table = spec.get("table")
    if table is not None and not isinstance(table, str):
        raise AdminError("table must be a string")
    probability = spec.get("probability", 1)
    if isinstance(probability, bool) or not isinstance(probability, int | float):
        raise AdminError("probability must be a number")
    if not 0 < probability <= 1:
        raise AdminError("probability must be above 0 and at most 1")
    seed = _integer(spec, "seed", 0, None, None)
    return Fault(fault_id, status, delay_ms, drop, count, endpoint, table, float(probability), seed)


def _whole(value: Any) -> Any:
    """``2255.0`` as ``2255``: a JSON number with no fraction is an integer (JSON Schema's, so
    the OpenAPI document's), whichever way the client's encoder wrote it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _integer(
    spec: Mapping[str, Any], name: str, default: int, low: int | None, high: int | None
) -> int:
    value = _whole(spec.get(name, default))
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminError(f"{name} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise AdminError(f"{name} must be {bounds}")
    return value
