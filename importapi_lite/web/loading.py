"""What push, batch and validate share: the request's body, as the pipeline takes it."""

from __future__ import annotations

from aiohttp import web

from ..ingest.body import Body
from .keys import (
    body_key,
    load_results_key,
    media_type_key,
    pipeline_key,
    received_at_key,
    token_key,
)


def body_of(request: web.Request, endpoint: str) -> Body:
    """The body the checks read, with the token's client and integration."""
    token = request[token_key]
    return Body(
        endpoint,
        request[media_type_key],
        request[body_key],
        token.client_id,
        token.integration,
        request[received_at_key],
    )


async def load(request: web.Request, endpoint: str) -> None:
    """Load the body through the pipeline, or raise the error to answer; what each table's
    load did is kept for the journal, even if one fails."""
    results = request[load_results_key] = []
    await request.app[pipeline_key].load(body_of(request, endpoint), results)
