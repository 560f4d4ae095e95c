"""``POST /v2/import/batch``: one table's messages under a JSON schema (SPEC §5)."""

from __future__ import annotations

from aiohttp import web

from ..codec import JSON, decode_body
from ..keys import body_key
from ..responses import created
from ..validation import parse_batch
from .loading import load_batches


async def batch(request: web.Request) -> web.Response:
    table_batch = parse_batch(decode_body(JSON, request[body_key]))
    await load_batches(request, [table_batch])
    return created()
