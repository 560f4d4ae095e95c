"""``POST /v2/import/validate``: push's checks, nothing stored (SPEC §4)."""

from __future__ import annotations

from aiohttp import web

from ..ingest.codec import decode_body
from ..ingest.validation import parse_push
from .keys import body_key, media_type_key, token_key
from .responses import batch_status


async def validate(request: web.Request) -> web.Response:
    records = decode_body(request[media_type_key], request[body_key])
    parse_push(records, request[token_key].client_id)
    return batch_status("OK", "Batch is valid!", 200)
