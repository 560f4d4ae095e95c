"""``POST /v2/import/push``: records for any tables of the token's client (SPEC §3)."""

from __future__ import annotations

from aiohttp import web

from ..codec import decode_body
from ..keys import body_key, media_type_key, token_key
from ..responses import created
from ..validation import parse_push
from .loading import load_batches


async def push(request: web.Request) -> web.Response:
    records = decode_body(request[media_type_key], request[body_key])
    batches = parse_push(records, request[token_key].client_id)
    await load_batches(request, batches)
    return created()
