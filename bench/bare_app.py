"""A bare aiohttp app: reads a POSTed body and answers 201 with Stitch's body, nothing else.

The floor for ``/v2/import/push`` figures: what aiohttp itself costs per request on this machine.
Run as its own process by ``servers.BareApp``; ``GET /`` answers 200 once it listens. With
``--processes N`` it runs as ``serve --processes N`` does: N processes, each its own event loop
listening on the one port with ``SO_REUSEPORT``, so the kernel spreads connections over them,
and this process only starts them and passes SIGTERM on.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
from types import FrameType

from aiohttp import web

ACCEPTED = {"status": "OK", "message": "Batch Accepted!"}


async def push(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(ACCEPTED, status=201)


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve(port: int, reuse_port: bool) -> None:
    app = web.Application()
    app.router.add_post("/v2/import/push", push)
    app.router.add_get("/", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, reuse_port=reuse_port or None)


def supervise(port: int, processes: int) -> None:
    context = multiprocessing.get_context("spawn")  # as serve starts its processes
    children = [context.Process(target=serve, args=(port, True)) for _ in range(processes)]
    for child in children:
        child.start()

    def stop(signum: int, frame: FrameType | None) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes == 1:
        serve(args.port, reuse_port=False)
    else:
        supervise(args.port, args.processes)


if __name__ == "__main__":
    main()
