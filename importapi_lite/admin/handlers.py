"""Admin handlers for health, what is stored, and resets, all through the destination.

Handlers raise ``AdminError``s; ``middleware.error_middleware`` renders them, as every error.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ..errors import AdminError, AdminNotFound, AdminNotReady
from ..observe.metrics import DESTINATION_UP, exposition
from ..plan.plans import split_of
from ..store.destination import TableReader, TableSummary, UnknownColumn
from ..web.keys import destination_key, tokens_key
from ..web.responses import json_response
from .openapi import OPENAPI

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 2**63 - 1  # SQL's OFFSET is a 64-bit integer, in SQLite and PostgreSQL alike
DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0
_INTEGER = re.compile(r"-?[0-9]+")
# Decimal digits, a fraction and an exponent, as the OpenAPI document's "number" is written;
# float() alone would also take " 5", "+5" and "1_0", which are no such number.
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
EXPORT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv"}


async def openapi(request: web.Request) -> web.Response:
    return json_response(OPENAPI)


async def livez(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    problem = await request.config_dict[destination_key].problem()
    if problem is not None:
        raise AdminNotReady(problem)
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """The metrics in Prometheus' text format, the destination's health checked first."""
    problem = await request.config_dict[destination_key].problem()
    DESTINATION_UP.set(1 if problem is None else 0)
    body, content_type = exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def clients(request: web.Request) -> web.Response:
    """Clients with data or tokens, their integrations (and states), tables and row counts."""
    states = {(c, n): s for c, n, s in request.config_dict[tokens_key].integrations()}
    stored = await request.config_dict[destination_key].integrations()
    tables = {(i.client_id, i.integration): i.tables for i in stored}
    by_client: dict[int, list[dict[str, Any]]] = {}
    for client_id, name in sorted(states.keys() | tables.keys()):
        by_client.setdefault(client_id, []).append(
            {
                "name": name,
                "state": states.get((client_id, name)),  # None: data, but no token knows it
                "tables": [_summary(t) for t in tables.get((client_id, name), [])],
            }
        )
    body = [{"client_id": c, "integrations": i} for c, i in by_client.items()]
    return json_response({"clients": body})


async def tables(request: web.Request) -> web.Response:
    client_id, integration = _client_id(request), request.match_info["integration"]
    found = await request.config_dict[destination_key].tables(client_id, integration)
    return json_response({"tables": [_summary(t) for t in found]})


async def table(request: web.Request) -> web.Response:
    async with _open_table(request) as reader:
        description = await reader.describe()
    types = {c.name: c.type for c in description.columns}
    body = {
        "name": description.name,
        "parent": description.parent,
        "key_names": description.key_names,
        "active_version": description.active_version,
        "bookmark_names": description.bookmark_names,
        "created_at": description.created_at,
        "rows": description.rows,
        "columns": [
            {"name": c.name, "type": c.type, "split_of": split_of(c.name, c.type, types)}
            for c in description.columns
        ],
        "subtables": description.subtables,
    }
    return json_response(body)


async def rows(request: web.Request) -> web.Response:
    """One page of rows, in insertion order, with ``where=column:value`` filters."""
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_query(request, "offset", 0, 0, MAX_OFFSET)
    where = _where(request)
    async with _open_table(request) as reader:
        try:
            total = await reader.count(where)
            page = await reader.rows(where, limit=limit, offset=offset)
        except UnknownColumn as exc:
            raise AdminError(f"Table {reader.table} has no column {exc.column!r}") from None
        columns = reader.columns
    body = {"columns": columns, "rows": page, "total": total, "limit": limit, "offset": offset}
    return json_response(body)


async def export(request: web.Request) -> web.StreamResponse:
    """The whole table (or what the filters keep) as JSON Lines or CSV, streamed."""
    format_ = request.query.get("format", "jsonl")
    if format_ not in EXPORT_TYPES:
        raise AdminError(f"format must be one of {', '.join(EXPORT_TYPES)}")
    where = _where(request)
    async with _open_table(request) as reader:
        missing = [c for c, _ in where if c not in reader.columns]
        if missing:
            raise AdminError(f"Table {reader.table} has no column {missing[0]!r}")
        response = web.StreamResponse(
            headers={"Content-Type": f"{EXPORT_TYPES[format_]}; charset=utf-8"}
        )
        await response.prepare(request)
        try:
            if format_ == "csv":
                await response.write(_csv_lines([reader.columns]))
            async for chunk in reader.chunks(where):
                if format_ == "csv":
                    await response.write(_csv_lines(chunk))
                else:
                    await response.write(_json_lines(reader.columns, chunk))
        except ConnectionResetError:
            return response  # the client went away mid-export: nobody is left to tell
    await response.write_eof()
    return response


async def wait(request: web.Request) -> web.Response:
    """Long-poll until the table holds ``min_rows`` rows or ``timeout`` seconds pass.

    Always 200 with the count; ``reached`` says which happened (a 408 would make some HTTP
    clients retry the request on their own).
    """
    min_rows = _int_query(request, "min_rows", 1, 0, None)
    timeout = _float_query(request, "timeout", DEFAULT_WAIT_S, MAX_WAIT_S)
    client_id, integration = _client_id(request), request.match_info["integration"]
    name = request.match_info["table"]
    destination = request.config_dict[destination_key]
    started = time.monotonic()
    while True:
        changed = destination.next_change()
        async with destination.open_table(client_id, integration, name) as reader:
            count = 0 if reader is None else await reader.count()
        remaining = timeout - (time.monotonic() - started)
        if count >= min_rows or remaining <= 0 or destination.is_stopping:
            break
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            pass
    body = {
        "table": name,
        "rows": count,
        "min_rows": min_rows,
        "reached": count >= min_rows,
        "waited_ms": round((time.monotonic() - started) * 1000),
    }
    return json_response(body)


async def reset_everything(request: web.Request) -> web.Response:
    removed = await request.config_dict[destination_key].reset_everything()
    return json_response({"reset": "everything", "clients_removed": removed})


async def reset_client(request: web.Request) -> web.Response:
    client_id = _client_id(request)
    removed = await request.config_dict[destination_key].reset_client(client_id)
    return json_response({"reset": "client", "client_id": client_id, "removed": removed})


async def reset_table(request: web.Request) -> web.Response:
    client_id, integration = _client_id(request), request.match_info["integration"]
    name = request.match_info["table"]
    destination = request.config_dict[destination_key]
    removed = await destination.reset_table(client_id, integration, name)
    body = {
        "reset": "table",
        "client_id": client_id,
        "integration": integration,
        "table": name,
        "removed": removed,
    }
    return json_response(body)


async def rejected(request: web.Request) -> web.Response:
    """Records accepted but not loaded (``_sdc_rejected``): counts by table and reason, and a
    page of the records, newest first; one table's (the route's, or ``?table=``) or all."""
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_query(request, "offset", 0, 0, MAX_OFFSET)
    client_id, integration = _client_id(request), request.match_info["integration"]
    name = request.match_info.get("table", request.query.get("table"))
    destination = request.config_dict[destination_key]
    reasons = await destination.rejection_reasons(client_id, integration, name)
    page = await destination.rejected_records(
        client_id, integration, name, limit=limit, offset=offset
    )
    total, records = page
    body = {
        "table": name,
        "total": total,
        "reasons": [
            {
                "table_name": r.table_name,
                "reason": r.reason,
                "count": r.count,
                "last_rejected_at": r.last_rejected_at,
            }
            for r in reasons
        ],
        "records": [
            {
                "rejected_at": r.rejected_at,
                "table_name": r.table_name,
                "reason": r.reason,
                "record": r.record,
            }
            for r in records
        ],
        "limit": limit,
        "offset": offset,
    }
    return json_response(body)


def _summary(summary: TableSummary) -> dict[str, Any]:
    return {
        "name": summary.name,
        "rows": summary.rows,
        "rejected": summary.rejected,
        "subtables": [{"name": s.name, "rows": s.rows} for s in summary.subtables],
    }


@asynccontextmanager
async def _open_table(request: web.Request) -> AsyncIterator[TableReader]:
    """The route's table, or a 404."""
    client_id, integration = _client_id(request), request.match_info["integration"]
    name = request.match_info["table"]
    destination = request.config_dict[destination_key]
    async with destination.open_table(client_id, integration, name) as reader:
        if reader is None:
            raise AdminNotFound(
                f"Client {client_id} has no table {name!r} in integration {integration!r}"
            )
        yield reader


