"""``importapi-lite serve``: the server in this process, or in ``--processes N`` of them.

With several, each is a whole server (its event loop, its worker pool, its journal and fault
rules) listening on the one port with ``SO_REUSEPORT``, so the kernel spreads connections over
them; they share the destination (the SQLite files, whose locks order their writes) and the
tokens. This process only starts them, passes SIGTERM and SIGINT on, and starts again one that
died, until it is told to stop.

With ``--tls-cert`` and ``--tls-key`` each server speaks HTTPS: every process loads the files
into a context of its own (``tls_context``), and a file that cannot serve is one line at start-up.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

from .observe import logs
from .observe.metrics import MULTIPROCESS_DIR, process_gone
from .settings import Settings

logger = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0  # before starting again a process that died: no tight loop of crashes


def serve(settings: Settings, announce: Callable[[Settings], None]) -> int:
    """Serve until SIGTERM or SIGINT; the exit status. ``announce`` is told the settings
    served (a port of 0 made concrete, for several processes) before the server starts."""
    logs.configure(settings.log_level, settings.log_format)
    if settings.processes == 1:
        announce(settings)
        serve_here(settings)
        return 0
    return _supervise(settings, announce)


class TlsError(Exception):
    """A certificate or key that cannot serve HTTPS; the message is one line naming the file."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from ``tls_cert`` and ``tls_key``; None for plain HTTP.

    Python's defaults for a server (``create_default_context``: no compression, the ciphers of
    OpenSSL's security level 2, updated with Python), clients not asked for a certificate, and
    TLS 1.2 at least whatever the system's OpenSSL configuration allows. Raises ``TlsError``.
    """
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None or key is None:
        return None
    texts: dict[str, bytes] = {}
    for what, path in (("certificate", cert), ("key", key)):
        try:
            texts[what] = path.read_bytes()
        except OSError as exc:
            raise TlsError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None

    def no_password() -> bytes:  # OpenSSL would otherwise ask for one on the terminal
        raise TlsError(f"the TLS key {key} is encrypted: give the key without a passphrase")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key, password=no_password)
    except ssl.SSLError as exc:
        if exc.reason in ("KEY_VALUES_MISMATCH", "KEY_TYPE_MISMATCH"):
            problem = f"the TLS key {key} is not the key of the certificate {cert}"
        elif b"-----BEGIN CERTIFICATE-----" not in texts["certificate"]:
            problem = f"no PEM certificate in {cert}"
        elif b"PRIVATE KEY-----" not in texts["key"]:
            problem = f"no PEM private key in {key}"
        else:
            problem = f"cannot load the TLS certificate {cert} with the key {key}: {exc.reason}"
        raise TlsError(problem) from None
    return context


def serve_here(settings: Settings, *, reuse_port: bool = False) -> None:
    """One server, on this process's event loop."""
    from aiohttp import web

    from .app import create_app
    from .ingest.workers import GC_YOUNG_THRESHOLD
    from .web.keys import workers_key
    from .web.malformed import quiet_malformed_requests

    quiet_malformed_requests()  # an unparsable request: one line, not aiohttp's traceback
    context = tls_context(settings)  # first: a file that cannot serve fails before anything starts
    app = create_app(settings)
    app[workers_key].warm_up()  # its processes start while the server does
    # A big batch allocates objects by the million, nearly all freed by reference counting, yet
    # every few hundred allocations would start a collection that walks the young ones: a good
    # share of a big batch's time. Rarer young collections, and start-up's objects out of every
    # walk (the figures: docs/performance.md).
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,  # ours, with the request's tables and counts (observe/logs.py)
        reuse_port=reuse_port or None,
        ssl_context=context,
    )


def _serve_child(settings: Settings, restarted: bool) -> None:
    from .observe.metrics import SERVER_RESTARTS
    from .store.destination import DestinationUnavailable

    logs.configure(settings.log_level, settings.log_format)
    if restarted:
        SERVER_RESTARTS.inc()  # counted by the process started again: the supervisor has no
        # metrics of its own in the shared directory (it imported them before it set it up)
    try:
        serve_here(settings, reuse_port=True)
    except (DestinationUnavailable, TlsError) as exc:  # started again; say why, briefly
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
    # prometheus-client's multiprocess mode: each server writes its metrics into this directory
    # and a scrape adds them all up. Set before they start: each reads it as it imports the
    # library. Empty at start, as the library requires; gone at the end.
    metrics_dir = tempfile.mkdtemp(prefix="importapi-lite-metrics-")
    os.environ[MULTIPROCESS_DIR] = metrics_dir
    context = multiprocessing.get_context("spawn")  # no threads' locks copied half-held
    children: list[BaseProcess] = []
    stopping = False
    told: set[int] = set()  # the processes sent SIGTERM

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            tell(child)

    def tell(child: BaseProcess) -> None:
        if child.is_alive() and child.pid is not None and child.pid not in told:
            told.add(child.pid)
            os.kill(child.pid, signal.SIGTERM)

    def start(index: int, restarted: bool = False) -> BaseProcess:
        child = context.Process(
            target=_serve_child, args=(settings, restarted), name=f"importapi-lite-{index}"
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
                    if child.pid is not None:
                        process_gone(child.pid)
                    time.sleep(RESTART_DELAY_S)
                    if not stopping:
                        children[index] = start(index, restarted=True)
        for child in children:
            tell(child)  # one started again just as the signal came, which stop() did not see
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if holder is not None:
            holder.close()
        del os.environ[MULTIPROCESS_DIR]
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return max((child.exitcode or 0) for child in children)


def _reserve_port(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, 0))
    return holder
