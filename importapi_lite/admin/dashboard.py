"""The dashboard: one static page at ``/_importapi/`` that reads and drives the admin API.

A sub-application of its own, mounted beside the admin API. It serves four package files
(``static/``) and no data: the page asks the admin API for everything, with the admin token the
user gives it, so the page itself needs no token and never sees one on the server side.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from aiohttp import web
from aiohttp.typedefs import Handler

from .routes import admin_error_middleware

DASHBOARD_PREFIX = "/_importapi"

# SECURITY: table, column and field names are the pushers' input, shown to whoever holds the
# admin token. The page only ever puts data in the DOM as text; this policy is the second line:
# no inline script, nothing from another origin, no framing, no form posts, no <base> tricks.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: a new version of the package shows at once
}


@dataclass(frozen=True)
class StaticFile:
    path: str  # under DASHBOARD_PREFIX
    name: str  # in importapi_lite/admin/static/
    content_type: str


FILES = (
    StaticFile("/", "index.html", "text/html"),
    StaticFile("/dashboard.js", "dashboard.js", "text/javascript"),
    StaticFile("/dashboard.css", "dashboard.css", "text/css"),
    # Linked from the page, so a browser never asks the Stitch API for /favicon.ico (a 404 in
    # the journal).
    StaticFile("/favicon.svg", "favicon.svg", "image/svg+xml"),
)


def dashboard_app() -> web.Application:
    app = web.Application(middlewares=[slash_middleware, admin_error_middleware])
    for file in FILES:
        app.router.add_get(file.path, _serve(file))
    return app


def _serve(file: StaticFile) -> Handler:
    body = resources.files("importapi_lite.admin").joinpath("static", file.name).read_bytes()

    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=body, content_type=file.content_type, charset="utf-8", headers=_HEADERS
        )

    return serve


@web.middleware
async def slash_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/_importapi`` redirects to ``/_importapi/``, so the page's relative links resolve."""
    if request.path == DASHBOARD_PREFIX and request.method in ("GET", "HEAD"):
        raise web.HTTPFound(DASHBOARD_PREFIX + "/")
    return await handler(request)
