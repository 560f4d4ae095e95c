"""``POST /v2/import/batch``: one table's messages under a JSON schema (SPEC §5)."""

from __future__ import annotations

from aiohttp import web

from ..ingest.pipeline import load_body
from .responses import created


async def batch(request: web.Request) -> web.Response:
    await load_body(request, "batch")
    return created()
