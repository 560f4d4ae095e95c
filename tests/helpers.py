"""What the tests share besides fixtures (those are in conftest.py, and pytest injects them).

- Constants: the test client's ``CLIENT_ID``, the media types ``JSON`` and ``TRANSIT``, ``WIRE``
  (what real clients sent, recorded), ``SYSTEM_COLUMN`` (the loading model's own columns).
- Talking HTTP: ``Reply`` (an answer read whole, whoever read it), ``Api`` (the aiohttp test client
  with a push token: ``push``, ``validate``, ``batch``), ``Admin`` (the same with the admin token,
  paths under the admin prefix), ``free_port`` and ``serving`` for a server process of a test's
  own.
- Making data: ``make_token`` (a push token in a data directory), ``record`` (a push record).
- Reading the store back as a user would, with the stdlib ``sqlite3`` from the documented paths:
  ``db_path``, ``db_rows``, ``table_meta``, ``rejected_rows``, ``table_files``.
- ``bench_script`` and ``load_crash``: a ``bench/`` harness loaded from its file, for the short
  forms of ``make stress``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# Imported here, at collection, never first inside a test: pytester takes sys.modules back after
# each of its tests, and a psycopg imported again would raise errors of classes no one catches.
import psycopg
import pytest
from psycopg.rows import dict_row

from importapi_lite import Settings
from importapi_lite.admin.routes import ADMIN_PREFIX
from importapi_lite.store import open_tokens
from importapi_lite.store.postgres.reading import as_sqlite_holds
from importapi_lite.store.sqlite.paths import (
    REJECTED_TABLE,
    integration_dir,
    table_name_of,
    table_path,
)
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

# A module's tests on both destinations: ``pytestmark = BOTH_DESTINATIONS`` (the ``destination``
# fixture of conftest.py makes ``settings`` point at a PostgreSQL database of its own).
BOTH_DESTINATIONS = pytest.mark.parametrize("destination", ["sqlite", "postgresql"], indirect=True)

CLIENT_ID = 7723
JSON = "application/json"
TRANSIT = "application/transit+json"
# What stitchclient 1.0.1 and target-stitch 4.0.3 sent to a recording server (shared/wire/).
WIRE = Path(__file__).resolve().parent / "wire"
# The loading model's own columns (SPEC §13.2); other _sdc_* columns are a tap's data.
SYSTEM_COLUMN = re.compile(
    r"_sdc_(sequence|table_version|received_at|batched_at|extracted_at|source_key_.*|level_\d+_id)"
    r"|__sdc_primary_key"
)
BENCH = Path(__file__).resolve().parent.parent / "bench"


# --- talking HTTP ------------------------------------------------------------------------------


class Reply:
    """An HTTP answer read whole: status, headers, text, and ``body``: the text parsed as JSON
    when the content type is JSON, else the text itself.

    ``headers`` is any case-insensitive mapping with ``get`` (aiohttp's, ``http.client``'s,
    ``urllib``'s).
    """

    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.content_type: str = headers.get("Content-Type", "")
        self.body: Any = text
        if self.content_type.startswith(JSON):
            try:
                self.body = json.loads(text)
            except ValueError as error:
                raise AssertionError(f"a JSON content type, a body not JSON: {self!r}") from error

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.content_type} {self.text[:500]!r}>"


class Api:
    """The aiohttp test client with a push token: every request's answer as a ``Reply``."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | str | None = None,
        content_type: str | None = JSON,
        token: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        if content_type is not None:
            sent["Content-Type"] = content_type
        if body is not None:
            data = json.dumps(body)
        # Without a Content-Type of ours, aiohttp would add one; a test of "no header" needs none.
        skip = () if content_type is not None else ("Content-Type",)
        async with self.client.request(
            method, path, data=data, headers=sent, skip_auto_headers=skip
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def push(self, records: Any, **kwargs: Any) -> Reply:
        return await self.request("POST", "/v2/import/push", body=records, **kwargs)

    async def validate(self, records: Any, **kwargs: Any) -> Reply:
        return await self.request("POST", "/v2/import/validate", body=records, **kwargs)

    async def batch(self, body: Any, **kwargs: Any) -> Reply:
        return await self.request("POST", "/v2/import/batch", body=body, **kwargs)


class Admin(Api):
    """The test client with the admin token; paths are relative to the admin prefix."""

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", ADMIN_PREFIX + path, content_type=None, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("DELETE", ADMIN_PREFIX + path, content_type=None, **kwargs)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a server process started by the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serving:
    """A server process of the test's own (``serving``)."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path  # its stdout and stderr


@contextmanager
def serving(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Serving]:
    """``importapi-lite serve ARGS`` in a process of its own on a free port, as a user starts it:
    none of this run's ``IMPORTAPI_LITE_*`` variables but those in ``env``. Yields once it
    answers /v2/import/status; then SIGTERM, which must end it with status 0. Its output goes
    to a log beside ``data_dir``, shown when it fails to start or stop. With ``tls`` (a client
    context that trusts its certificate; ARGS give --tls-cert and --tls-key) the URL is https."""
    port = free_port()
    log = data_dir.with_name(data_dir.name + ".log")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMPORTAPI_LITE_")}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "importapi_lite", "serve", "--port", str(port)]
            + ["--data-dir", str(data_dir), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
        )
    try:
        url = f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
        _wait_until_serving(url, process, log, tls)
        yield Serving(url, port, process, log)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def children_of(pid: int) -> list[int]:
    """The server processes ``pid`` started (``serve --processes``; not multiprocessing's
    resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue  # gone meanwhile
        if b"spawn_main" in command:
            found.append(int(child))
    return found


def _wait_until_serving(
    url: str, process: subprocess.Popen[bytes], log: Path, tls: ssl.SSLContext | None = None
) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            status = url + "/v2/import/status"
            with urllib.request.urlopen(status, timeout=2, context=tls) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        assert process.poll() is None, "the server exited:\n" + log.read_text()
        assert time.monotonic() < deadline, "the server did not start:\n" + log.read_text()
        time.sleep(0.05)


# --- making data -------------------------------------------------------------------------------


def make_token(settings: Settings, client_id: int = CLIENT_ID, **kwargs: Any) -> str:
    """A new push token's secret, created where ``settings`` keep tokens."""
    tokens = open_tokens(settings)
    try:
        return tokens.create(client_id, **kwargs)[1]
    finally:
        tokens.close()


def record(table: str, sequence: int, data: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A push record for the test client, keyed on ``id`` unless ``key_names`` is given."""
    return {
        "client_id": CLIENT_ID,
        "table_name": table,
        "sequence": sequence,
        "action": "upsert",
        "key_names": ["id"],
        "data": data,
    } | fields


# --- reading the store back --------------------------------------------------------------------


def db_path(settings: Settings, table: str, integration: str = DEFAULT_INTEGRATION) -> Path:
    return table_path(settings.data_dir, CLIENT_ID, integration, table)


def db_rows(
    settings: Settings,
    table: str,
    *,
    system: bool = False,
    integration: str = DEFAULT_INTEGRATION,
    order_by: str = "rowid",
) -> list[dict[str, Any]]:
    """The table's rows as dicts, read with plain sqlite3 (or psycopg, from PostgreSQL, each
    value as SQLite holds it); system columns only if ``system``.

    A subtable (``orders__line_items``) is read from its top-level table's file.
    """
    if settings.destination.is_postgresql:
        rows = pg_rows(settings, integration, table, order_by)
        if system:
            return rows
        return [{k: v for k, v in r.items() if not SYSTEM_COLUMN.fullmatch(k)} for r in rows]
    parts = table.split("__")
    files = [db_path(settings, "__".join(parts[:n]), integration) for n in range(len(parts), 0, -1)]
    path = next((f for f in files if f.exists()), None)
    if path is None:
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        quoted = '"' + table.replace('"', '""') + '"'
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        rows = (
            [dict(r) for r in db.execute(f"SELECT * FROM {quoted} ORDER BY {order_by}")]
            if exists
            else []
        )
    db.close()
    if system:
        return rows
    return [{k: v for k, v in r.items() if not SYSTEM_COLUMN.fullmatch(k)} for r in rows]


def table_meta(settings: Settings, table: str) -> dict[str, Any]:
    """The table's row in its file's ``_sdc_table_meta`` (PostgreSQL: ``_importapi.tables``)."""
    if settings.destination.is_postgresql:
        found = pg_query(
            settings,
            "SELECT table_name, parent_table, key_names, active_version, bookmark_names, "
            "created_at FROM _importapi.tables WHERE schema_name = %s AND table_name = %s",
            (DEFAULT_INTEGRATION, table),
        )
        return found[0]
    with sqlite3.connect(db_path(settings, table)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM _sdc_table_meta WHERE table_name = ?", (table,)).fetchone()
    db.close()
    return dict(row)


def rejected_rows(settings: Settings) -> list[dict[str, Any]]:
    """The test client's ``_sdc_rejected`` rows, oldest first, each ``record`` parsed."""
    if settings.destination.is_postgresql:
        exists = pg_query(
            settings,
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            (DEFAULT_INTEGRATION, REJECTED_TABLE),
        )
        rows = pg_rows(settings, DEFAULT_INTEGRATION, REJECTED_TABLE, "ctid") if exists else []
        for row in rows:
            row["record"] = json.loads(row["record"])
        return rows
    path = integration_dir(settings.data_dir, CLIENT_ID, DEFAULT_INTEGRATION) / (
        REJECTED_TABLE + ".sqlite3"
    )
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute(f"SELECT * FROM {REJECTED_TABLE} ORDER BY rowid")]
    db.close()
    for row in rows:
        row["record"] = json.loads(row["record"])
    return rows


def table_files(settings: Settings) -> list[str]:
    """Every file written under the data dir, relative, sorted (WAL side files left out)."""
    root = settings.data_dir
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    )


def stored_tables(settings: Settings) -> list[str]:
    """The test client's top-level tables that exist, by name, in either destination."""
    if settings.destination.is_postgresql:
        found = (
            pg_query(
                settings,
                "SELECT table_name FROM _importapi.tables WHERE schema_name = %s "
                "AND parent_table IS NULL ORDER BY table_name",
                (DEFAULT_INTEGRATION,),
            )
            if pg_query(settings, "SELECT 1 FROM pg_namespace WHERE nspname = '_importapi'")
            else []
        )
        return [r["table_name"] for r in found]
    folder = integration_dir(settings.data_dir, CLIENT_ID, DEFAULT_INTEGRATION)
    return sorted(table_name_of(p) for p in folder.glob("*.sqlite3") if p.stem != REJECTED_TABLE)


def sqlite_only(settings: Settings, why: str = "reads the SQLite destination's own files") -> None:
    """Skip on PostgreSQL a test of what only the SQLite destination has (its files)."""
    if settings.destination.is_postgresql:
        pytest.skip(why)


# --- PostgreSQL ---------------------------------------------------------------------------------


def pg_query(settings: Settings, query: str, params: Any = None) -> list[dict[str, Any]]:
    """Rows of a query on the settings' PostgreSQL database, as dicts of plain values. Without
    ``params`` the query is sent as it is: a name in it may hold a "%"."""
    with psycopg.connect(str(settings.destination), row_factory=dict_row) as db:
        return [
            {k: as_sqlite_holds(v) for k, v in row.items()} for row in db.execute(query, params)
        ]


def pg_rows(settings: Settings, schema: str, table: str, order_by: str) -> list[dict[str, Any]]:
    """A PostgreSQL table's rows, as ``db_rows`` reads a SQLite one: values as SQLite holds
    them; for ``rowid``, in key order (an append-only table's: insertion order)."""
    if not pg_query(
        settings,
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, table),
    ):
        return []
    quoted = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
    order = order_by
    if order_by == "rowid":  # PostgreSQL has no insertion order: key order, as SQLite's reads
        keys = pg_query(
            settings,
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
            "ORDER BY array_position(i.indkey, a.attnum)",
            (quoted,),
        )
        names = [k["attname"] for k in keys]
        order = (
            "ctid"
            if names in ([], ["__sdc_primary_key"])
            else ", ".join('"' + n.replace('"', '""') + '"' for n in names)
        )
    return pg_query(settings, f"SELECT * FROM {quoted} ORDER BY {order}")


# --- the bench harnesses -----------------------------------------------------------------------


def bench_script(file_name: str, module_name: str) -> ModuleType:
    """A ``bench/`` script (not a package module) loaded from its file, once per session."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCH / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def load_crash() -> ModuleType:
    """``bench/crash.py``: the crash harness, and its ``Server`` (``importapi-lite serve`` as a
    restartable child process)."""
    return bench_script("crash.py", "importapi_crash")
