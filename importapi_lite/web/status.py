"""``GET /v2/import/status``: the API Status object, no auth (SPEC §6). 503 with a ``reason``
while the destination cannot take writes (SQLite: the data directory missing, read-only, full)."""

from __future__ import annotations

from aiohttp import web

from ..version import __version__
from .keys import destination_key
from .responses import json_response

REVISION = "importapi-lite"  # Stitch reports a git revision here; ours names the product


async def status(request: web.Request) -> web.Response:
    problem = await request.app[destination_key].problem()
    body = {
        "name": "pipeline.gate",
        "version": __version__,
        "revision": REVISION,
        "status": "OK" if problem is None else "ERROR",
        "reason": problem,
    }
    return json_response(body, 200 if problem is None else 503)
