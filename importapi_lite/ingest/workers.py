"""Big bodies decoded, validated, planned and staged in worker processes, not on the event loop.

The event loop is one core of Python, and a big body costs it far more decoding, validation and
planning than SQLite needs to store the rows. A
body of ``offload_bytes`` or more therefore goes to a pool of worker processes, which run the
very functions the event loop would (``body.parse``, ``plan_load``) and stage each table's rows
with the destination's stager (SQLite: a scratch file); the destination moves them in with SQL
alone. Every core works, and the loop stays free for small requests.

A worker plans against the table layouts the destination had committed when the job was sent.
If a layout changed before the load's transaction began (a concurrent request added a column),
the destination refuses that plan (``StalePlan``) and the table is planned again; after
``MAX_ATTEMPTS`` the event loop does it. A pool that lost a worker is replaced, and its jobs run
on the event loop. Must not import aiohttp: workers import this module.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from ..models import TableBatch
from ..observe.metrics import WORKER_RESTARTS
from ..plan.model import Layout
from ..store.destination import Staged, Stager
from .body import Body, parse

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # plans made in a worker, per table, before the event loop plans it

Prepared = list[TableBatch | Staged]


@dataclass(frozen=True)
class WorkerJob:
    """What a worker needs to turn one request body into staged loads."""

    body: Body
    layouts: dict[str, Layout]  # committed layouts by table name (``Destination.layouts``)
    stage: Stager  # the destination's
    tables: frozenset[str] | None = None  # only these tables (planning again), or all


def prepare(job: WorkerJob) -> Prepared:
    """In a worker: the body's table batches, each staged (or left as it is, if the destination
    would rather load it so). Raises what the event loop would."""
    prepared: Prepared = []
    try:
        for batch in parse(job.body):
            if job.tables is None or batch.table_name in job.tables:
                layout = job.layouts.get(batch.table_name, {})
                prepared.append(job.stage(batch, layout, job.body.received_at))
    except BaseException:
        discard(prepared)
        raise
    return prepared


def discard(prepared: Prepared) -> None:
    for item in prepared:
        if not isinstance(item, TableBatch):
            item.discard()


class WorkerLost(Exception):
    """The pool lost a worker (killed, out of memory) while it held the job."""


class Workers:
    """The worker pool: ``workers`` processes (-1: one per core; 0: none, all in process),
    started on first use or by ``warm_up``, for bodies of ``offload_bytes`` or more.

    Workers are spawned, not forked: the server has threads (one per open table), and a fork
    would copy their locks in whatever state they were.
    """

    def __init__(self, workers: int, offload_bytes: int) -> None:
        self.workers = (os.cpu_count() or 1) if workers < 0 else workers
        self.offload_bytes = offload_bytes
        self._pool: ProcessPoolExecutor | None = None

    def offloads(self, body: Body) -> bool:
        """Whether this body goes to a worker: below ``offload_bytes`` the trip costs more."""
        return self.workers > 0 and len(body.data) >= self.offload_bytes

    def warm_up(self) -> None:
        """Start every worker now, in the background, so no request waits for one to start."""
        if self.workers == 0:
            return
        pool = self._started()
        for _ in range(self.workers):
            pool.submit(_warm)

    def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._pool

    async def prepare(self, job: WorkerJob) -> Prepared:
        pool = self._started()
        try:
            future = pool.submit(prepare, job)
        except BrokenProcessPool:  # broken since the last job; a new pool for the next
            self._pool = None
            WORKER_RESTARTS.inc()
            raise WorkerLost from None
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            if self._pool is pool:
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
                WORKER_RESTARTS.inc()  # the next body starts a new pool
            logger.warning("a worker process was lost; its request runs on the event loop")
            raise WorkerLost from None
        except asyncio.CancelledError:
            future.add_done_callback(_discard_when_done)  # the worker may still stage rows
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _discard_when_done(future: Future[Prepared]) -> None:
    if not future.cancelled() and future.exception() is None:
        discard(future.result())


# Allocations between collections of the youngest generation (700 by default): a 20,000-record
# body allocates ~1M objects, nearly all freed by reference counting, and each collection walks
# the young ones; the workers do what ``serve`` does for the event loop.
GC_YOUNG_THRESHOLD = 50_000
PARENT_CHECK_S = 1.0


def _start_worker() -> None:
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()  # what the worker imported stays out of every walk
    parent = os.getppid()
    threading.Thread(target=_follow, args=(parent,), name="parent watch", daemon=True).start()


def _follow(parent: int) -> None:
    """End this worker when the server that started it is gone (killed, say): a worker only
    waits for jobs, and without this it would wait, orphaned, for ever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)  # nothing of the worker's is left to save: its jobs went with the server


def _warm() -> None:
    """Nothing: submitted once per worker, it makes the pool start its processes."""
