"""Middleware, outermost first: errors, route, auth, media type, body size (SPEC §3.3 order).

``error_middleware`` is the only place an error becomes a response. The others raise
``ImportApiError``s and leave, for the handler, the request's ``token``, ``media_type`` and
``body`` (the raw bytes, already read within the size limit).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .errors import (
    ConnectionNotActive,
    ImportApiError,
    InvalidRegion,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from .keys import body_key, media_type_key, received_at_key, settings_key, token_key, tokens_key
from .responses import json_response, text_response
from .routes import endpoint_of
from .storage.loading import now_text

logger = logging.getLogger(__name__)


def render(error: ImportApiError) -> web.Response:
    body = error.body()
    if isinstance(body, str):
        return text_response(body, error.status)
    return json_response(body, error.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render our errors; log anything unexpected and answer a Stitch-shaped 500.

    aiohttp's own 404/405 never get here (``route_middleware`` turns them into ours first), and
    its 413 cannot happen: bodies are read by ``body_size_middleware``, not ``request.read()``.
    """
    try:
        return await handler(request)
    except ImportApiError as error:
        return render(error)
    except (asyncio.CancelledError, web.HTTPException):
        raise
    except Exception:
        # Never the body or headers: they may hold data and the token.
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return render(ImportApiError())


@web.middleware
async def route_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """404 and 405 before anything else, so an unknown path never reaches auth."""
    request[received_at_key] = now_text()
    if endpoint_of(request) is None:
        exception = request.match_info.http_exception
        if isinstance(exception, web.HTTPMethodNotAllowed):
            raise MethodNotAllowed()
        raise NotFound()
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token → ``request[token_key]``; 401 for a bad token, region or integration."""
    endpoint = endpoint_of(request)
    if endpoint is None or not endpoint.needs_token:
        return await handler(request)
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    secret = secret.strip()
    # The scheme is case-insensitive; "Bearer: tok" (a docs typo) is a bad token (SPEC §2).
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized()
    token = request.config_dict[tokens_key].lookup(secret)
    if token is None or not token.is_active:
        raise Unauthorized()
    if token.region != request.config_dict[settings_key].region:
        raise InvalidRegion()
    if token.integration_state != "active":
        raise ConnectionNotActive()
    request[token_key] = token
    return await handler(request)


@web.middleware
async def media_type_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """415 unless the Content-Type's media type is one the endpoint takes (parameters ignored)."""
    endpoint = endpoint_of(request)
    if endpoint is None or not endpoint.media_types:
        return await handler(request)
    received = request.headers.get("Content-Type", "").partition(";")[0].strip()
    if received.lower() not in endpoint.media_types:
        raise endpoint.unsupported_media(received)
    request[media_type_key] = received.lower()
    return await handler(request)


@web.middleware
async def body_size_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 from Content-Length before reading; otherwise read, counting, and stop at the limit.

    Counting while reading also bounds chunked and compressed bodies (the limit applies to the
    decoded bytes, SPEC §15 Q12).
    """
    endpoint = endpoint_of(request)
    if endpoint is None or not endpoint.media_types:
        return await handler(request)
    limit = request.config_dict[settings_key].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(size)
        chunks.append(chunk)
    request[body_key] = b"".join(chunks)
    return await handler(request)


def middlewares() -> list[Middleware]:
    return [
        error_middleware,
        route_middleware,
        auth_middleware,
        media_type_middleware,
        body_size_middleware,
    ]
