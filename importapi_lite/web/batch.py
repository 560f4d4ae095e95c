"""``POST /v2/import/batch``: one table's messages under a JSON schema (SPEC §5)."""

from __future__ import annotations

from aiohttp import web

from .loading import load
from .responses import created


async def batch(request: web.Request) -> web.Response:
    await load(request, "batch")
    return created()
