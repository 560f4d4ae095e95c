"""Middleware, outermost first: what is observed (metrics, the access log, the journal), errors,
then the checks (route, request slot, auth, media type, body size in SPEC §3.3 order, then
injected faults).

``error_middleware`` is the only place an error becomes a response. The checks raise
``ImportApiError``s and leave, for the handler, the request's ``token``, ``media_type`` and
``body`` (the raw bytes, already read within the size limit). Requests routed to a sub-application
(the admin API) pass through all of these untouched: it has its own auth and routing.

Stitch's endpoints are routes of the root application, so ``request.app`` holds all they need,
here and in their handlers; ``request.config_dict`` (for sub-applications) is built anew at every
access, which a one-record push would pay at every lookup.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ..clock import now_text
from ..errors import (
    ConnectionNotActive,
    GatewayTimeout,
    ImportApiError,
    InternalServerError,
    InvalidRegion,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from ..ingest.codec import decode_body
from ..observe import logs
from ..observe.faults import Fault, tables_named_in
from ..observe.journal import error_body, safe_headers
from ..observe.metrics import (
    IN_FLIGHT,
    RECEIVED_BYTES,
    REQUEST_SECONDS,
    REQUESTS,
    count_records,
)
from ..settings import Settings
from ..store.tokens import Token
from .keys import (
    activity_key,
    body_budget_key,
    body_key,
    body_size_key,
    endpoint_label_key,
    fault_key,
    faults_key,
    journal_key,
    load_results_key,
    media_type_key,
    received_at_key,
    request_id_key,
    request_slots_key,
    settings_key,
    table_labels_key,
    token_key,
    tokens_key,
    uploads_key,
)
from .responses import batch_status, json_response, text_response
from .routes import Endpoint, belongs_to_sub_app, endpoint_of

logger = logging.getLogger(__name__)


def render(error: ImportApiError) -> web.Response:
    body = error.body()
    if isinstance(body, str):
        response = text_response(body, error.status)
    else:
        response = json_response(body, error.status)
    response.headers.update(error.headers())
    return response


@web.middleware
async def observe_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request, once answered: its metrics and its access line, and for a Stitch API
    request its journal entry. Each gets a request id (the client's ``X-Request-Id`` when it
    sent a plausible one), sent back in ``X-Request-Id`` and written in all three.

    Outside ``error_middleware``, so it sees errors as rendered: what the client was told.
    Never the token, never the request body.
    """
    request_id = request[request_id_key] = _request_id(request)
    stitch = not belongs_to_sub_app(request)
    if stitch:
        # When the request arrived: the journal's time, and every row's _sdc_received_at.
        request[received_at_key] = now_text()
        IN_FLIGHT.inc()
    started = time.perf_counter()
    status: int | None = None
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:  # a streamed export has sent its headers already
            response.headers["X-Request-Id"] = request_id
        return response
    except web.HTTPException as exc:  # a redirect, or what aiohttp raised itself
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        seconds = time.perf_counter() - started
        if stitch:
            IN_FLIGHT.dec()
            status = _journal(request, response, status, seconds)
        _observed(request, status, seconds)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id")
    if given is not None and _PLAUSIBLE_ID.fullmatch(given):
        return given
    return secrets.token_hex(8)


_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # nothing that could forge a log line


def _journal(
    request: web.Request,
    response: web.StreamResponse | None,
    status: int | None,
    duration: float,
) -> int | None:
    """The request's journal entry; the status it was answered with (None: never sent)."""
    fault = request.get(fault_key)
    if fault is not None and fault.drop:
        status = None  # the answer built after the drop was never sent
    error = None
    if status is not None and status >= 400 and isinstance(response, web.Response):
        raw = response.body if isinstance(response.body, bytes) else b""
        is_json = (response.content_type or "").endswith("json")
        error = error_body(raw.decode("utf-8", "replace"), is_json)
    token = request.get(token_key)
    results = request.get(load_results_key, [])
    request.app[journal_key].record(
        time=request[received_at_key],
        method=request.method,
        path=request.path,
        status=status,
        duration_ms=round(duration * 1000, 3),
        request_bytes=request.get(body_size_key, request.content_length or 0),
        client_id=None if token is None else token.client_id,
        tables=[r.table_name for r in results],
        accepted=sum(r.accepted for r in results),
        stale=sum(r.stale for r in results),
        rejected=sum(r.rejected for r in results),
        error=error,
        fault=None if fault is None else fault.id,
        headers=safe_headers(request.headers),
        per_table=[(r.table_name, r.accepted, r.stale, r.rejected) for r in results],
        request_id=request[request_id_key],
    )
    return status


