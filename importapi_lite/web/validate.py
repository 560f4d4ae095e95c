"""``POST /v2/import/validate``: push's checks, nothing stored (SPEC §4)."""

from __future__ import annotations

from aiohttp import web

from ..ingest.body import parse
from .loading import body_of
from .responses import batch_status


async def validate(request: web.Request) -> web.Response:
    parse(body_of(request, "validate"))
    return batch_status("OK", "Batch is valid!", 200)
