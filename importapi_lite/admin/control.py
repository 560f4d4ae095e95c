"""Admin handlers for what this process saw (the request journal, recent activity) and for
fault injection."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ..errors import AdminError, AdminNotFound
from ..web.keys import activity_key, faults_key, journal_key
from ..web.responses import json_response

_WHOLE = re.compile(r"[0-9]+")  # str.isdigit() would also take "²", which int() refuses


async def journal(request: web.Request) -> web.Response:
    """Entries oldest first; ``since`` (an entry id) and ``limit`` (the last N) narrow them."""
    since = _int_query(request, "since", 0)
    limit = request.query.get("limit")
    entries = request.config_dict[journal_key].entries(
        since=since, limit=None if limit is None else _int_query(request, "limit", 0)
    )
    return json_response({"entries": [e.as_json() for e in entries]})


async def clear_journal(request: web.Request) -> web.Response:
    return json_response({"cleared": request.config_dict[journal_key].clear()})


async def activity(request: web.Request) -> web.Response:
    """Data points per table in the last minutes, bucket by bucket (this process's only)."""
    activity = request.config_dict[activity_key]
    snapshot = activity.snapshot()
    body = {
        "bucket_seconds": activity.bucket_seconds,
        "window_seconds": activity.window_seconds,
        "max_tables": activity.max_tables,
        "buckets": snapshot.buckets,
        "series": [s.as_json() for s in snapshot.series],
    }
    return json_response(body)


async def faults(request: web.Request) -> web.Response:
    return json_response({"faults": [f.as_json() for f in request.config_dict[faults_key].list()]})


async def add_fault(request: web.Request) -> web.Response:
    try:
        spec: Any = await request.json()
    except ValueError:
        raise AdminError("The body must be a JSON object describing the fault") from None
    fault = request.config_dict[faults_key].add(spec)
    return json_response(fault.as_json(), 201)


async def clear_faults(request: web.Request) -> web.Response:
    return json_response({"cleared": request.config_dict[faults_key].clear()})


async def remove_fault(request: web.Request) -> web.Response:
    raw = request.match_info["fault_id"]
    if not _WHOLE.fullmatch(raw) or not request.config_dict[faults_key].remove(int(raw)):
        raise AdminNotFound(f"No active fault {raw!r}")
    return json_response({"cleared": 1})


def _int_query(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _WHOLE.fullmatch(raw):
        raise AdminError(f"{name} must be a whole number")
    return int(raw)
