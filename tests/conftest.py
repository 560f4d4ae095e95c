"""Fixtures: a real server on a free port (``aiohttp_client``), real SQLite files under tmp_path.

``api`` talks HTTP to the server with a valid push token; ``db_rows`` reads a table back with the
stdlib ``sqlite3`` from the documented file path, as a user would.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.store.sqlite.paths import REJECTED_TABLE, integration_dir, table_path
from importapi_lite.store.sqlite.tokens import SqliteTokenStore
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=0)


def make_token(settings: Settings, client_id: int = CLIENT_ID, **kwargs: Any) -> str:
    tokens = SqliteTokenStore(settings.data_dir)
    try:
        return tokens.create(client_id, **kwargs)[1]
    finally:
        tokens.close()


@pytest.fixture
def token(settings: Settings) -> str:
    return make_token(settings)


class Reply:
    """A response read whole: status, headers, and the body as JSON when it is JSON."""

    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text
        self.content_type = headers.get("Content-Type", "")
        self.body: Any = json.loads(text) if self.content_type.startswith(JSON) else text

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.text[:300]}>"


class Api:
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


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    return await aiohttp_client(create_app(settings))


@pytest.fixture
def api(client: Any, token: str) -> Api:
    return Api(client, token)


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
    """The table's rows as dicts, read with plain sqlite3; system columns only if ``system``.

    A subtable (``orders__line_items``) is read from its top-level table's file.
    """
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
    with sqlite3.connect(db_path(settings, table)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM _sdc_table_meta WHERE table_name = ?", (table,)).fetchone()
    db.close()
    return dict(row)


def rejected_rows(settings: Settings) -> list[dict[str, Any]]:
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


BENCH = Path(__file__).resolve().parent.parent / "bench"


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
