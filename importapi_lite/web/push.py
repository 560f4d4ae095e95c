"""``POST /v2/import/push``: records for any tables of the token's client (SPEC §3)."""

from __future__ import annotations

from aiohttp import web

from ..ingest.pipeline import load_body
from .responses import created


async def push(request: web.Request) -> web.Response:
    await load_body(request, "push")
    return created()
