"""``ingest/workers.py``: bodies prepared in worker processes load exactly as on the event loop.

Two real servers, one that sends every body to a worker (``offload_bytes=0``) and one with no
workers, get the same requests; their answers and every table of every file must be the same,
value by value and type by type (only the two receive-time columns differ).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import io
import logging
import os
import secrets
import signal
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from transit.writer import Writer

from importapi_lite import Settings, create_app
from importapi_lite.models import TableBatch, Upsert
from importapi_lite.observe.metrics import REGISTRY
from importapi_lite.plan.plans import plan_load, rebase
from importapi_lite.store.sqlite import SCRATCH_DIR
from importapi_lite.web.keys import workers_key

from .helpers import TRANSIT, Api, db_rows, make_token, pg_query, pg_rows, record
from .pg_cluster import Cluster

RANDOM = "__sdc_primary_key"
TIMES = ("_sdc_received_at", "_sdc_batched_at", "_sdc_rejected_at", "created_at")  # clocks


def batch(table: str, messages: list[dict[str, Any]], schema: Any = None, **extra: Any) -> Any:
    return {
        "table_name": table,
        "schema": schema or {"type": "object"},
        "messages": messages,
        **extra,
    }


def upsert(sequence: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"action": "upsert", "sequence": sequence, "data": data}


def transit(records: list[dict[str, Any]]) -> str:
    stream = io.StringIO()
    Writer(stream, "json").write(records)
    return stream.getvalue()


NESTED = {
    "id": 1,
    "name": "Finn",
    "address": {"city": "Ooo", "geo": {"lat": 1.5}},
    "tags": ["hero", "human"],
    "friends": [{"name": "Jake", "since": 2010, "pets": [["a", "b"], []]}],
}
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "at": {"type": "string", "format": "date-time"},
        "n": {"type": ["null", "number"]},
    },
}

# (endpoint, body or text, media type): every shape of the loading model, and some failures.
CASES: list[tuple[str, Any, str]] = [
    ("batch", batch("flat", [upsert(i, {"id": i, "v": f"x{i}"}) for i in range(50)]), ""),
    (
        "batch",
        batch(
            "typed",
            [
                upsert(1, {"id": 1, "at": "2026-01-01T00:00:00Z", "n": 1}),
                upsert(2, {"id": 2, "at": "not a date", "n": 2.5}),
                upsert(3, {"id": 3, "at": "2026-01-01T01:00:00+01:00", "n": None}),
                upsert(4, {"id": 1, "at": "2026-06-01T00:00:00.000000Z", "n": 10**30}),
            ],
            SCHEMA,
            key_names=["id"],
        ),
        "",
    ),
    (
        "batch",
        batch(
            "versions",
            [
                upsert(1, {"id": 1, "tags": [1, 2]}),
                {"action": "activate_version", "sequence": 2},
                upsert(3, {"id": 2, "tags": [3]}),
                upsert(0, {"id": 2, "tags": [4]}),  # stale: sequence 0 < 3
            ],
            {"type": "object", "properties": {"id": {"type": "integer"}}},
            key_names=["id"],
            table_version=7,
        ),
        "",
    ),
    ("batch", batch("flat", [upsert(100, {"id": 3, "v": 1, "w": True})]), ""),  # new columns
    ("push", [record("customers", 100, NESTED), record("customers", 101, NESTED | {"id": 2})], ""),
    ("push", [record("customers", 99, NESTED | {"name": "old"})], ""),  # stale
    (
        "push",
        [
            record("customers", 200, {"id": 3, "tags": []}),
            record("orders", 1, {"id": "a", "lines": [{"sku": 1}, {"sku": 2}]}),
            record("x" * 64, 1, {"id": 1}),  # a table name too long: rejected
            record("_sdc_bad", 1, {"id": 1}),  # reserved prefix: rejected
            record("orders", 2, {"id": "b", "_sdc_sequence": 1}),  # a system column: rejected
            record("orders", 5, {"id": "e", "_sdc_source_file": "a.csv"}),  # a tap's: loads
            record("orders", 3, {"id": "c", "sku": 1}, key_names=["sku"]),  # keys differ
        ],
        "",
    ),
    ("push", [record("orders", 4, {"id": "d", "lines": [{"sku": 3}]})], ""),
    ("batch", batch("keyless", [upsert(i, {"v": i, "w": [i]}) for i in range(3)]), ""),
    (
        "push",
        transit(
            [
                record(
                    "typed_push",
                    i,
                    {
                        "id": uuid.UUID(int=i),
                        "at": dt.datetime(2026, 1, 1, i, tzinfo=dt.UTC),
                        "d": decimal.Decimal(f"{i}.25"),
                        "big": 2**70 + i,
                    },
                )
                for i in range(5)
            ]
        ),
        TRANSIT,
    ),
    ("batch", batch("flat", [upsert(1, {"id": 1}), upsert("x", {})]), ""),  # 400, nothing stored
    ("batch", '{"table_name": "flat", "messages": [', ""),  # malformed
    ("push", [record("customers", 1, {"id": []})], ""),  # 400 push
]


async def _server(aiohttp_client: Any, tmp_path: Path, name: str, **settings: Any) -> Any:
    s = Settings(data_dir=tmp_path / name, port=0, **settings)
    client = await aiohttp_client(create_app(s))
    return s, Api(client, make_token(s))


async def _send(api: Api, endpoint: str, body: Any, media_type: str) -> tuple[int, Any]:
    content_type = media_type or "application/json"
    data = body if isinstance(body, str) else None
    reply = await api.request(
        "POST",
        f"/v2/import/{endpoint}",
        body=None if data is not None else body,
        data=data,
        content_type=content_type,
    )
    return reply.status, reply.body


def dump(data_dir: Path) -> dict[str, Any]:
    """Every table of every database file, with SQLite's type of every value."""
    found: dict[str, Any] = {}
    for path in sorted(data_dir.rglob("*.sqlite3")):
        if path.name == "tokens.sqlite3" or SCRATCH_DIR in path.parts:
            continue
        db = sqlite3.connect(path)
        try:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for name in names:
                columns = [r[1] for r in db.execute("SELECT * FROM pragma_table_info(?)", (name,))]
                kept = [c for c in columns if c not in TIMES]
                # Key-less tables' primary keys are random UUIDs: their type must match.
                quoted = ", ".join(
                    f'typeof("{c}")' if c.endswith(RANDOM) else f'"{c}", typeof("{c}")'
                    for c in kept
                )
                rows = db.execute(f'SELECT {quoted} FROM "{name}" ORDER BY rowid').fetchall()
                if name == "_sdc_columns":
                    rows = sorted(rows)
                found[f"{path.relative_to(data_dir)}:{name}"] = (kept, rows)
        finally:
            db.close()
    return found


