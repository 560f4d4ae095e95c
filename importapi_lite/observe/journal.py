"""The request journal: the last N requests of the Stitch API, for the admin API to show.

Pure data, no aiohttp: ``middleware.observe_middleware`` fills it. An entry never holds the token
or the body of a request; only the body of an error answer (what the client was told), and of the
request's headers only those named in ``JOURNALED_HEADERS``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_ERROR_BODY_CHARS = 16_384  # a 422 for 20,000 records is megabytes; keep the journal small
# SECURITY: an allowlist, never a denylist: Authorization holds the token, and a client or proxy
# may add headers of its own with secrets in them (cookies, API keys). These say who sent what.
JOURNALED_HEADERS = (
    "User-Agent",
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Transfer-Encoding",
    "X-Request-Id",
)
MAX_HEADER_CHARS = 512  # a header can be 8 KiB; a journal of 1,000 such entries would be 48 MB
TABLE_COUNTS = ("table_name", "accepted", "stale", "rejected")  # a per_table item's fields


# Not frozen: one is made for every request, and a frozen dataclass's __init__ (an
# object.__setattr__ per field) costs several times this one's.
@dataclass(slots=True)
class JournalEntry:
    id: int
    time: str  # when the request arrived, UTC
    method: str
    path: str  # never the query string
    status: int | None  # None: the connection was dropped (by a fault) or the client went away
    duration_ms: float
    request_bytes: int  # body bytes read, or the Content-Length of a body never read
    client_id: int | None = None  # the token's client, once authenticated
    tables: list[str] = field(default_factory=list)
    accepted: int = 0
    stale: int = 0
    rejected: int = 0
    error: Any = None  # the body of a 4xx/5xx answer: its JSON, or its text
    fault: int | None = None  # the id of the fault injected into this request
    request_id: str = ""  # as in the access log and the answer's X-Request-Id
    headers: dict[str, str] = field(default_factory=dict)  # those of JOURNALED_HEADERS sent
    # Each table's (table_name, accepted, stale, rejected), in load order: tuples, not dicts, as
    # a request may load thousands of tables and the journal keeps a thousand requests.
    per_table: list[tuple[str, int, int, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["per_table"] = [
            dict(zip(TABLE_COUNTS, counts, strict=True)) for counts in self.per_table
        ]
        return body


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers the journal keeps: ``JOURNALED_HEADERS`` only, each cut short."""
    kept = {}
    for name in JOURNALED_HEADERS:
        value = headers.get(name)
        if value is not None:
            kept[name] = value if len(value) <= MAX_HEADER_CHARS else value[:MAX_HEADER_CHARS] + "…"
    return kept


def error_body(text: str, is_json: bool) -> Any:
    """What the journal keeps of an error answer: parsed JSON if small enough, else text."""
    if len(text) > MAX_ERROR_BODY_CHARS:
        return text[:MAX_ERROR_BODY_CHARS] + "…"
    if is_json:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class Journal:
    """A bounded, ordered log; the oldest entries fall off. Ids keep counting across clears."""

    def __init__(self, size: int) -> None:
        self._entries: deque[JournalEntry] = deque(maxlen=size)
        self._ids = itertools.count(1)

    def record(self, **fields: Any) -> JournalEntry:
        entry = JournalEntry(next(self._ids), **fields)
        self._entries.append(entry)
        return entry

    def entries(self, *, since: int = 0, limit: int | None = None) -> list[JournalEntry]:
        """Oldest first; only ids above ``since``; the last ``limit`` of those."""
        found = [e for e in self._entries if e.id > since]
        if limit is None:
            return found
        return found[len(found) - limit :] if limit > 0 else []

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count
