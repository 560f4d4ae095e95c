"""Prometheus metrics, with the ``prometheus-client`` library: what the admin API's
``GET /metrics`` serves (``exposition``).

The metrics are this module's globals, as prometheus-client intends, in a registry of ours,
never the library's default one: a test process that runs the server through the pytest plugin
may have metrics of its own there. Under ``serve --processes N`` the supervisor points
``PROMETHEUS_MULTIPROC_DIR`` at a directory of its own before it starts the servers, so each
process writes its values there and a scrape, whichever process takes it, adds up all of them
(prometheus-client's multiprocess mode).

Labels are bounded: endpoints and outcomes are fixed sets, a status is an HTTP status code, and
a table gets a label of its own only while fewer than ``--metrics-tables`` tables have one in
this process; the rest are counted under ``table="_other"``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ..models import LoadResult

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own variable
OTHER_TABLES = "_other"
REGISTRY = CollectorRegistry(auto_describe=True)
_NS = "importapi_lite"

# Latencies from a 1-record push (a millisecond) to a 20,000-record batch (seconds).
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUESTS = Counter(
    "requests",
    "Requests answered, by endpoint (push, batch, validate, status, admin, dashboard, other) "
    "and HTTP status.",
    ["endpoint", "status"],
    namespace=_NS,
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "request_duration_seconds",
    "Time from a request's arrival to its answer, by endpoint.",
    ["endpoint"],
    namespace=_NS,
    registry=REGISTRY,
    buckets=_SECONDS,
)
RECEIVED_BYTES = Counter(
    "received_bytes",
    "Request body bytes read, by endpoint (decoded, as the size limit counts them).",
    ["endpoint"],
    namespace=_NS,
    registry=REGISTRY,
)
RECORDS = Counter(
    "records",
    "Data points of push and batch requests by integration, table and outcome: accepted "
    "(loaded), stale (an older sequence than the stored row's), rejected (in _sdc_rejected).",
    ["integration", "table", "outcome"],
    namespace=_NS,
    registry=REGISTRY,
)
IN_FLIGHT = Gauge(
    "requests_in_flight",
    "Stitch API requests being served.",
    namespace=_NS,
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
WAITING_FOR_BODY = Gauge(
    "requests_waiting_for_body_budget",
    "Requests waiting for room in the body memory budget (--body-memory) before their body "
    "is read.",
    namespace=_NS,
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
COMMIT_SECONDS = Histogram(
    "commit_duration_seconds",
    "Time a table's transaction took, from its first write to its COMMIT, by destination.",
    ["destination"],
    namespace=_NS,
    registry=REGISTRY,
    buckets=_SECONDS,
)
COMMIT_GROUP_SIZE = Histogram(
    "commit_group_size",
    "Requests' loads committed in one transaction (SQLite's group commit; 1 on PostgreSQL).",
    ["destination"],
    namespace=_NS,
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
DESTINATION_UP = Gauge(
    "destination_up",
    "1 while the destination takes writes, 0 while it does not (what /v2/import/status says); "
    "checked at each scrape.",
    namespace=_NS,
    registry=REGISTRY,
    multiprocess_mode="livemostrecent",
)
WORKER_RESTARTS = Counter(
    "worker_restarts",
    "Worker process pools started again after a worker process was lost.",
    namespace=_NS,
    registry=REGISTRY,
)
SERVER_RESTARTS = Counter(
    "server_process_restarts",
    "Server processes started again after one died (serve --processes N).",
    namespace=_NS,
    registry=REGISTRY,
)


class TableLabels:
    """The table label of each (integration, table): its own name for the first ``limit`` pairs
    seen, ``_other`` after, so a client that makes tables without end cannot grow the series
    without end."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._labelled: set[tuple[str, str]] = set()

    def of(self, integration: str, table: str) -> str:
        pair = (integration, table)
        if pair in self._labelled:
            return table
        if len(self._labelled) < self.limit:
            self._labelled.add(pair)
            return table
        return OTHER_TABLES


def count_records(labels: TableLabels, integration: str, results: Iterable[LoadResult]) -> None:
    for result in results:
        table = labels.of(integration, result.table_name)
        for outcome, count in (
            ("accepted", result.accepted),
            ("stale", result.stale),
            ("rejected", result.rejected),
        ):
            if count:
                RECORDS.labels(integration, table, outcome).inc(count)


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type: this process's, or every
    server process's added up under ``--processes``."""
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_gone(pid: int) -> None:
    """A server process ended: its live gauges stop counting (multiprocess mode)."""
    if os.environ.get(MULTIPROCESS_DIR):
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
