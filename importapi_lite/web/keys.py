"""Every ``web.AppKey`` and ``web.RequestKey`` of the application, typed, in one place."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ..ingest.pipeline import Pipeline
from ..ingest.workers import Workers
from ..models import LoadResult
from ..observe.activity import Activity
from ..observe.faults import Fault, Faults
from ..observe.journal import Journal
from ..observe.metrics import TableLabels
from ..settings import Settings
from ..store.admin_token import AdminCheck
from ..store.destination import Destination
from ..store.tokens import Token, TokenStore
from .budget import ByteBudget

settings_key = web.AppKey("settings", Settings)
destination_key: web.AppKey[Destination] = web.AppKey("destination")
pipeline_key = web.AppKey("pipeline", Pipeline)
workers_key = web.AppKey("workers", Workers)
tokens_key: web.AppKey[TokenStore] = web.AppKey("tokens")
admin_token_key: web.AppKey[AdminCheck] = web.AppKey("admin_token")
journal_key = web.AppKey("journal", Journal)
activity_key = web.AppKey("activity", Activity)
faults_key = web.AppKey("faults", Faults)
request_slots_key = web.AppKey("request_slots", asyncio.Semaphore)
# The read deadlines of bodies being received, brought forward on shutdown.
uploads_key: web.AppKey[set[asyncio.Timeout]] = web.AppKey("uploads")
body_budget_key = web.AppKey("body_budget", ByteBudget)
table_labels_key = web.AppKey("table_labels", TableLabels)
# On each sub-application: its name in the metrics' endpoint label ("admin", "dashboard").
endpoint_label_key = web.AppKey("endpoint_label", str)

# Set by middleware for the handler (SPEC §3.3): who is asking, and the body as read.
request_id_key = web.RequestKey("request_id", str)
received_at_key = web.RequestKey("received_at", str)
token_key = web.RequestKey("token", Token)
media_type_key = web.RequestKey("media_type", str)
body_key = web.RequestKey("body", bytes)  # until the response is made; then only its size
body_size_key = web.RequestKey("body_size", int)

# Set for the journal: what the loads did, and the fault injected into the request.
load_results_key: web.RequestKey[list[LoadResult]] = web.RequestKey("load_results")
fault_key = web.RequestKey("fault", Fault)
