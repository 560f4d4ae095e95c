"""``POST /v2/import/push``: records for any tables of the token's client (SPEC §3)."""

from __future__ import annotations

from aiohttp import web

from ..responses import created
from .loading import load_body


async def push(request: web.Request) -> web.Response:
    await load_body(request, "push")
    return created()
