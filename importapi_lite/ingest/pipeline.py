"""Loading a request's body for its token: shared by push and batch.

A big body is decoded, validated, planned and staged in a worker process (``offload.py``); the
rest, and whatever a worker could not plan for the current layouts, on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from aiohttp import web

from ..models import LoadResult, TableBatch
from ..store.sqlite.staging import StagedLoad, StalePlan
from ..store.sqlite.tokens import Token
from ..web.keys import (
    body_key,
    load_results_key,
    media_type_key,
    preparer_key,
    received_at_key,
    settings_key,
    store_key,
    token_key,
)
from .codec import JSON, decode_body
from .validation import parse_batch, parse_push
from .workers import MAX_ATTEMPTS, Job, WorkerLost, remove_staged

logger = logging.getLogger(__name__)


async def load_body(request: web.Request, endpoint: str) -> None:
    """Decode, validate and load the body of a ``push`` or ``batch`` request, or raise the
    error to answer. Every table is loaded in its own transaction; see ``load_batches``."""
    body = request[body_key]
    media_type = JSON if endpoint == "batch" else request[media_type_key]
    results: list[LoadResult] = []
    request[load_results_key] = results  # for the journal, even if a table fails
    tables: frozenset[str] | None = None  # those still to load; None: all of them
    preparer = request.app[preparer_key]
    if preparer.takes(body):
        for _ in range(MAX_ATTEMPTS):
            try:
                tables = await _load_prepared(request, endpoint, media_type, tables, results)
            except WorkerLost:
                break
            if not tables:
                _log(request, results)
                return
            logger.debug("%d table(s) planned for a layout that changed: again", len(tables))
    decoded = decode_body(media_type, body)
    token: Token = request[token_key]
    batches = (
        [parse_batch(decoded)] if endpoint == "batch" else parse_push(decoded, token.client_id)
    )
    if tables is not None:
        batches = [b for b in batches if b.table_name in tables]
    stale = await load_batches(request, batches, results)
    assert not stale  # loads planned here are never stale
    _log(request, results)


async def _load_prepared(
    request: web.Request,
    endpoint: str,
    media_type: str,
    tables: frozenset[str] | None,
    results: list[LoadResult],
) -> frozenset[str]:
    """Prepare the body's tables in a worker and load them; the tables to plan again."""
    token: Token = request[token_key]
    store = request.app[store_key]
    job = Job(
        endpoint,
        media_type,
        request[body_key],
        token.client_id,
        token.integration,
        request.app[settings_key].data_dir,
        store.layout_snapshots(token.client_id, token.integration),
        request[received_at_key],
        tables,
    )
    with store.disk.guard(commits=False):  # staging files are written there too
        prepared = await request.app[preparer_key].prepare(job)
    try:
        return await load_batches(request, prepared, results)
    finally:
        remove_staged(prepared)


async def load_batches(
    request: web.Request,
    batches: Sequence[TableBatch | StagedLoad],
    results: list[LoadResult],
) -> frozenset[str]:
    """Load every table, each in its own transaction, concurrently; raise the first failure.
    What each loaded table did is appended to ``results``; the tables whose staged plan was
    stale are returned, to plan again.

    Every table is attempted even if another fails, so what could be committed is; the client's
    retry of the whole request converges thanks to the sequence rule.
    """
    token: Token = request[token_key]
    store = request.app[store_key]
    loads = [
        store.load(token.client_id, token.integration, batch, request[received_at_key])
        for batch in batches
    ]
    outcomes: list[LoadResult | BaseException]
    if len(loads) == 1:  # most requests: awaited here, without a task of its own
        outcomes = [await _settled(loads[0])]
    else:
        outcomes = await asyncio.gather(*loads, return_exceptions=True)
    results += [o for o in outcomes if isinstance(o, LoadResult)]
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, StalePlan):
            raise outcome
    return frozenset(o.table_name for o in outcomes if isinstance(o, StalePlan))


async def _settled(load: Awaitable[LoadResult]) -> LoadResult | BaseException:
    """What ``asyncio.gather(..., return_exceptions=True)`` makes of one awaitable."""
    try:
        return await load
    except Exception as exc:
        return exc


def _log(request: web.Request, results: list[LoadResult]) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return  # nobody would read the line: skip making its sums
    logger.info(
        "%s client=%s tables=%d accepted=%d stale=%d rejected=%d",
        request.path,
        request[token_key].client_id,
        len(results),
        sum(r.accepted for r in results),
        sum(r.stale for r in results),
        sum(r.rejected for r in results),
    )
