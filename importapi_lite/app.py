"""``create_app(settings)``: the aiohttp application, its resources and its middleware order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .keys import settings_key, store_key, tokens_key
from .middleware import middlewares
from .routes import setup_routes
from .settings import Settings
from .storage import Store
from .storage.tokens import TokenStore


def create_app(settings: Settings) -> web.Application:
    # client_max_size only guards request.read(); our body_size_middleware reads with its own
    # limit, so this stays above it and the Stitch-shaped 413 is always ours (SPEC §8).
    app = web.Application(middlewares=middlewares(), client_max_size=settings.max_body_bytes + 1)
    app[settings_key] = settings
    app.cleanup_ctx.append(_storage)
    setup_routes(app)
    return app


async def _storage(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app[tokens_key] = TokenStore(settings.data_dir)
    app[store_key] = Store(settings.data_dir, max_open_tables=settings.max_open_tables)
    yield
    await app[store_key].close()
    app[tokens_key].close()
