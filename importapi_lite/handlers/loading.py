"""Loading validated table batches for a token: shared by push and batch."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..keys import load_results_key, received_at_key, store_key, token_key
from ..models import LoadResult, TableBatch
from ..storage.tokens import Token

logger = logging.getLogger(__name__)


async def load_batches(request: web.Request, batches: list[TableBatch]) -> list[LoadResult]:
    """Load every table, each in its own transaction, concurrently; raise the first failure.

    Every table is attempted even if another fails, so what could be committed is; the client's
    retry of the whole request converges thanks to the sequence rule.
    """
    token: Token = request[token_key]
    store = request.config_dict[store_key]
    outcomes = await asyncio.gather(
        *(
            store.load(token.client_id, token.integration, batch, request[received_at_key])
            for batch in batches
        ),
        return_exceptions=True,
    )
    results = [o for o in outcomes if isinstance(o, LoadResult)]
    request[load_results_key] = results  # for the journal, even if another table failed
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    logger.info(
        "%s client=%s tables=%d accepted=%d stale=%d rejected=%d",
        request.path,
        token.client_id,
        len(results),
        sum(r.accepted for r in results),
        sum(r.stale for r in results),
        sum(r.rejected for r in results),
    )
    return results
