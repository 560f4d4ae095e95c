"""The pipeline of one data request's body: parse, then load every table it names through the
destination, each table in its own transaction; what was rejected goes to the rejection log.

A big body is parsed, planned and staged in a worker process (``workers.py``); the rest, and
whatever a worker could not plan for the current layouts, on the event loop. No aiohttp here:
``web`` hands over a ``Body`` and gets back what each table's load did, or the error to answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

from ..models import LoadResult, TableBatch
from ..observe.rejection_log import RejectionLog
from ..store.destination import Destination, Staged, StalePlan
from .body import Body, parse
from .workers import MAX_ATTEMPTS, WorkerJob, WorkerLost, Workers, discard

logger = logging.getLogger(__name__)


class Pipeline:
    """Where bodies go: the destination, the worker pool and the rejection log, together."""

    def __init__(
        self, destination: Destination, workers: Workers, rejection_log: RejectionLog
    ) -> None:
        self.destination = destination
        self.workers = workers
        self.rejection_log = rejection_log

    async def load(self, body: Body, results: list[LoadResult]) -> None:
        """Load every table of the body, or raise the error to answer; what each table's load
        did is appended to ``results`` as it completes (for the journal, even if one fails).

        Every table is attempted even if another fails, so what could be committed is; the
        client's retry of the whole request converges thanks to the sequence rule.
        """
        tables: frozenset[str] | None = None  # those still to load; None: all of them
        if self.workers.offloads(body):
            for _ in range(MAX_ATTEMPTS):
                try:
                    stale = await self._load_in_workers(body, tables, results)
                except WorkerLost:
                    break
                if not stale:
                    return
                tables = frozenset(s.table_name for s in stale)
                if any(s.here for s in stale):
                    break  # to be planned here, one data point at a time where it must
                logger.debug("%d table(s) planned for a layout that changed: again", len(tables))
        batches = parse(body)
        if tables is not None:
            batches = [b for b in batches if b.table_name in tables]
        stale = await self._load_all(body, batches, results)
        assert not stale  # loads planned here are never stale

    async def _load_in_workers(
        self, body: Body, tables: frozenset[str] | None, results: list[LoadResult]
    ) -> list[StalePlan]:
        """Prepare the body's tables in a worker and load them; those to plan again."""
        destination = self.destination
        layouts = destination.layouts(body.client_id, body.integration)
        stager = destination.stager(body.client_id, body.integration)
        with destination.guard_writes():  # the stager writes for the destination
            prepared = await self.workers.prepare(WorkerJob(body, layouts, stager, tables))
        try:
            return await self._load_all(body, prepared, results)
        finally:
            discard(prepared)

    async def _load_all(
        self, body: Body, loads: Sequence[TableBatch | Staged], results: list[LoadResult]
    ) -> list[StalePlan]:
        """Load every table concurrently; raise the first failure. The staged plans the
        destination could not load are returned, to plan again."""
        pending = [
            self.destination.load(body.client_id, body.integration, load, body.received_at)
            for load in loads
        ]
        outcomes: list[LoadResult | BaseException]
        if len(pending) == 1:  # most requests: awaited here, without a task of its own
            outcomes = [await _outcome(pending[0])]
        else:
            outcomes = await asyncio.gather(*pending, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, LoadResult):
                results.append(outcome)
                if outcome.reasons:
                    self.rejection_log.rejected(
                        body.client_id, body.integration, outcome.table_name, outcome.reasons
                    )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, StalePlan):
                raise outcome
        return [o for o in outcomes if isinstance(o, StalePlan)]


async def _outcome(load: Awaitable[LoadResult]) -> LoadResult | BaseException:
    """What ``asyncio.gather(..., return_exceptions=True)`` makes of one awaitable."""
    try:
        return await load
    except Exception as exc:
        return exc