def _observed(request: web.Request, status: int | None, seconds: float) -> None:
    """The request's metrics, and its access line if those are logged."""
    endpoint = _endpoint_label(request)
    REQUESTS.labels(endpoint, str(status) if status is not None else "none").inc()
    REQUEST_SECONDS.labels(endpoint).observe(seconds)
    size = request.get(body_size_key)
    if size:
        RECEIVED_BYTES.labels(endpoint).inc(size)
    token = request.get(token_key)
    results = request.get(load_results_key)
    if results and token is not None:  # what the loads did: the metrics, the dashboard's chart
        count_records(request.app[table_labels_key], token.integration, results)
        request.app[activity_key].record(token.client_id, token.integration, results)
    if not logs.access_wanted():
        return
    fields: dict[str, Any] = {
        "method": request.method,
        "path": request.path,  # never the query string: an admin API query may hold data
        "status": status,
        "ms": round(seconds * 1000, 1),
        "remote": request.remote,
        "request_id": request[request_id_key],
    }
    if token is not None:
        fields["client_id"] = token.client_id
    if size is not None:
        fields["bytes"] = size
    if results:  # a request that failed before loading has none
        fields["tables"] = [r.table_name for r in results]
        fields["accepted"] = sum(r.accepted for r in results)
        fields["stale"] = sum(r.stale for r in results)
        fields["rejected"] = sum(r.rejected for r in results)
    logs.access(fields)


def _endpoint_label(request: web.Request) -> str:
    apps = request.match_info.apps
    if len(apps) > 1:
        return apps[-1].get(endpoint_label_key, "other")
    endpoint = endpoint_of(request)
    return "other" if endpoint is None else endpoint.short_name


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render our errors; log anything unexpected and answer a Stitch-shaped 500.

    aiohttp's own 404/405 never get here (``checks_middleware`` turns them into ours first), and
    its 413 cannot happen: bodies are read by ``checks_middleware``, not ``request.read()``.
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
async def checks_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The Stitch API's checks, in SPEC §3.3 order, each a function below: the route (404,
    405), a request slot (503), the token (401), the media type (415), the size while the body
    is read (413), then the fault the admin API injected, if any.

    One middleware, not one a check: each layer of aiohttp's chain cost every request a
    coroutine and a lookup of its endpoint, a cost every one-record push would pay.
    """
    if belongs_to_sub_app(request):
        return await handler(request)  # the admin API: its own routing, auth and errors
    endpoint = endpoint_for(request)
    if not endpoint.media_types:  # /status: no body to read, no request slot to take
        if endpoint.needs_token:
            request[token_key] = authenticate(request)
        return await handler(request)
    slots = request.app[request_slots_key]
    if slots.locked():
        # At most max_concurrent_requests at once. Answering fast beats queueing: Stitch's
        # clients retry a 503, and a queue would only grow memory and every request's latency.
        raise ServiceUnavailable()
    async with slots:
        if endpoint.needs_token:
            request[token_key] = authenticate(request)
        request[media_type_key] = media_type(request, endpoint)
        return await _with_body(request, handler, endpoint)


def endpoint_for(request: web.Request) -> Endpoint:
    """The endpoint, or 404 and 405 before anything else: an unknown path never reaches auth."""
    endpoint = endpoint_of(request)
    if endpoint is not None:
        return endpoint
    exception = request.match_info.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        raise MethodNotAllowed(exception.allowed_methods)
    raise NotFound()


def bearer_secret(request: web.Request) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header, or None. The scheme is
    case-insensitive; ``Bearer: tok`` (a typo in Stitch's docs) is no Bearer token (SPEC §2)."""
    scheme, _, secret = request.headers.get("Authorization", "").strip().partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


def authenticate(request: web.Request) -> Token:
    """The Bearer token's; 401 for a bad token, region or integration."""
    secret = bearer_secret(request)
    if secret is None:
        raise Unauthorized()
    token = request.app[tokens_key].lookup(secret)
    if token is None or not token.is_active:
        raise Unauthorized()
    if token.region != request.app[settings_key].region:
        raise InvalidRegion()
    if token.integration_state != "active":
        raise ConnectionNotActive()
    return token


