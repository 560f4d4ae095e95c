"""``create_app(settings)``: the whole server put together (the one module that knows every part):
the Stitch API (``web``) over its pipeline (``ingest``) and destination (``store``), the admin API
and the dashboard (``admin``), with what ``observe`` records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .admin.dashboard import DASHBOARD_PREFIX, dashboard_app
from .admin.routes import ADMIN_PREFIX, admin_app
from .ingest.pipeline import Pipeline
from .ingest.workers import Workers
from .observe.activity import Activity
from .observe.faults import Faults
from .observe.journal import Journal
from .observe.metrics import TableLabels
from .observe.rejection_log import RejectionLog
from .settings import Settings
from .store import admin_token, open_destination, open_tokens
from .web.budget import ByteBudget
from .web.keys import (
    activity_key,
    admin_token_key,
    body_budget_key,
    destination_key,
    endpoint_label_key,
    faults_key,
    journal_key,
    pipeline_key,
    request_slots_key,
    settings_key,
    table_labels_key,
    tokens_key,
    uploads_key,
    workers_key,
)
from .web.middleware import end_uploads, middlewares
from .web.routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    # client_max_size only guards request.read(); our checks_middleware reads with its own
    # limit, so this stays above it and the Stitch-shaped 413 is always ours (SPEC §8).
    app = web.Application(middlewares=middlewares(), client_max_size=settings.max_body_bytes + 1)
    app[settings_key] = settings
    app[journal_key] = Journal(settings.journal_size)
    app[activity_key] = Activity()
    app[faults_key] = Faults()
    app[request_slots_key] = asyncio.Semaphore(settings.max_concurrent_requests)
    app[uploads_key] = set()
    app[body_budget_key] = ByteBudget(settings.body_memory)
    app[workers_key] = Workers(settings.workers, settings.offload_bytes)
    app[table_labels_key] = TableLabels(settings.metrics_tables)
    app.cleanup_ctx.append(_destination)
    app.on_shutdown.append(_stop_waiters)
    setup_routes(app)
    admin, dashboard = admin_app(), dashboard_app()
    admin[endpoint_label_key], dashboard[endpoint_label_key] = "admin", "dashboard"
    app.add_subapp(ADMIN_PREFIX, admin)
    app.add_subapp(DASHBOARD_PREFIX, dashboard)  # the longer prefix still wins: v1 stays
    return app


async def _stop_waiters(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open requests: end long-polls now, not at their
    # timeout, and give stalled uploads a short grace instead of the whole read timeout.
    app[destination_key].stop_waiters()
    end_uploads(app)


async def _destination(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    tokens = app[tokens_key] = open_tokens(settings)
    app[admin_token_key] = admin_token(settings, tokens)
    await tokens.start()
    destination = app[destination_key] = open_destination(settings)
    await destination.start()
    rejection_log = RejectionLog()
    app[pipeline_key] = Pipeline(destination, app[workers_key], rejection_log)
    yield
    await asyncio.to_thread(app[workers_key].close)  # after the requests that use it
    await destination.close()
    rejection_log.flush()
    app[tokens_key].close()
