"""A bare aiohttp app: reads a POSTed body and answers 201 with Stitch's body, nothing else.

The floor for ``/v2/import/push`` figures: what aiohttp itself costs per request on this machine.
Run as its own process by ``servers.BareApp``; ``GET /`` answers 200 once it listens.
"""

from __future__ import annotations

import argparse

from aiohttp import web

ACCEPTED = {"status": "OK", "message": "Batch Accepted!"}


async def push(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(ACCEPTED, status=201)


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    app = web.Application()
    app.router.add_post("/v2/import/push", push)
    app.router.add_get("/", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
