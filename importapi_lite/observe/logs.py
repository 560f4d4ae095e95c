"""The server's log: stderr, as text or JSON lines, and the access line of each request.

``configure`` sets it up for ``serve`` (each server process calls it). ``access`` writes one
line per request at INFO, from ``web.middleware.observe_middleware``: who asked what, what it
did and how long it took, never a token, a header's value or a body. Names in it (a path, a
table) are the client's input: in text they are escaped as JSON strings are, so no name can
start a line of its own; in JSON the encoder escapes them.

A JSON line is ``{"time", "level", "logger", "message", ...}`` plus a record's ``fields`` (the
access line's), and ``exception`` with the traceback of one that carries it: what a log
shipper parses as it is, one object a line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

ACCESS = logging.getLogger("importapi_lite.access")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, format: str) -> None:
    """Log lines of ``level`` and above to stderr, as ``format`` (``text`` or ``json``). Only
    our own handler is replaced: one a host process installed (pytest's) stays."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(handler)
    handler = _Stderr(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure`` installs, told apart from any other."""


class JsonFormatter(logging.Formatter):
    """One JSON object a line (``json.dumps`` escapes every newline and control character)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def access(fields: dict[str, Any]) -> None:
    """The access line of a request (``fields``: method, path, status, ms, request_id, and
    what else the request has: remote, client_id, tables, counts, bytes)."""
    ACCESS.info(_access_text(fields), extra={"fields": fields})


def access_wanted() -> bool:
    """Whether access lines are written at all: when not, a request builds none."""
    return ACCESS.isEnabledFor(logging.INFO)


def _access_text(fields: dict[str, Any]) -> str:
    words = [fields["method"], _escaped(fields["path"]), str(fields["status"] or "-")]
    for name in ("client_id", "tables", "accepted", "stale", "rejected", "bytes", "ms"):
        value = fields.get(name)
        if value is None or value == []:
            continue
        if name == "tables":
            value = ",".join(_escaped(t) for t in value)
        words.append(f"{name}={value}")
    words.append(f"remote={fields.get('remote') or '-'}")
    words.append(f"id={fields['request_id']}")
    return " ".join(words)


def _escaped(name: str) -> str:
    """``name`` as it is if printable ASCII without spaces or commas, else a JSON string."""
    if name.isascii() and name.isprintable() and " " not in name and "," not in name:
        return name
    return json.dumps(name)
