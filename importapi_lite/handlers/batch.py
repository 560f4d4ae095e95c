"""``POST /v2/import/batch``: one table's messages under a JSON schema (SPEC §5)."""

from __future__ import annotations

from aiohttp import web

from ..responses import created
from .loading import load_body


async def batch(request: web.Request) -> web.Response:
    await load_body(request, "batch")
    return created()
