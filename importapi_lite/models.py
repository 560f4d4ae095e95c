"""Validated requests as plain data, never changed once made: what validation produces and
destinations consume.

Imports nothing of ours; field names stay as Stitch spells them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


# Not frozen: one is made for every record, and a frozen dataclass's __init__ (an
# object.__setattr__ per field) costs several times as much; nothing changes one once made.
@dataclass(slots=True)
class Upsert:
    """One data point for a table (a push record or a batch ``upsert`` message)."""

    sequence: int
    data: dict[str, Any]
    key_names: tuple[str, ...]
    table_version: int | None = None
    time_extracted: str | None = None


@dataclass(frozen=True, slots=True)
class ActivateVersion:
    """Batch ``activate_version`` (or push ``switch_view``): drop rows older than the version."""

    sequence: int
    table_version: int | None


Message = Upsert | ActivateVersion


@dataclass(frozen=True)
class TableBatch:
    """Everything one request sends to one table, in request order."""

    table_name: str
    messages: list[Message]
    bookmark_names: tuple[str, ...] | None = None
    # Batch only: the JSON schema of each message's data (the loading model types columns by it).
    schema: dict[str, Any] | None = field(default=None, compare=False)


@dataclass(slots=True)  # not frozen: one for each table of each request (see ``Upsert``)
class LoadResult:
    """What a destination did with one table batch."""

    table_name: str
    accepted: int = 0  # data points that changed the table
    stale: int = 0  # dropped by the sequence or table-version rule
    rejected: int = 0  # logged in _sdc_rejected instead of loaded
    reasons: Mapping[str, int] | None = None  # why they were: each reason's count (None: none)
