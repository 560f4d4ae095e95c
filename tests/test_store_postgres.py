"""store/postgres: the PostgreSQL destination, against a real PostgreSQL the tests start.

The loading model's own tests run on both destinations (``BOTH_DESTINATIONS`` in their modules);
these are what only PostgreSQL has: its schema and types, its limits, the values it refuses, its
tokens shared by processes, its COPY path for big steps.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from typing import Any

import pytest

from importapi_lite import Settings

from .helpers import CLIENT_ID, Api, db_rows, pg_query, record, rejected_rows, table_meta
from .pg_cluster import Cluster

pytestmark = pytest.mark.parametrize("destination", ["postgresql"], indirect=True)


def columns_of(settings: Settings, table: str, schema: str = "import_api") -> list[tuple[str, str]]:
    """(column, PostgreSQL type) in the table's order, as information_schema says."""
    return [
        (r["column_name"], r["data_type"])
        for r in pg_query(
            settings,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (schema, table),
        )
    ]


async def test_a_push_lands_in_the_integrations_schema_with_stitchs_postgresql_types(
    api: Api, settings: Settings
) -> None:
    reply = await api.push(
        [
            record(
                "Customers",
                1,
                {
                    "id": 1,
                    "name": "Finn",
                    "score": 1.5,
                    "ok": True,
                    "big": 2**70,
                    "address": {"city": "Ooo"},
                    "tags": ["hero"],
                },
            )
        ]
    )

    assert reply.status == 201, reply
    assert columns_of(settings, "Customers") == [
        ("id", "bigint"),
        ("name", "text"),
        ("score", "double precision"),
        ("ok", "boolean"),
        ("big", "numeric"),
        ("address__city", "text"),
        ("_sdc_sequence", "bigint"),
        ("_sdc_table_version", "bigint"),
        ("_sdc_received_at", "timestamp without time zone"),
        ("_sdc_batched_at", "timestamp without time zone"),
        ("_sdc_extracted_at", "timestamp without time zone"),
    ]
    assert db_rows(settings, "Customers") == [
        {"id": 1, "name": "Finn", "score": 1.5, "ok": 1, "big": str(2**70), "address__city": "Ooo"}
    ]
    tags = db_rows(settings, "Customers__tags", system=True)
    assert [(t["_sdc_source_key_id"], t["_sdc_level_0_id"], t["value"]) for t in tags] == [
        (1, 0, "hero")
    ]
    assert json.loads(table_meta(settings, "Customers")["key_names"]) == ["id"]


async def test_newest_sequence_wins_in_any_order_through_copy_and_one_by_one(
    api: Api, settings: Settings
) -> None:
    big = [record("t", 100 + i, {"id": i % 50, "v": 100 + i}) for i in range(200)]  # COPY path
    small = [record("t", 1, {"id": i, "v": -1}) for i in range(5)]  # older: dropped

    assert (await api.push(big)).status == 201
    assert (await api.push(small)).status == 201

    rows = db_rows(settings, "t", order_by="id")
    assert [(r["id"], r["v"]) for r in rows] == [(i, 100 + 150 + i) for i in range(50)]


async def test_a_batch_with_activate_version_replaces_the_table_and_its_subtables(
    api: Api, settings: Settings
) -> None:
    schema = {"type": "object", "properties": {"id": {"type": "integer"}}}

    def batch(version: int, ids: list[int], sequence: int) -> dict[str, Any]:
        messages: list[dict[str, Any]] = [
            {"action": "upsert", "sequence": sequence + i, "data": {"id": i, "xs": [version]}}
            for i in ids
        ]
        messages.append({"action": "activate_version", "sequence": sequence + 99})
        return {
            "table_name": "v",
            "schema": schema,
            "key_names": ["id"],
            "table_version": version,
            "messages": messages,
        }

    assert (await api.batch(batch(1, [0, 1, 2], 100))).status == 201
    assert (await api.batch(batch(2, [0, 2], 200))).status == 201

    assert [r["id"] for r in db_rows(settings, "v", order_by="id")] == [0, 2]
    assert [r["value"] for r in db_rows(settings, "v__xs", order_by="_sdc_source_key_id")] == [2, 2]
    assert table_meta(settings, "v")["active_version"] == 2


async def test_values_postgresql_refuses_go_to_sdc_rejected_and_the_rest_load(
    api: Api, settings: Settings
) -> None:
    reply = await api.push(
        [
            record("r", 1, {"id": 1, "s": "fine"}),
            record("r", 2, {"id": 2, "s": "nul \u0000 inside"}),
            record("r", 3, {"id": 3, "s": "fine too"}),
        ]
    )

    assert reply.status == 201
    assert [(r["id"], r["s"]) for r in db_rows(settings, "r", order_by="id")] == [
        (1, "fine"),
        (3, "fine too"),
    ]
    (rejected,) = rejected_rows(settings)
    assert rejected["table_name"] == "r" and "0x00" in rejected["reason"]
    assert rejected["record"]["data"]["id"] == 2


async def test_names_past_postgresqls_limits_are_rejected(api: Api, settings: Settings) -> None:
    long_table = "é" * 32  # 32 characters, 64 bytes
    long_column = "c" * 60
    reply = await api.push(
        [
            record(long_table, 1, {"id": 1}),
            record("n", 2, {"id": 2, long_column: 1}),
            record("n", 3, {"id": 3, "c" * 59: 1}),
        ]
    )

    assert reply.status == 201
    assert [r["id"] for r in db_rows(settings, "n")] == [3]
    assert sorted(r["reason"] for r in rejected_rows(settings)) == [
        f"Column name {long_column} is longer than 59 characters",
        f"Table name {long_table} is longer than 63 bytes",
    ]


async def test_a_second_client_cannot_take_an_integration_another_owns(settings: Settings) -> None:
    from importapi_lite.store import open_tokens
    from importapi_lite.store.tokens import TokenError

    tokens = open_tokens(settings)
    try:
        tokens.create(CLIENT_ID, "sales")
        with pytest.raises(TokenError, match="belongs to another client"):
            tokens.create(CLIENT_ID + 1, "sales")
    finally:
        tokens.close()


async def test_token_secrets_are_never_stored(
    api: Api, settings: Settings, token: str, postgres_cluster: Cluster
) -> None:
    """Neither a push token nor the admin token is anywhere in a dump of the whole database;
    the token still works (its SHA-256 is what is stored)."""
    assert settings.admin_token is not None
    admin_secret = settings.admin_token.reveal()
    assert (await api.push([record("t", 1, {"id": 1})])).status == 201

    dump = subprocess.run(
        [str(postgres_cluster.binaries / "pg_dump"), "--dbname", str(settings.destination)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "_importapi.tokens" in dump and "COPY import_api.t" in dump  # a dump of it all
    assert token not in dump and admin_secret not in dump
    assert hashlib.sha256(token.encode()).hexdigest() in dump
