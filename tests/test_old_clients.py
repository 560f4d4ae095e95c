"""Older official clients, unchanged, against a real server: target-stitch 1.9.1 and 3.2.2,
python-stitch-client 0.8.0.post1.

Each has a venv of its own (``tests/clients/install.sh``; what each reads and sends:
``tests/clients/NOTES.md``) and runs as a subprocess against the in-process server on a real TCP
port. target-stitch 1.9.1 reads one ``stitch_url``; 3.2.2 reads ``small_batch_url`` and
``big_batch_url`` like 4.0.3 and needs ``asyncio.coroutine`` back on Python 3.11
(``tests/clients/py311_shims.py``, which its venv imports at startup).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from importapi_lite import Settings
from importapi_lite.store.admin_token import ensure_admin_token

from .clients.harness import (
    CLIENTS,
    PYTHON_STITCH_CLIENT_0_8,
    STITCHCLIENT_NESTED,
    STITCHCLIENT_ROWS,
    TARGET_STITCH_1,
    TARGET_STITCH_3,
    batch_urls_config,
    install_clients,
    run,
    singer_stream,
    stitch_url_config,
    write_config,
)
from .helpers import CLIENT_ID, Admin, db_rows, rejected_rows, table_meta

pytestmark = pytest.mark.clients

# A schema the records break: the server's check refuses them (no target-stitch validates itself).
NAME_IS_AN_INTEGER = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": "integer"}},
}


@pytest.fixture(scope="session")
def bins() -> dict[str, Path]:
    return install_clients()


def admin(client: Any, settings: Settings) -> Admin:
    return Admin(client, ensure_admin_token(settings.data_dir))


async def journal(client: Any, settings: Settings) -> list[tuple[str, int]]:
    """(path, status) of every Stitch API request the server answered, oldest first."""
    reply = await admin(client, settings).get("/journal")
    return [(e["path"], e["status"]) for e in reply.body["entries"]]


def loaded_accounts(settings: Settings) -> list[tuple[int, str, int, str]]:
    return [
        (r["id"], r["name"], r["_sdc_table_version"], r["_sdc_extracted_at"])
        for r in db_rows(settings, "accounts", system=True)
    ]


# --- target-stitch 1.9.1: one stitch_url --------------------------------------------------------


async def test_target_stitch_1_9_1_turns_a_push_stitch_url_into_the_batch_url_and_loads(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    push_url = str(client.make_url("/v2/import/push"))
    config = write_config(tmp_path, stitch_url_config(push_url, token))
    code, out, err = await run(
        bins[TARGET_STITCH_1] / "target-stitch", "-c", config, stdin=singer_stream(1, [0, 1, 2])
    )
    assert code == 0, err
    # Like 4.0.3, it prints the STATE once every batch before it got a 2xx.
    assert out == '{"bookmarks": {"accounts": {"version": 1}}}\n'
    assert "Using Stitch import URL " + push_url.replace("/push", "/batch") in err
    assert "Sending version information" not in err  # disable_collection: no usage ping
    assert await journal(client, settings) == [("/v2/import/batch", 201)]
    at = "2026-11-01T00:00:00.000000Z"
    assert loaded_accounts(settings) == [(i, f"a{i}-v1", 1, at) for i in range(3)]
    assert table_meta(settings, "accounts")["active_version"] == 1


async def test_target_stitch_1_9_1_full_table_resync_drops_rows_gone_from_the_source(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    batch_url = str(client.make_url("/v2/import/batch"))
    config = write_config(tmp_path, stitch_url_config(batch_url, token))
    for version, ids in ((1, [0, 1, 2]), (2, [0, 2])):
        code, out, err = await run(
            bins[TARGET_STITCH_1] / "target-stitch", "-c", config, stdin=singer_stream(version, ids)
        )
        assert code == 0, err
        assert out == f'{{"bookmarks": {{"accounts": {{"version": {version}}}}}}}\n'
    assert db_rows(settings, "accounts") == [{"id": 0, "name": "a0-v2"}, {"id": 2, "name": "a2-v2"}]
    assert table_meta(settings, "accounts")["active_version"] == 2
    assert rejected_rows(settings) == []


async def test_target_stitch_1_9_1_stops_on_a_400_and_logs_the_error_message(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, stitch_url_config(str(client.make_url("/v2/import/batch")), token)
    )
    stream = singer_stream(1, [0], NAME_IS_AN_INTEGER)
    code, out, err = await run(bins[TARGET_STITCH_1] / "target-stitch", "-c", config, stdin=stream)
    assert code == 1
    # 1.9.1 shows the body's "message", else its "error" (3.x and 4.x: the whole body's repr).
    # Record 1 is the batch's message 1, after the ACTIVATE_VERSION.
    assert (
        'CRITICAL Error persisting data for table "accounts": Record 1 did not conform to schema'
        in err
    )
    assert out == "" and db_rows(settings, "accounts") == []
    assert await journal(client, settings) == [("/v2/import/batch", 400)]


# --- target-stitch 3.2.2: small_batch_url / big_batch_url, asyncio.coroutine shimmed -------------


def target_stitch_3_config(tmp_path: Path, client: Any, token: str) -> Path:
    url = str(client.make_url("/v2/import/batch"))
    return write_config(tmp_path, batch_urls_config(url, token, CLIENT_ID))


async def test_target_stitch_3_2_2_loads_the_shipped_singer_stream_and_echoes_its_state(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    config = target_stitch_3_config(tmp_path, client, token)
    stream = (CLIENTS / "singer_stream.jsonl").read_text()
    code, out, err = await run(bins[TARGET_STITCH_3] / "target-stitch", "-c", config, stdin=stream)
    assert code == 0, err
    assert out == '{"bookmarks": {"accounts": {"version": 1}}}\n'
    assert "Sending version information" not in err  # disable_collection: no usage ping
    at = "2026-11-01T00:00:00.000000Z"
    assert loaded_accounts(settings) == [(i, f"a{i}", 1, at) for i in range(3)]
    assert table_meta(settings, "accounts")["active_version"] == 1


async def test_target_stitch_3_2_2_full_table_resync_drops_rows_gone_from_the_source(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    config = target_stitch_3_config(tmp_path, client, token)
    for version, ids in ((1, [0, 1, 2]), (2, [0, 2])):
        code, out, err = await run(
            bins[TARGET_STITCH_3] / "target-stitch", "-c", config, stdin=singer_stream(version, ids)
        )
        assert code == 0, err
        assert out == f'{{"bookmarks": {{"accounts": {{"version": {version}}}}}}}\n'
    assert db_rows(settings, "accounts") == [{"id": 0, "name": "a0-v2"}, {"id": 2, "name": "a2-v2"}]
    assert table_meta(settings, "accounts")["active_version"] == 2
    assert rejected_rows(settings) == []


async def test_target_stitch_3_2_2_retries_two_503s_through_its_old_backoff_then_loads(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    """backoff 1.8.0 awaits its ``giveup`` and ``on_backoff`` handlers, wrapped by the shimmed
    ``asyncio.coroutine``: with ``types.coroutine`` in its place the first 503 is a TypeError."""
    fault = {"status": 503, "count": 2, "endpoint": "batch"}
    reply = await admin(client, settings).request("POST", "/_importapi/v1/faults", body=fault)
    assert reply.status == 201, reply
    config = target_stitch_3_config(tmp_path, client, token)
    code, out, err = await run(
        bins[TARGET_STITCH_3] / "target-stitch", "-c", config, stdin=singer_stream(1, [0, 1])
    )
    assert code == 0, err
    assert out == '{"bookmarks": {"accounts": {"version": 1}}}\n'
    assert err.count("Backing off post_coroutine(...)") == 2
    assert [status for _, status in await journal(client, settings)] == [503, 503, 201]
    assert db_rows(settings, "accounts") == [{"id": 0, "name": "a0-v1"}, {"id": 1, "name": "a1-v1"}]


async def test_target_stitch_3_2_2_stops_on_a_400_and_prints_the_stitch_error(
    client: Any, token: str, settings: Settings, bins: dict[str, Path], tmp_path: Path
) -> None:
    config = target_stitch_3_config(tmp_path, client, token)
    stream = singer_stream(1, [0], NAME_IS_AN_INTEGER)
    code, out, err = await run(bins[TARGET_STITCH_3] / "target-stitch", "-c", config, stdin=stream)
    assert code == 1
    assert (
        "CRITICAL Error persisting data to Stitch: 400: {'error': 'Record 1 did not conform" in err
    )
    assert out == "" and db_rows(settings, "accounts") == []
    assert await journal(client, settings) == [("/v2/import/batch", 400)]


# --- python-stitch-client 0.8.0.post1: Transit to stitch_url ------------------------------------


async def test_python_stitch_client_0_8_pushes_transit_and_the_typed_rows_land(
    client: Any, token: str, settings: Settings, bins: dict[str, Path]
) -> None:
    url = str(client.make_url("/v2/import/push"))
    python = bins[PYTHON_STITCH_CLIENT_0_8] / "python"
    code, out, err = await run(python, CLIENTS / "stitchclient_push.py", url, token, CLIENT_ID)
    assert code == 0, err
    assert out == f"pushed 3 records to {url}\n"
    assert db_rows(settings, "pc") == STITCHCLIENT_ROWS
    assert [r["_sdc_sequence"] for r in db_rows(settings, "pc", system=True)] == [1000, 1001, 1002]
    nested = db_rows(settings, "pc__nested__k", system=True)
    assert [
        (r["_sdc_source_key_id"], r["_sdc_level_0_id"], r["value"]) for r in nested
    ] == STITCHCLIENT_NESTED


async def test_python_stitch_client_0_8_sees_a_rejection_as_an_error(
    client: Any, settings: Settings, bins: dict[str, Path]
) -> None:
    url = str(client.make_url("/v2/import/push"))
    python = bins[PYTHON_STITCH_CLIENT_0_8] / "python"
    code, out, err = await run(python, CLIENTS / "stitchclient_push.py", url, "nope", CLIENT_ID)
    assert code == 1 and out == ""
    assert '401 - b\'{"message":"Not Authorized"}\'' in err
    assert db_rows(settings, "pc") == []
