"""The admin sub-application: its routing table, its token check and its error mapping.

Mounted by ``create_app`` at ``ADMIN_PREFIX``. The main application's middleware lets its
requests through untouched (``routes.belongs_to_sub_app``); its errors are ``AdminError``s,
rendered by ``middleware.error_middleware`` like every other error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import (
    AdminForbidden,
    AdminInternalError,
    AdminMethodNotAllowed,
    AdminNotFound,
    AdminUnauthorized,
    ImportApiError,
)
from ..web.keys import admin_token_key, tokens_key
from ..web.middleware import bearer_secret
from . import control, handlers

ADMIN_PREFIX = "/_importapi/v1"
_INTEGRATION = "/clients/{client_id}/integrations/{integration}"
_TABLE = _INTEGRATION + "/tables/{table}"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str  # under ADMIN_PREFIX
    handler: Handler
    needs_token: bool = True


ROUTES = (
    AdminRoute("GET", "/openapi.json", handlers.openapi, needs_token=False),
    AdminRoute("GET", "/livez", handlers.livez),
    AdminRoute("GET", "/readyz", handlers.readyz),
    AdminRoute("GET", "/metrics", handlers.metrics),
    AdminRoute("GET", "/clients", handlers.clients),
    AdminRoute("DELETE", "/clients", handlers.reset_everything),
    AdminRoute("DELETE", "/clients/{client_id}", handlers.reset_client),
    AdminRoute("GET", _INTEGRATION + "/tables", handlers.tables),
    AdminRoute("GET", _INTEGRATION + "/rejected", handlers.rejected),
    AdminRoute("GET", _TABLE, handlers.table),
    AdminRoute("DELETE", _TABLE, handlers.reset_table),
    AdminRoute("GET", _TABLE + "/rows", handlers.rows),
    AdminRoute("GET", _TABLE + "/export", handlers.export),
    AdminRoute("GET", _TABLE + "/wait", handlers.wait),
    AdminRoute("GET", _TABLE + "/rejected", handlers.rejected),
    AdminRoute("GET", "/journal", control.journal),
    AdminRoute("DELETE", "/journal", control.clear_journal),
    AdminRoute("GET", "/activity", control.activity),
    AdminRoute("GET", "/faults", control.faults),
    AdminRoute("POST", "/faults", control.add_fault),
    AdminRoute("DELETE", "/faults", control.clear_faults),
    AdminRoute("DELETE", "/faults/{fault_id}", control.remove_fault),
)
_PUBLIC = frozenset(route.handler for route in ROUTES if not route.needs_token)


def admin_app() -> web.Application:
    app = web.Application(middlewares=[admin_error_middleware, admin_auth_middleware])
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app


@web.middleware
async def admin_error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown admin routes and bugs become ``AdminError``s, so every admin answer has one shape.

    404 and 405 come first, before the token check, as on the Stitch side.
    """
    exception = request.match_info.http_exception
    if isinstance(exception, web.HTTPMethodNotAllowed):
        raise AdminMethodNotAllowed(exception.allowed_methods)
    if exception is not None:
        raise AdminNotFound()
    try:
        return await handler(request)
    except (ImportApiError, asyncio.CancelledError, web.HTTPException):
        raise
    except Exception as exc:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        raise AdminInternalError() from exc


@web.middleware
async def admin_auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin token, as a Bearer token, on every route but the document and the probes.

    A push token gets 403: it is a real token, but never one for this API.
    """
    if request.match_info.handler in _PUBLIC:
        return await handler(request)
    secret = bearer_secret(request)
    if secret is None:
        raise AdminUnauthorized()
    if request.config_dict[admin_token_key].matches(secret):
        return await handler(request)
    if request.config_dict[tokens_key].lookup(secret) is not None:
        raise AdminForbidden()
    raise AdminUnauthorized()
