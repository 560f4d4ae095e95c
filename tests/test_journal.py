"""The request journal (``observe/journal.py``, read through the admin API): what each Stitch API
request was answered, never its token or its data."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from importapi_lite import Settings, create_app
from importapi_lite.observe.journal import (
    MAX_ERROR_BODY_CHARS,
    MAX_HEADER_CHARS,
    Journal,
    error_body,
)
from importapi_lite.store.admin_token import ensure_admin_token

from .helpers import CLIENT_ID, Admin, Api, make_token, record


async def entries(admin: Admin, query: str = "") -> list[dict[str, Any]]:
    reply = await admin.get("/journal" + query)
    assert reply.status == 200
    return list(reply.body["entries"])


async def test_an_accepted_push_is_recorded_with_its_tables_and_counts(
    admin: Admin, api: Api
) -> None:
    records = [record("users", 1, {"id": 1}), record("orders", 1, {"id": 9, "total": 2})]
    sent = json.dumps(records).encode()

    await api.push(records)

    (entry,) = await entries(admin)
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/v2/import/push", 201)
    assert sorted(entry["tables"]) == ["orders", "users"]
    assert (entry["accepted"], entry["stale"], entry["rejected"]) == (2, 0, 0)
    assert entry["request_bytes"] == len(sent)
    assert entry["client_id"] == CLIENT_ID
    assert entry["error"] is None and entry["fault"] is None
    assert entry["time"].endswith("Z") and entry["duration_ms"] >= 0


async def test_each_table_s_counts_are_recorded(admin: Admin, api: Api) -> None:
    await api.push([record("users", 5, {"id": 1})])
    await api.push(
        [
            record("users", 1, {"id": 1}),  # stale
            record("orders", 1, {"id": 1}),
            record("orders", 1, {"id": 2, "_sdc_sequence": 1}),  # rejected
        ]
    )

    last = (await entries(admin))[-1]

    assert sorted(last["per_table"], key=lambda t: t["table_name"]) == [
        {"table_name": "orders", "accepted": 1, "stale": 0, "rejected": 1},
        {"table_name": "users", "accepted": 0, "stale": 1, "rejected": 0},
    ]


async def test_only_the_harmless_request_headers_are_recorded(
    admin: Admin, api: Api, token: str
) -> None:
    sent = {
        "User-Agent": "stitchclient/1.0.1 <b>hi</b>",
        "X-Request-Id": "abc-123",
        "Cookie": "session=cookie-secret",
        "X-Api-Key": "key-secret",
        "X-Long": "x" * 5_000,
    }
    await api.push([record("users", 1, {"id": 1})], headers=sent)
    await api.request(
        "GET", "/v2/import/nope", content_type=None, headers={"User-Agent": "y" * 600}
    )

    first, second = await entries(admin)

    assert first["headers"] == {
        "User-Agent": "stitchclient/1.0.1 <b>hi</b>",
        "Content-Type": "application/json",
        "Content-Length": str(len(json.dumps([record("users", 1, {"id": 1})]))),
        "X-Request-Id": "abc-123",
    }
    assert second["headers"] == {"User-Agent": "y" * MAX_HEADER_CHARS + "…"}
    text = (await admin.get("/journal")).text
    for secret in (token, "cookie-secret", "key-secret", "Authorization", "Bearer"):
        assert secret not in text


async def test_stale_and_rejected_data_points_are_counted(admin: Admin, api: Api) -> None:
    await api.push([record("users", 5, {"id": 1, "name": "new"})])
    await api.push(
        [
            record("users", 1, {"id": 1, "name": "old"}),
            record("users", 6, {"id": 2, "name": "x"}, key_names=["name"]),
        ]
    )

    last = (await entries(admin))[-1]

    assert (last["accepted"], last["stale"], last["rejected"]) == (0, 1, 1)


async def test_an_error_answer_is_recorded_with_its_body(admin: Admin, api: Api) -> None:
    reply = await api.push([record("users", 1, {"name": "no id"})])

    (entry,) = await entries(admin)
    assert entry["status"] == 422
    assert entry["error"] == reply.body
    assert entry["tables"] == [] and entry["accepted"] == 0


async def test_a_plain_text_error_is_recorded_as_text(admin: Admin, api: Api) -> None:
    await api.request("GET", "/v2/import/push", content_type=None)

    (entry,) = await entries(admin)
    assert (entry["status"], entry["error"]) == (405, "Method not allowed.")


async def test_the_token_and_the_data_never_reach_the_journal(
    admin: Admin, api: Api, token: str
) -> None:
    await api.push([record("users", 1, {"id": 1, "name": "secret-name"})])
    await api.push([record("users", 1, {"id": 2, "name": "secret-name"})], token="wrong-token")
    await api.push([record("users", 1, {"id": 3, "name": "secret-name"})], token=token + "x")

    reply = await admin.get("/journal")

    assert [e["status"] for e in reply.body["entries"]] == [201, 401, 401]
    for secret in (token, "wrong-token", "secret-name", admin.token):
        assert secret not in reply.text


async def test_unknown_paths_are_recorded_and_admin_requests_are_not(
    admin: Admin, api: Api
) -> None:
    await api.request("GET", "/v2/import/nope", content_type=None)
    await admin.get("/clients")
    await admin.get("/nope")

    assert [(e["path"], e["status"]) for e in await entries(admin)] == [("/v2/import/nope", 404)]


async def test_the_journal_keeps_only_the_last_journal_size_requests(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(replace(settings, journal_size=2)))
    api = Api(client, make_token(settings))
    admin = Admin(client, ensure_admin_token(settings.data_dir))
    for sequence in (1, 2, 3):
        await api.push([record("users", sequence, {"id": sequence})])

    kept = await entries(admin)

    assert [e["id"] for e in kept] == [2, 3]


async def test_since_and_limit_narrow_the_entries(admin: Admin, api: Api) -> None:
    for sequence in range(1, 6):
        await api.push([record("users", sequence, {"id": sequence})])

    assert [e["id"] for e in await entries(admin, "?since=3")] == [4, 5]
    assert [e["id"] for e in await entries(admin, "?limit=2")] == [4, 5]
    assert [e["id"] for e in await entries(admin, "?since=1&limit=1")] == [5]
    bad = await admin.get("/journal?limit=-1")
    assert (bad.status, bad.body["error"]) == (400, "bad_request")


async def test_delete_empties_the_journal_and_ids_keep_counting(admin: Admin, api: Api) -> None:
    await api.push([record("users", 1, {"id": 1})])

    cleared = await admin.delete("/journal")
    await api.push([record("users", 2, {"id": 1})])

    assert cleared.body == {"cleared": 1}
    assert [e["id"] for e in await entries(admin)] == [2]


def test_a_huge_error_body_is_kept_truncated() -> None:
    journal = Journal(1)
    body = error_body("x" * (MAX_ERROR_BODY_CHARS + 10), is_json=True)
    journal.record(
        time="t", method="POST", path="/", status=422, duration_ms=0, request_bytes=0, error=body
    )

    assert len(journal.entries()[0].error) == MAX_ERROR_BODY_CHARS + 1


def test_a_journal_of_size_zero_keeps_nothing() -> None:
    journal = Journal(0)

    journal.record(time="t", method="GET", path="/", status=200, duration_ms=0, request_bytes=0)

    assert journal.entries() == []
