"""The official clients, unchanged, against a real server: stitchclient 1.0.1, target-stitch 4.0.3.

Both live in one virtualenv of their own (``.venv-clients``, built on first use by
``tests/clients/install.sh`` with the other clients' venvs; see ``tests/clients/NOTES.md`` for why
never the server's venv) and run as subprocesses, so the server is reached over real TCP exactly
as in production. Older clients: ``test_old_clients.py``; a Singer SDK tap piped into
target-stitch: ``test_singer_sdk_pipeline.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .clients.harness import (
    CLIENTS,
    STITCHCLIENT_NESTED,
    STITCHCLIENT_ROWS,
    TARGET_STITCH_4,
    batch_urls_config,
    install_clients,
    run,
    singer_stream,
    write_config,
)
from .helpers import (
    BOTH_DESTINATIONS,
    CLIENT_ID,
    db_rows,
    rejected_rows,
    sqlite_only,
    table_meta,
)

pytestmark = [pytest.mark.clients, BOTH_DESTINATIONS]


@pytest.fixture(scope="session")
def clients_bin() -> Path:
    return install_clients()[TARGET_STITCH_4]


def singer_config(tmp_path: Path, client: Any, token: str) -> Path:
    url = str(client.make_url("/v2/import/batch"))
    return write_config(tmp_path, batch_urls_config(url, token, CLIENT_ID))


async def test_stitchclient_pushes_transit_and_the_typed_rows_land(
    client: Any, token: str, settings: Any, clients_bin: Path
) -> None:
    url = str(client.make_url("/v2/import/push"))
    code, _, err = await run(
        clients_bin / "python", CLIENTS / "stitchclient_push.py", url, token, CLIENT_ID
    )
    assert code == 0, err
    assert db_rows(settings, "pc") == STITCHCLIENT_ROWS
    nested = db_rows(settings, "pc__nested__k", system=True)
    assert [
        (r["_sdc_source_key_id"], r["_sdc_level_0_id"], r["value"]) for r in nested
    ] == STITCHCLIENT_NESTED


async def test_stitchclient_sees_a_rejection_as_an_error(
    client: Any, settings: Any, clients_bin: Path
) -> None:
    url = str(client.make_url("/v2/import/push"))
    code, _, err = await run(
        clients_bin / "python", CLIENTS / "stitchclient_push.py", url, "nope", CLIENT_ID
    )
    assert code == 1
    assert '401 - b\'{"message":"Not Authorized"}\'' in err
    assert db_rows(settings, "pc") == []


async def test_target_stitch_runs_the_shipped_singer_stream(
    client: Any, token: str, settings: Any, clients_bin: Path, tmp_path: Path
) -> None:
    config = singer_config(tmp_path, client, token)
    stream = (CLIENTS / "singer_stream.jsonl").read_text()
    code, out, err = await run(clients_bin / "target-stitch", "-c", config, stdin=stream)
    assert code == 0, err
    # target-stitch echoes STATE only after every earlier request got a 2xx with a JSON body.
    assert out.strip().splitlines()[-1] == '{"bookmarks": {"accounts": {"version": 1}}}'
    rows = db_rows(settings, "accounts", system=True)
    assert [(r["id"], r["name"], r["_sdc_table_version"]) for r in rows] == [
        (0, "a0", 1),
        (1, "a1", 1),
        (2, "a2", 1),
    ]
    assert {r["_sdc_extracted_at"] for r in rows} == {"2026-11-01T00:00:00.000000Z"}
    assert table_meta(settings, "accounts")["active_version"] == 1


async def test_target_stitch_full_table_resync_drops_rows_gone_from_the_source(
    client: Any, token: str, settings: Any, clients_bin: Path, tmp_path: Path
) -> None:
    config = singer_config(tmp_path, client, token)
    for version, ids in ((1, [0, 1, 2]), (2, [0, 2])):
        code, _, err = await run(
            clients_bin / "target-stitch", "-c", config, stdin=singer_stream(version, ids)
        )
        assert code == 0, err
    assert db_rows(settings, "accounts") == [{"id": 0, "name": "a0-v2"}, {"id": 2, "name": "a2-v2"}]
    assert table_meta(settings, "accounts")["active_version"] == 2
    assert rejected_rows(settings) == []


async def test_target_stitch_stops_on_a_400_and_prints_the_stitch_error(
    client: Any, token: str, settings: Any, clients_bin: Path, tmp_path: Path
) -> None:
    config = singer_config(tmp_path, client, token)
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "integer"}},
    }
    # target-stitch does not validate records itself; the server's schema check refuses them.
    code, out, err = await run(
        clients_bin / "target-stitch", "-c", config, stdin=singer_stream(1, [0], schema)
    )
    assert code != 0
    assert "Error persisting data to Stitch: 400" in err
    assert "did not conform to schema" in err
    assert out == "" and db_rows(settings, "accounts") == []


NESTED_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "profile": {
            "type": ["null", "object"],
            "properties": {"age": {"type": ["null", "integer"]}},
        },
        "orders": {
            "type": ["null", "array"],
            "items": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "qty": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "amount": {"type": ["null", "number"]},
        "updated": {"type": ["null", "string"], "format": "date-time"},
    },
}


async def test_target_stitch_nested_singer_records_load_into_subtables(
    client: Any, token: str, settings: Any, clients_bin: Path, tmp_path: Path
) -> None:
    record = {
        "id": 1,
        "profile": {"age": 30},
        "orders": [{"sku": "a", "qty": 1, "tags": ["x", "y"]}, {"sku": "b", "qty": 2, "tags": []}],
        "amount": 15,
        "updated": "2026-01-02T03:04:05Z",
    }
    lines = [
        {"type": "SCHEMA", "stream": "people", "schema": NESTED_SCHEMA, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "people", "record": record},
        {"type": "STATE", "value": {"done": True}},
    ]
    stream = "\n".join(json.dumps(line) for line in lines) + "\n"
    config = singer_config(tmp_path, client, token)
    code, out, err = await run(clients_bin / "target-stitch", "-c", config, stdin=stream)
    assert code == 0, err
    assert out.strip() == '{"done": true}'
    assert db_rows(settings, "people") == [
        {"id": 1, "profile__age": 30, "amount": 15.0, "updated": "2026-01-02T03:04:05.000000Z"}
    ]
    assert db_rows(settings, "people__orders") == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]
    tags = db_rows(settings, "people__orders__tags", system=True)
    assert [
        (t["_sdc_source_key_id"], t["_sdc_level_0_id"], t["_sdc_level_1_id"], t["value"])
        for t in tags
    ] == [
        (1, 0, 0, "x"),
        (1, 0, 1, "y"),
    ]


WIDE_PUSH = """
import collections, collections.abc, sys
for name in collections.abc.__all__:
    if not hasattr(collections, name):
        setattr(collections, name, getattr(collections.abc, name))
