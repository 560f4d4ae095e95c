"""The one routing table: every endpoint with the checks its middleware applies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ..errors import BatchUnsupportedMediaType, ImportApiError, UnsupportedMediaType
from ..ingest.codec import JSON, TRANSIT
from . import batch, push, status, validate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    needs_token: bool = True
    media_types: tuple[str, ...] = ()  # request bodies accepted; empty: the endpoint takes none
    unsupported_media: Callable[[str], ImportApiError] = UnsupportedMediaType

    @property
    def short_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def name(self) -> str:
        return "stitch-" + self.short_name  # aiohttp wants identifier-like names


ENDPOINTS = (
    Endpoint("POST", "/v2/import/push", push.push, media_types=(JSON, TRANSIT)),
    Endpoint("POST", "/v2/import/validate", validate.validate, media_types=(JSON, TRANSIT)),
    Endpoint(
        "POST",
        "/v2/import/batch",
        batch.batch,
        media_types=(JSON,),
        unsupported_media=lambda _: BatchUnsupportedMediaType(),
    ),
    Endpoint("GET", "/v2/import/status", status.status, needs_token=False),
)
_BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}


def setup_routes(app: web.Application) -> None:
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler, name=endpoint.name)


def endpoint_of(request: web.Request) -> Endpoint | None:
    """The endpoint a request was routed to; None when routing failed (404/405)."""
    if request.match_info.http_exception is not None:
        return None
    return _BY_NAME.get(request.match_info.route.name or "")


def belongs_to_sub_app(request: web.Request) -> bool:
    """Whether a sub-application (the admin API) routed the request: it is not a Stitch one."""
    return len(request.match_info.apps) > 1
