"""``POST /v2/import/push``: records for any tables of the token's client (SPEC §3)."""

from __future__ import annotations

from aiohttp import web

from .loading import load
from .responses import created


async def push(request: web.Request) -> web.Response:
    await load(request, "push")
    return created()
