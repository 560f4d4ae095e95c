"""The CLI's store commands: ``tables``, ``rows``, ``rejected``, ``path``, ``reset`` and
``admin-token``. Thin, like cli.py.

They read and reset through the destination exactly as the admin API does. A reset here cannot
close a running server's connections: with a server up, reset through the admin API instead.
"""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .settings import Settings
from .store import new_admin_secret, open_destination
from .store.destination import Destination, IntegrationSummary, TableReader


class CommandError(Exception):
    """A store command that cannot be carried out (shown to the CLI user)."""


def admin_token(settings: Settings, *, rotate: bool) -> int:
    secret = new_admin_secret(settings, rotate=rotate)
    if secret is None:
        raise CommandError(
            "an admin token exists already, and PostgreSQL keeps only its SHA-256, so it cannot "
            "be shown again; `importapi-lite admin-token --rotate` makes a new one (the old one "
            "stops working in every server within a second)"
        )
    print(secret)
    return 0


def tables(settings: Settings, client_id: int | None, integration: str | None) -> int:
    """Every table with its rows, its rejected records (a subtable has none of its own: they
    count for its top-level table) and its file, for ``sqlite3``."""
    found = asyncio.run(_integrations(settings, client_id, integration))
    print("client_id\tintegration\ttable\trows\trejected\tpath")
    for summary in found:
        for table in summary.tables:
            for each in (table, *table.subtables):
                rejected = each.rejected if each is table else "-"
                path = "-" if each.path is None else each.path
                fields = (summary.client_id, summary.integration, each.name, each.rows)
                print("\t".join(map(str, (*fields, rejected, path))))
    return 0


async def _integrations(
    settings: Settings, client_id: int | None, integration: str | None
) -> list[IntegrationSummary]:
    """The integrations holding data, only ``client_id``'s and ``integration`` if given."""
    async with _opened(settings) as destination:
        found = await destination.integrations()
    return [
        summary
        for summary in found
        if client_id in (None, summary.client_id) and integration in (None, summary.integration)
    ]


def rejected(
    settings: Settings,
    table: str | None,
    client_id: int | None,
    integration: str | None,
    records: int,
) -> int:
    """Why records were rejected, by table and reason; with ``records``, that many of the
    newest rejected records too, as JSON Lines."""
    return asyncio.run(_rejected(settings, table, client_id, integration, records))


async def _rejected(
    settings: Settings,
    table: str | None,
    client_id: int | None,
    integration: str | None,
    records: int,
) -> int:
    print("client_id\tintegration\ttable\tcount\tlast_rejected_at\treason")
    found = []
    async with _opened(settings) as destination:
        for summary in await _integrations(settings, client_id, integration):
            where = (summary.client_id, summary.integration, table)
            for reason in await destination.rejection_reasons(*where):
                fields = (summary.client_id, summary.integration, reason.table_name, reason.count)
                print("\t".join(map(str, (*fields, reason.last_rejected_at, reason.reason))))
            if records:
                _, page = await destination.rejected_records(*where, limit=records)
                found += [(summary, r) for r in page]
    for summary, record in found:
        line = {
            "client_id": summary.client_id,
            "integration": summary.integration,
            "table_name": record.table_name,
            "rejected_at": record.rejected_at,
            "reason": record.reason,
            "record": record.record,
        }
        print(json.dumps(line, ensure_ascii=False, default=str))
    return 0


def path(settings: Settings, table: str, client_id: int | None, integration: str) -> int:
    """The database file that holds ``table``: its name is encoded (``Users`` is
    ``%55sers.sqlite3``), and ``sqlite3`` would make a new empty file of a misspelt one."""
    print(asyncio.run(_path(settings, table, client_id, integration)))
    return 0


async def _path(settings: Settings, table: str, client_id: int | None, integration: str) -> str:
    async with _table(settings, table, client_id, integration) as reader:
        if reader.path is None:
            raise CommandError(f"table {table!r} is not stored in a file of its own")
        return str(reader.path)


def rows(
    settings: Settings,
    table: str,
    client_id: int | None,
    integration: str,
    format_: str,
) -> int:
    asyncio.run(_rows(settings, table, client_id, integration, format_))
    return 0


async def _rows(
    settings: Settings,
    table: str,
    client_id: int | None,
    integration: str,
    format_: str,
) -> None:
    async with _table(settings, table, client_id, integration) as reader:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if format_ == "csv":
            writer.writerow(reader.columns)
        async for chunk in reader.chunks():
            for row in chunk:
                if format_ == "csv":
                    writer.writerow(row)
                else:
                    record = dict(zip(reader.columns, row, strict=True))
                    print(json.dumps(record, ensure_ascii=False, default=str))


def reset_store(
    settings: Settings,
    client_id: int | None,
    integration: str,
    table: str | None,
) -> int:
    print(asyncio.run(_reset(settings, client_id, integration, table)))
    return 0


async def _reset(
    settings: Settings, client_id: int | None, integration: str, table: str | None
) -> str:
    async with _opened(settings) as destination:
        if table is not None:
            client_id = await _client_with(destination, table, client_id, integration)
            removed = await destination.reset_table(client_id, integration, table)
            what = f"table {table!r} of client {client_id}, {integration}"
        elif client_id is not None:
            removed = await destination.reset_client(client_id)
            what = f"every table of client {client_id}"
        else:
            count = await destination.reset_everything()
            return f"removed every table of {count} client(s); tokens are kept"
    return f"removed {what}" if removed else f"nothing to remove: no {what}"


@asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[Destination]:
    destination = open_destination(settings)
    try:
        yield destination
    finally:
        await destination.close()


@asynccontextmanager
async def _table(
    settings: Settings, table: str, client_id: int | None, integration: str
) -> AsyncIterator[TableReader]:
    """The table, of ``client_id`` or of the one client that has it; else a CommandError."""
    async with _opened(settings) as destination:
        client_id = await _client_with(destination, table, client_id, integration)
        async with destination.open_table(client_id, integration, table) as reader:
            if reader is None:
                raise CommandError(f"client {client_id} has no table {table!r} in {integration!r}")
            yield reader


async def _client_with(
    destination: Destination, table: str, client_id: int | None, integration: str
) -> int:
    """``client_id`` if given, else the one client that has the table."""
    if client_id is not None:
        return client_id
    having = []
    for summary in await destination.integrations():
        if summary.integration != integration:
            continue
        async with destination.open_table(summary.client_id, integration, table) as found:
            if found is not None:
                having.append(summary.client_id)
    if len(having) == 1:
        return having[0]
    if not having:
        raise CommandError(f"no client has a table {table!r} in {integration!r}")
    clients = ", ".join(map(str, having))
    raise CommandError(f"clients {clients} all have a table {table!r}; pass --client-id")
