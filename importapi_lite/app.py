"""``create_app(settings)``: the aiohttp application, its resources and its middleware order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from .admin.dashboard import DASHBOARD_PREFIX, dashboard_app
from .admin.routes import ADMIN_PREFIX, admin_app
from .ingest.workers import Preparer
from .observe.faults import Faults
from .observe.journal import Journal
from .settings import Settings
from .store.sqlite import Store
from .store.sqlite.admin_token import AdminToken
from .store.sqlite.tokens import TokenStore
from .web.budget import ByteBudget
from .web.keys import (
    admin_token_key,
    body_budget_key,
    faults_key,
    journal_key,
    preparer_key,
    request_slots_key,
    settings_key,
    store_key,
    tokens_key,
    uploads_key,
)
from .web.middleware import end_uploads, middlewares
from .web.routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    # client_max_size only guards request.read(); our checks_middleware reads with its own
    # limit, so this stays above it and the Stitch-shaped 413 is always ours (SPEC §8).
    app = web.Application(middlewares=middlewares(), client_max_size=settings.max_body_bytes + 1)
    app[settings_key] = settings
    secret = None if settings.admin_token is None else settings.admin_token.reveal()
    app[admin_token_key] = AdminToken(settings.data_dir, secret)
    app[journal_key] = Journal(settings.journal_size)
    app[faults_key] = Faults()
    app[request_slots_key] = asyncio.Semaphore(settings.max_concurrent_requests)
    app[uploads_key] = set()
    app[body_budget_key] = ByteBudget(settings.body_memory)
    app[preparer_key] = Preparer(settings.workers, settings.offload_bytes)
    app.cleanup_ctx.append(_storage)
    app.on_shutdown.append(_stop_waiters)
    setup_routes(app)
    app.add_subapp(ADMIN_PREFIX, admin_app())
    app.add_subapp(DASHBOARD_PREFIX, dashboard_app())  # the longer prefix still wins: v1 stays
    return app


async def _stop_waiters(app: web.Application) -> None:
    # on_shutdown runs before aiohttp waits for open requests: end long-polls now, not at their
    # timeout, and give stalled uploads a short grace instead of the whole read timeout.
    app[store_key].stop_waiters()
    end_uploads(app)


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app[tokens_key] = TokenStore(settings.data_dir)
    app[store_key] = Store(
        settings.data_dir,
        max_open_tables=settings.max_open_tables,
        durability=settings.durability,
        cache_mib=settings.cache_mib,
    )
    Preparer.clear_staging(settings.data_dir)
    yield
    await asyncio.to_thread(app[preparer_key].close)  # after the requests that use it
    await app[store_key].close()
    app[tokens_key].close()