def media_type(request: web.Request, endpoint: Endpoint) -> str:
    """The Content-Type's media type (parameters ignored); 415 unless the endpoint takes it."""
    received = request.headers.get("Content-Type", "").partition(";")[0].strip()
    if received.lower() not in endpoint.media_types:
        raise endpoint.unsupported_media(received)
    return received.lower()


async def _with_body(
    request: web.Request, handler: Handler, endpoint: Endpoint
) -> web.StreamResponse:
    """413 from Content-Length before reading; otherwise read, counting, and stop at the limit.

    Counting while reading also bounds chunked and compressed bodies (the limit applies to the
    decoded bytes, SPEC §15 Q12). The body's size is held in the byte budget (``budget.py``)
    from before reading until the response; a body that does not declare its decoded size
    holds the limit.
    """
    settings = request.app[settings_key]
    limit = settings.max_body_bytes
    declared = request.content_length  # parsed from the header at each access: read once
    if declared is not None and declared > limit:
        raise PayloadTooLarge(declared)
    budget = request.app[body_budget_key]
    if declared is None or "Content-Encoding" in request.headers:
        declared = limit
    async with budget.hold(declared):
        content = request.content
        if content.is_eof():
            # All of it came with the headers (most small pushes): no wait, so no deadline.
            body = content.read_nowait()
            if len(body) > limit:
                raise PayloadTooLarge(len(body))
        else:
            body = await _read_body(request, settings, limit)
        request[body_key] = body
        request[body_size_key] = len(body)
        try:
            return await _faulted(request, handler, endpoint)
        finally:
            # aiohttp keeps a connection's last request referenced until the next one arrives: 64
            # idle kept-alive connections would each hold their last body, however big.
            del request[body_key]


async def _read_body(request: web.Request, settings: Settings, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    uploads = request.app[uploads_key]
    try:
        # A stalled or trickling upload must not hold a request slot for ever; on shutdown the
        # deadline is brought forward (``end_uploads``), so it cannot hold up the exit either.
        async with asyncio.timeout(settings.read_timeout) as deadline:
            uploads.add(deadline)
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(size)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout() from None
    finally:
        uploads.discard(deadline)
    return b"".join(chunks)


SHUTDOWN_GRACE = 2.0  # seconds an upload under way at shutdown still gets to finish


def end_uploads(app: web.Application) -> None:
    """On shutdown: uploads still arriving get ``SHUTDOWN_GRACE`` seconds, then a 408."""
    loop = asyncio.get_running_loop()
    for deadline in app[uploads_key]:
        when = deadline.when()
        deadline.reschedule(
            min(when if when is not None else math.inf, loop.time() + SHUTDOWN_GRACE)
        )


async def _faulted(
    request: web.Request, handler: Handler, endpoint: Endpoint
) -> web.StreamResponse:
    """The handler, unless the admin API set up a fault for this request.

    Last, so only a request that passed auth and the media-type and size checks is faulted (a
    bad token still gets its 401). A faulted request stores nothing, except 202: stored, then
    answered as Stitch answers a queued batch. A delay alone slows a request that then runs.
    """
    faults = request.app[faults_key]
    fault = faults.take(endpoint.short_name, lambda: _tables_in(request)) if faults else None
    if fault is None:
        return await handler(request)
    request[fault_key] = fault
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault.drop:
        request.protocol.force_close()
        return web.Response(status=500)  # never sent: aiohttp finds the connection closed
    if fault.status is None:
        return await handler(request)
    if fault.status == 202:
        await handler(request)
        return batch_status("Accepted", "The batch is queued to be processed.", 202)
    raise _fault_error(fault, len(request[body_key]))


def _tables_in(request: web.Request) -> set[str]:
    try:
        return tables_named_in(decode_body(request[media_type_key], request[body_key]))
    except ImportApiError:
        return set()  # a body that does not parse names no table; it gets its 400 later


def _fault_error(fault: Fault, size: int) -> ImportApiError:
    if fault.status == 413:
        return PayloadTooLarge(size)
    if fault.status == 429:
        return TooManyRequests()
    if fault.status == 503:
        return ServiceUnavailable()
    if fault.status == 504:
        return GatewayTimeout()
    return InternalServerError()


def middlewares() -> list[Middleware]:
    return [observe_middleware, error_middleware, checks_middleware]
