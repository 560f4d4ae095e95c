"""``importapi-lite serve``: the server in this process, or in ``--processes N`` of them.

With several, each is a whole server (its event loop, its worker pool, its journal and fault
rules) listening on the one port with ``SO_REUSEPORT``, so the kernel spreads connections over
them; they share the destination (the SQLite files, whose locks order their writes) and the
tokens. This process only starts them, passes SIGTERM and SIGINT on, and starts again one that
died, until it is told to stop.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from .settings import Settings

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0  # before starting again a process that died: no tight loop of crashes


def configure_logging() -> None:
    # Warnings and errors (rejected records, lost workers, bugs) on stderr, with their time and
    # source; nothing per request, which would cost every request its formatting.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(settings: Settings, announce: Callable[[Settings], None]) -> int:
    """Serve until SIGTERM or SIGINT; the exit status. ``announce`` is told the settings
    served (a port of 0 made concrete, for several processes) before the server starts."""
    configure_logging()
    if settings.processes == 1:
        announce(settings)
        serve_here(settings)
        return 0
    return _supervise(settings, announce)


def serve_here(settings: Settings, *, reuse_port: bool = False) -> None:
    """One server, on this process's event loop."""
    from aiohttp import web

    from .app import create_app
    from .ingest.workers import GC_YOUNG_THRESHOLD
    from .web.keys import workers_key

    app = create_app(settings)
    app[workers_key].warm_up()  # its processes start while the server does
    # A big batch allocates objects by the million, nearly all freed by reference counting, yet
    # every few hundred allocations would start a collection that walks the young ones: a good
    # share of a big batch's time. Rarer young collections, and start-up's objects out of every
    # walk (the figures: docs/performance.md).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()
    web.run_app(
        app, host=settings.host, port=settings.port, print=None, reuse_port=reuse_port or None
    )


def _serve_child(settings: Settings) -> None:
    from .store.destination import DestinationUnavailable

    configure_logging()
    try:
        serve_here(settings, reuse_port=True)
    except DestinationUnavailable as exc:  # the supervisor starts it again; say why, briefly
        logger.error("%s", exc)
        sys.exit(1)


def _supervise(settings: Settings, announce: Callable[[Settings], None]) -> int:
    cores = os.cpu_count() or 1
    if settings.workers == -1:  # one worker per core between them all, not per process
        settings = dataclasses.replace(settings, workers=max(1, cores // settings.processes))
    # Port 0: one free port for them all, held (bound, not listening) while they run, so no
    # other program takes it between their starts.
    holder = None
    if settings.port == 0:
        holder = _reserve_port(settings.host)
        settings = dataclasses.replace(settings, port=holder.getsockname()[1])
    announce(settings)
    context = multiprocessing.get_context("spawn")  # no threads' locks copied half-held
    children: list[BaseProcess] = []
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)

    def start(index: int) -> BaseProcess:
        child = context.Process(
            target=_serve_child, args=(settings,), name=f"importapi-lite-{index}"
        )
        child.start()
        return child

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        children += [start(index) for index in range(settings.processes)]
        while not stopping:
            time.sleep(0.2)
            for index, child in enumerate(children):
                if not child.is_alive() and not stopping:
                    logger.warning(
                        "server process %d exited (%s); starting it again", index, child.exitcode
                    )
                    time.sleep(RESTART_DELAY_S)
                    if not stopping:
                        children[index] = start(index)
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if holder is not None:
            holder.close()
    return max((child.exitcode or 0) for child in children)


def _reserve_port(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    return holder