from stitchclient.client import Client

url, token = sys.argv[1:3]
with Client(7723, token, override_stitch_url=url) as client:
    client.push({"action": "upsert", "table_name": "wide", "key_names": ["id"], "sequence": 1,
                 "data": {"id": 1, **{f"k{i:04d}": i for i in range(1960)}}})
    client.push({"action": "upsert", "table_name": "wide", "key_names": ["id"], "sequence": 2,
                 "data": {"id": 2, "k0000": -1, "k1959": -2}})
"""


async def test_stitchclient_bodies_past_the_transit_cache_size_decode_right(
    client: Any, token: str, settings: Any, clients_bin: Path
) -> None:
    """More than 1,936 cached strings in one body (SPEC §11.3, §15 Q10); SQLite holds 2,000
    columns, so one record of 1,960 fields is about the widest that gets there (PostgreSQL holds
    1,600: the record would go to _sdc_rejected)."""
    sqlite_only(settings, "PostgreSQL holds at most 1,600 columns")
    url = str(client.make_url("/v2/import/push"))
    code, _, err = await run(clients_bin / "python", "-c", WIDE_PUSH, url, token)
    assert code == 0, err
    first, second = db_rows(settings, "wide")
    assert first == {"id": 1, **{f"k{i:04d}": i for i in range(1960)}}
    assert {k: v for k, v in second.items() if v is not None} == {"id": 2, "k0000": -1, "k1959": -2}