def _client_id(request: web.Request) -> int:
    raw = request.match_info["client_id"]
    # Not int(raw) alone: it also takes " 7", "+7" and "7_0", which name no client folder.
    if not _INTEGER.fullmatch(raw):
        raise AdminNotFound(f"No client {raw!r}: client ids are integers")
    return int(raw)


def _int_query(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise AdminError(f"{name} must be an integer")
    value = int(raw)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"between {low} and {high}"
        raise AdminError(f"{name} must be {bounds}")
    return value


def _float_query(request: web.Request, name: str, default: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _NUMBER.fullmatch(raw):
        raise AdminError(f"{name} must be a number of seconds")
    value = float(raw)
    if not 0 <= value <= high:
        raise AdminError(f"{name} must be between 0 and {high:g} seconds")
    return value


def _where(request: web.Request) -> list[tuple[str, str]]:
    where = []
    for raw in request.query.getall("where", []):
        column, colon, value = raw.partition(":")
        if not colon or not column:
            raise AdminError("where takes column:value, such as where=id:1")
        where.append((column, value))
    return where


def _json_lines(columns: list[str], chunk: list[Any]) -> bytes:
    lines = (
        json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False, default=str)
        for row in chunk
    )
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _csv_lines(chunk: list[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(chunk)
    return buffer.getvalue().encode("utf-8")