async def test_offloaded_bodies_load_exactly_as_on_the_event_loop(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    inline_settings, inline = await _server(aiohttp_client, tmp_path, "inline", workers=0)
    offload_settings, offload = await _server(
        aiohttp_client, tmp_path, "offload", workers=1, offload_bytes=0
    )
    for endpoint, body, media_type in CASES:
        expected = await _send(inline, endpoint, body, media_type)
        got = await _send(offload, endpoint, body, media_type)
        assert got == expected, (endpoint, body)
    assert dump(offload_settings.data_dir) == dump(inline_settings.data_dir)
    tables = {name.split(":")[1] for name in dump(offload_settings.data_dir)}
    # Every shape loaded: nested arrays, activate_version, split columns, rejections.
    assert {"customers__friends__pets__value", "versions__tags", "keyless__w"} <= tables
    assert "_sdc_rejected" in tables and "at__st" in db_rows(offload_settings, "typed")[1]
    assert not list((offload_settings.data_dir / SCRATCH_DIR).iterdir())  # staging cleaned


KEYED = {"type": "object", "properties": {"id": {"type": "integer"}}}


async def test_plans_for_a_layout_that_only_grew_since_load_without_planning_again(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Concurrent bodies for one new table, each with a column of its own: every worker plans
    against the empty layout, and each plan still holds once the others have loaded."""
    settings, api = await _server(aiohttp_client, tmp_path, "s", workers=2, offload_bytes=0)
    bodies = [
        batch("t", [upsert(1, {"id": n, f"c{n}": n})] * 200, KEYED, key_names=["id"])
        for n in range(6)
    ]
    with caplog.at_level(logging.DEBUG, logger="importapi_lite.ingest.pipeline"):
        replies = await asyncio.gather(*(api.batch(b) for b in bodies))
    assert [r.status for r in replies] == [201] * 6
    assert "planned for a layout that changed" not in caplog.text
    rows = db_rows(settings, "t", order_by="id")
    assert [r["id"] for r in rows] == list(range(6))
    # Each row has its own column, and NULL in the columns the others added.
    assert all(r[f"c{n}"] == (n if n == r["id"] else None) for r in rows for n in range(6))


async def test_plans_that_no_longer_hold_are_made_again(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two concurrent bodies give one new column two types: the one that loads second would
    have split it had it known, so it is planned again, and splits."""
    settings, api = await _server(aiohttp_client, tmp_path, "s", workers=2, offload_bytes=0)
    bodies = [
        batch("t", [upsert(1, {"id": n, "v": value})] * 200, KEYED, key_names=["id"])
        for n, value in enumerate([1, "x"])
    ]
    with caplog.at_level(logging.DEBUG, logger="importapi_lite.ingest.pipeline"):
        replies = await asyncio.gather(*(api.batch(b) for b in bodies))
    assert [r.status for r in replies] == [201] * 2
    assert "planned for a layout that changed" in caplog.text
    columns = set(db_rows(settings, "t")[0])
    assert columns in ({"id", "v", "v__st"}, {"id", "v", "v__it"})


@pytest.mark.crash  # SIGKILLs the worker processes
async def test_a_lost_worker_leaves_its_request_to_the_event_loop(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    s = Settings(data_dir=tmp_path / "s", port=0, workers=1, offload_bytes=0)
    app = create_app(s)
    api = Api(await aiohttp_client(app), make_token(s))
    assert (await api.push([record("t", 1, {"id": 1})])).status == 201
    pool = app[workers_key]._pool
    assert pool is not None
    restarts = "importapi_lite_worker_restarts_total"
    before = REGISTRY.get_sample_value(restarts)
    for process in list(pool._processes.values()):  # noqa: SLF001 - a worker dies mid-service
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    assert (await api.push([record("t", 2, {"id": 2})])).status == 201  # on the event loop
    assert (await api.push([record("t", 3, {"id": 3})])).status == 201  # a new pool
    assert [r["id"] for r in db_rows(s, "t")] == [1, 2, 3]
    assert REGISTRY.get_sample_value(restarts) == (before or 0) + 1  # in the metrics


@pytest.mark.parametrize("workers", [0, 1])
async def test_small_bodies_stay_on_the_event_loop(
    aiohttp_client: Any, tmp_path: Path, workers: int
) -> None:
    s = Settings(data_dir=tmp_path / "s", port=0, workers=workers)
    app = create_app(s)
    api = Api(await aiohttp_client(app), make_token(s))
    assert (await api.push([record("t", 1, {"id": 1})])).status == 201
    assert app[workers_key]._pool is None  # noqa: SLF001 - no process was started for it


def _plan(table: str, data: list[dict[str, Any]], layout: Any, keys: tuple[str, ...] = ("id",)):
    messages = [Upsert(i, d, keys) for i, d in enumerate(data)]
    return plan_load(TableBatch(table, messages), layout, "2026-01-01T00:00:00.000000Z", "t")


REBASE_CASES = {
    "columns of its own": ([{"id": 1, "a": 1}], [{"id": 2, "b": "x"}], True),
    "the same columns": ([{"id": 1, "a": 1}], [{"id": 2, "a": 2}], True),
    "a subtable each": ([{"id": 1, "a": [1]}], [{"id": 2, "b": [{"c": 1}], "o": {"p": 1}}], True),
    "one subtable, new columns": ([{"id": 1, "a": [{"x": 1}]}], [{"id": 2, "a": [{"y": 1}]}], True),
    "a column of another type": ([{"id": 1, "a": 1}], [{"id": 2, "a": "x"}], False),
    "a column differing by case": ([{"id": 1, "A": 1}], [{"id": 2, "a": 1}], False),
    "a key of another type": ([{"id": 1}], [{"id": "x"}], False),
}


@pytest.mark.parametrize(("first", "second", "holds"), REBASE_CASES.values(), ids=REBASE_CASES)
def test_a_rebased_plan_is_the_plan_made_for_the_new_layout(
    first: list[dict[str, Any]], second: list[dict[str, Any]], holds: bool
) -> None:
    """A plan made for the empty layout, rebased onto the layout another load left, against the
    plan made for that layout in the first place: the same tables, columns, rows, or None."""
    grown = _plan("t", first, {}).layout
    rebased = rebase(_plan("t", second, {}), "t", {}, grown)
    fresh = _plan("t", second, grown)
    if not holds:
        assert rebased is None
        return
    assert rebased is not None
    assert rebased.layout == fresh.layout
    assert rebased.table == fresh.table
    assert (rebased.new_tables, rebased.new_columns) == (fresh.new_tables, fresh.new_columns)
    assert [[p.row for p in s.points] for s in rebased.steps] == [
        [p.row for p in s.points] for s in fresh.steps
    ]
    assert rebased.rejected == fresh.rejected


def test_a_plan_for_keys_the_table_no_longer_has_does_not_hold() -> None:
    grown = _plan("t", [{"id": 1, "k": 1}], {}, keys=("k",)).layout
    assert rebase(_plan("t", [{"id": 2}], {}), "t", {}, grown) is None


def pg_dump(settings: Settings) -> dict[str, Any]:
    """Every table of the PostgreSQL destination's integration schemas and ours, rows sorted (a
    table there has no insertion order), the clocks and random keys left out."""
    found: dict[str, Any] = {}
    tables = pg_query(
        settings,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
        "AND table_name NOT IN ('tokens', 'admin_token') ORDER BY 1, 2",
    )
    for table in tables:
        schema, name = table["table_schema"], table["table_name"]
        columns = pg_query(
            settings,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        )
        kept = [
            (c["column_name"], c["data_type"])
            for c in columns
            if c["column_name"] not in TIMES and not c["column_name"].endswith(RANDOM)
        ]
        selected = ", ".join('"{}"'.format(c.replace('"', '""')) for c, _ in kept)
        query = f'SELECT {selected} FROM "{schema}"."{name}"'  # names of this test's own
        rows = sorted(repr(sorted(r.items())) for r in pg_query(settings, query))
        found[f"{schema}.{name}"] = (kept, rows)
    return found


async def test_offloaded_bodies_load_into_postgresql_exactly_as_on_the_event_loop(
    aiohttp_client: Any, tmp_path: Path, postgres_cluster: Cluster
) -> None:
    """As above, into PostgreSQL, where a worker plans a load and writes its rows as COPY text;
    a body with a value PostgreSQL refuses (a NUL in text) is planned again on the event loop,
    which finds the one record to reject."""
    name = f"workers_{secrets.token_hex(4)}"
    inline_url = postgres_cluster.create_database(name + "_inline")
    offload_url = postgres_cluster.create_database(name + "_offload")
    inline_settings, inline = await _server(
        aiohttp_client, tmp_path, "inline", workers=0, destination=inline_url
    )
    offload_settings, offload = await _server(
        aiohttp_client, tmp_path, "offload", workers=1, offload_bytes=0, destination=offload_url
    )
    refused = [record("nul", i, {"id": i, "s": "\u0000" if i == 7 else "x"}) for i in range(50)]
    for endpoint, body, media_type in [*CASES, ("push", refused, "")]:
        expected = await _send(inline, endpoint, body, media_type)
        got = await _send(offload, endpoint, body, media_type)
        assert got == expected, (endpoint, body)
    assert pg_dump(offload_settings) == pg_dump(inline_settings)
    tables = set(pg_dump(offload_settings))
    assert {"import_api.customers__friends__pets__value", "import_api._sdc_rejected"} <= tables
    assert [r["id"] for r in pg_rows(offload_settings, "import_api", "nul", "id")] == [
        i for i in range(50) if i != 7
    ]
