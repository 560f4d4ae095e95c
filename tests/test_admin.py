"""The admin API (``admin/``) under /_importapi/v1: its token, reads, export, wait and reset, on a
real server.

Data arrives the way a client sends it (``api.push``); the admin API is asked over HTTP with the
admin token read from the data directory, as ``importapi-lite admin-token`` would print it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import shutil
import stat
from dataclasses import replace
from typing import Any

import pytest

from importapi_lite import Settings, create_app
from importapi_lite.admin.openapi import OPENAPI
from importapi_lite.admin.routes import ADMIN_PREFIX, ROUTES
from importapi_lite.store.admin_token import ADMIN_TOKEN_FILE, ensure_admin_token

from .helpers import CLIENT_ID, Admin, Api, db_path, db_rows, make_token, record, rejected_rows

TABLE = f"/clients/{CLIENT_ID}/integrations/import_api/tables"


def concrete(path: str) -> str:
    return (
        path.replace("{client_id}", str(CLIENT_ID))
        .replace("{integration}", "import_api")
        .replace("{table}", "users")
        .replace("{fault_id}", "1")
    )


def users(*ids: int, sequence: int = 1) -> list[dict[str, Any]]:
    return [record("users", sequence, {"id": i, "name": f"user {i}"}) for i in ids]


# --- the admin token ---------------------------------------------------------------------------


PROTECTED = [r for r in ROUTES if r.needs_token]


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: f"{r.method} {r.path}")
async def test_every_protected_admin_route_refuses_no_token_a_wrong_one_and_a_push_token(
    admin: Admin, token: str, route: Any
) -> None:
    path = ADMIN_PREFIX + concrete(route.path)
    for presented, status, code in (
        (None, 401, "unauthorized"),
        ("not-the-admin-token", 401, "unauthorized"),
        (token, 403, "forbidden"),
    ):
        reply = await admin.request(route.method, path, token=presented, content_type=None)
        assert (reply.status, reply.body["error"]) == (status, code), (presented, reply)
        assert set(reply.body) == {"error", "message"}


@pytest.mark.parametrize("endpoint", ["push", "validate", "batch"])
async def test_the_admin_token_works_on_no_stitch_data_route(
    admin: Admin, settings: Settings, endpoint: str
) -> None:
    reply = await admin.request("POST", f"/v2/import/{endpoint}", body=users(1))

    assert (reply.status, reply.body) == (401, {"message": "Not Authorized"})
    assert not db_path(settings, "users").exists()


async def test_the_admin_token_file_is_made_on_first_use_readable_only_by_its_owner(
    client: Any, settings: Settings
) -> None:
    path = settings.data_dir / ADMIN_TOKEN_FILE
    assert not path.exists()  # serving alone does not create it

    reply = await Api(client, "guess").request("GET", ADMIN_PREFIX + "/clients", content_type=None)

    assert reply.status == 401
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    assert ensure_admin_token(settings.data_dir) == path.read_text().strip()


async def test_an_admin_token_from_the_settings_replaces_the_file(
    aiohttp_client: Any, settings: Settings
) -> None:
    file_token = ensure_admin_token(settings.data_dir)
    client = await aiohttp_client(create_app(replace(settings, admin_token="chosen-secret")))

    chosen = await Admin(client, "chosen-secret").get("/clients")
    from_file = await Admin(client, file_token).get("/clients")

    assert (chosen.status, from_file.status) == (200, 401)


# --- the document, probes and error shape ------------------------------------------------------


async def test_the_openapi_document_needs_no_token_and_lists_exactly_the_admin_routes(
    admin: Admin,
) -> None:
    reply = await admin.get("/openapi.json", token=None)

    assert reply.status == 200
    assert reply.body == json.loads(json.dumps(OPENAPI))
    documented = {
        (method.upper(), path)
        for path, item in reply.body["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == {(r.method, r.path) for r in ROUTES}


async def test_livez_and_readyz_answer_with_the_admin_token_only(admin: Admin) -> None:
    live = await admin.get("/livez")
    ready = await admin.get("/readyz")

    assert (live.status, live.body) == (200, {"status": "ok"})
    assert (ready.status, ready.body) == (200, {"status": "ready"})
    # Only the OpenAPI document is open: everything else there needs the admin token.
    assert (await admin.get("/livez", token=None)).status == 401
    assert (await admin.get("/readyz", token=None)).status == 401


async def test_readyz_is_503_when_the_data_directory_is_gone_and_livez_stays_200(
    admin: Admin, settings: Settings
) -> None:
    assert (await admin.get("/livez")).status == 200  # the server has read its admin token
    shutil.rmtree(settings.data_dir)

    ready = await admin.get("/readyz")
    live = await admin.get("/livez")

    assert ready.status == 503
    assert ready.body["error"] == "not_ready" and "does not exist" in ready.body["message"]
    assert live.status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("POST", "/clients", 405, "method_not_allowed"),
        ("GET", "/clients/abc/integrations/import_api/tables", 404, "not_found"),
        ("GET", "/clients/7_723/integrations/import_api/tables", 404, "not_found"),
        ("GET", TABLE + "/users/rows?offset=%C2%B2", 400, "bad_request"),
        ("DELETE", "/faults/%C2%B2", 404, "not_found"),
        ("GET", TABLE + "/missing", 404, "not_found"),
        ("GET", TABLE + "/users/rows?limit=0", 400, "bad_request"),
        ("GET", TABLE + "/users/rows?where=nocolon", 400, "bad_request"),
        # A number of seconds as the document's "number" is written: float() alone takes these.
        ("GET", TABLE + "/users/wait?timeout=%205", 400, "bad_request"),
        ("GET", TABLE + "/users/wait?timeout=1_0", 400, "bad_request"),
        ("GET", TABLE + "/users/wait?timeout=nan", 400, "bad_request"),
        ("GET", "/journal?since=-1", 400, "bad_request"),
        # Past SQL's 64-bit OFFSET (a 500 once, schemathesis found).
        ("GET", TABLE + "/users/rows?offset=9223372036854775808", 400, "bad_request"),
        ("GET", TABLE + "/users/rejected?offset=9223372036854775808", 400, "bad_request"),
    ],
)
async def test_admin_errors_have_one_json_shape(
    admin: Admin, api: Api, method: str, path: str, status: int, code: str
) -> None:
    await api.push(users(1))

    reply = await admin.request(method, ADMIN_PREFIX + path, content_type=None)

    assert (reply.status, reply.body["error"]) == (status, code)
    assert set(reply.body) == {"error", "message"} and reply.body["message"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", ADMIN_PREFIX + "/clients", "DELETE, GET"),
        ("PUT", ADMIN_PREFIX + "/faults", "DELETE, GET, POST"),
        ("GET", ADMIN_PREFIX + "/faults/1", "DELETE"),
        ("TRACE", ADMIN_PREFIX + "/openapi.json", "GET"),
        ("POST", "/_importapi/", "GET, HEAD"),  # the dashboard's page
    ],
)
async def test_a_405_lists_the_routes_methods_in_allow(
    admin: Admin, method: str, path: str, allowed: str
) -> None:
    # RFC 9110 §15.5.6: a 405 MUST say what the resource takes. Before the token check, too.
    reply = await admin.request(method, path, content_type=None, token=None)

    assert (reply.status, reply.body["error"]) == (405, "method_not_allowed")
    assert reply.headers["Allow"] == allowed


# --- reads -------------------------------------------------------------------------------------


async def test_clients_lists_integrations_tables_and_row_counts(admin: Admin, api: Api) -> None:
    await api.push(users(1, 2))
    await api.push([record("orders", 1, {"id": 7, "lines": [{"sku": "a"}, {"sku": "b"}]})])

    reply = await admin.get("/clients")

    assert reply.status == 200
    assert reply.body == {
        "clients": [
            {
                "client_id": CLIENT_ID,
                "integrations": [
                    {
                        "name": "import_api",
                        "state": "active",
                        "tables": [
                            {
                                "name": "orders",
                                "rows": 1,
                                "rejected": 0,
                                "subtables": [{"name": "orders__lines", "rows": 2}],
                            },
                            {"name": "users", "rows": 2, "rejected": 0, "subtables": []},
                        ],
                    }
                ],
            }
        ]
    }


async def test_a_client_with_a_token_but_no_data_is_listed_without_tables(
    admin: Admin, token: str
) -> None:
    reply = await admin.get("/clients")

    assert reply.body["clients"] == [
        {
            "client_id": CLIENT_ID,
            "integrations": [{"name": "import_api", "state": "active", "tables": []}],
        }
    ]


async def test_one_integrations_tables(admin: Admin, api: Api) -> None:
    await api.push(users(1))

    reply = await admin.get(TABLE)

    assert reply.body == {"tables": [{"name": "users", "rows": 1, "rejected": 0, "subtables": []}]}


async def test_a_table_shows_columns_with_stitch_types_keys_version_and_subtables(
    admin: Admin, api: Api
) -> None:
    await api.push(
        [
            record(
                "orders",
                1,
                {"id": 7, "total": 1.5, "lines": [{"sku": "a"}]},
                table_version=3,
            )
        ]
    )

    reply = await admin.get(TABLE + "/orders")

    assert reply.status == 200
    body = reply.body
    assert (body["name"], body["parent"], body["key_names"]) == ("orders", None, ["id"])
    assert body["rows"] == 1 and body["subtables"] == ["orders__lines"]
    columns = {c["name"]: c["type"] for c in body["columns"]}
    assert columns["id"] == "integer" and columns["total"] == "double"
    assert columns["_sdc_sequence"] == "integer"
    child = await admin.get(TABLE + "/orders__lines")
    assert (child.body["parent"], child.body["rows"]) == ("orders", 1)
    assert {c["name"]: c["type"] for c in child.body["columns"]}["sku"] == "string"


async def test_a_table_names_the_field_of_each_split_column_in_column_order(
    admin: Admin, api: Api
) -> None:
    await api.push(
        [
            record("prices", 1, {"id": 1, "price": 5, "note__st": "a field of its own"}),
            record("prices", 2, {"id": 2, "price": "five"}),
            record("prices", 3, {"id": 3, "price": 5.5}),
        ]
    )

    reply = await admin.get(TABLE + "/prices")

    data = [c for c in reply.body["columns"] if not c["name"].startswith("_sdc_")]
    assert data == [
        {"name": "id", "type": "integer", "split_of": None},
        {"name": "price", "type": "integer", "split_of": None},
        {"name": "note__st", "type": "string", "split_of": None},  # no note column: no split
        {"name": "price__st", "type": "string", "split_of": "price"},
        {"name": "price__do", "type": "double", "split_of": "price"},
    ]


async def test_rows_are_paged_in_key_order(admin: Admin, api: Api) -> None:
    await api.push(users(3, 1, 2, 5, 4))

    first = await admin.get(TABLE + "/users/rows?limit=2")
    rest = await admin.get(TABLE + "/users/rows?limit=10&offset=2")

    assert [r["id"] for r in first.body["rows"]] == [1, 2]
    assert [r["id"] for r in rest.body["rows"]] == [3, 4, 5]
    assert (first.body["total"], first.body["limit"], first.body["offset"]) == (5, 2, 0)
    assert first.body["columns"][:2] == ["id", "name"]
    assert first.body["rows"][0]["_sdc_sequence"] == 1


async def test_rows_of_an_append_only_table_come_in_arrival_order(admin: Admin, api: Api) -> None:
    messages = [{"action": "upsert", "sequence": 1, "data": {"n": n}} for n in (3, 1, 2)]
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    await api.batch({"table_name": "events", "schema": schema, "messages": messages})

    reply = await admin.get(TABLE + "/events/rows")

    assert [r["n"] for r in reply.body["rows"]] == [3, 1, 2]


async def test_rows_filter_by_equality_as_text(admin: Admin, api: Api) -> None:
    await api.push(users(1, 2, 3))
    await api.push([record("users", 2, {"id": 4, "name": "user 2"})])

    by_id = await admin.get(TABLE + "/users/rows?where=id:2")
    both = await admin.get(TABLE + "/users/rows?where=name:user%202&where=id:4")

    assert [r["id"] for r in by_id.body["rows"]] == [2] and by_id.body["total"] == 1
    assert [r["id"] for r in both.body["rows"]] == [4]


async def test_rows_filter_on_an_unknown_column_is_a_400_naming_it(admin: Admin, api: Api) -> None:
    await api.push(users(1))

    reply = await admin.get(TABLE + '/users/rows?where=na"me:x')

    assert reply.status == 400 and 'na"me' in reply.body["message"]


async def test_rows_of_a_table_whose_name_needs_encoding(admin: Admin, api: Api) -> None:
    await api.push([record("Users/Ä b", 1, {"id": 1})])

    reply = await admin.get(TABLE + "/Users%2F%C3%84%20b/rows")

    assert reply.status == 200 and [r["id"] for r in reply.body["rows"]] == [1]


async def test_reading_a_missing_table_creates_no_file(admin: Admin, settings: Settings) -> None:
    reply = await admin.get(TABLE + "/ghost/rows")

    assert reply.status == 404
    assert not db_path(settings, "ghost").exists()


async def test_export_as_json_lines(admin: Admin, api: Api) -> None:
    await api.push(users(1, 2))

    reply = await admin.get(TABLE + "/users/export")

    assert reply.status == 200 and reply.content_type.startswith("application/x-ndjson")
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert [(r["id"], r["name"]) for r in lines] == [(1, "user 1"), (2, "user 2")]


async def test_export_as_csv_with_a_header_and_filters(admin: Admin, api: Api) -> None:
    await api.push(users(1, 2, 3))

    reply = await admin.get(TABLE + "/users/export?format=csv&where=id:2")

    assert reply.content_type.startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [(r["id"], r["name"]) for r in rows] == [("2", "user 2")]


async def test_export_streams_more_rows_than_one_chunk(admin: Admin, api: Api) -> None:
    await api.push(users(*range(1, 1202)))

    reply = await admin.get(TABLE + "/users/export?format=csv")

    assert len(reply.text.splitlines()) == 1 + 1201


async def test_export_refuses_an_unknown_format(admin: Admin, api: Api) -> None:
    await api.push(users(1))

    reply = await admin.get(TABLE + "/users/export?format=xml")

    assert (reply.status, reply.body["error"]) == (400, "bad_request")


# --- wait for rows -----------------------------------------------------------------------------


async def test_wait_returns_as_soon_as_the_rows_arrive(admin: Admin, api: Api) -> None:
    waiting = asyncio.create_task(admin.get(TABLE + "/users/wait?min_rows=3&timeout=10"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await api.push(users(1, 2))
    await api.push(users(3))

    reply = await asyncio.wait_for(waiting, 5)

    assert reply.status == 200
    assert (reply.body["rows"], reply.body["reached"]) == (3, True)
    assert reply.body["waited_ms"] < 5000


async def test_wait_answers_the_count_with_reached_false_on_timeout(admin: Admin, api: Api) -> None:
    await api.push(users(1))

    reply = await admin.get(TABLE + "/users/wait?min_rows=2&timeout=0.2")

    assert reply.status == 200
    assert (reply.body["rows"], reply.body["min_rows"], reply.body["reached"]) == (1, 2, False)
    assert reply.body["waited_ms"] >= 200


async def test_wait_for_a_table_that_does_not_exist_yet_counts_zero(admin: Admin) -> None:
    reply = await admin.get(TABLE + "/later/wait?timeout=0")

    assert (reply.body["rows"], reply.body["reached"]) == (0, False)


async def test_a_server_shutting_down_ends_long_polls_at_once(admin: Admin, client: Any) -> None:
    waiting = asyncio.create_task(admin.get(TABLE + "/users/wait?timeout=30"))
    await asyncio.sleep(0.05)

    await client.server.app.shutdown()  # what aiohttp does first on SIGTERM
    reply = await asyncio.wait_for(waiting, 5)

    assert (reply.status, reply.body["reached"]) == (200, False)


@pytest.mark.parametrize("query", ["timeout=61", "timeout=-1", "timeout=x", "min_rows=-1"])
async def test_wait_refuses_timeouts_over_a_minute_and_bad_counts(admin: Admin, query: str) -> None:
    reply = await admin.get(TABLE + "/users/wait?" + query)

    assert (reply.status, reply.body["error"]) == (400, "bad_request")


# --- reset -------------------------------------------------------------------------------------


async def test_reset_one_table_keeps_the_others_and_the_table_can_load_again(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await api.push(users(1, 2) + [record("orders", 1, {"id": 1})])

    reply = await admin.delete(TABLE + "/users")
    again = await api.push(users(9))

    assert (reply.status, reply.body["removed"]) == (200, True)
    assert again.status == 201
    assert [r["id"] for r in db_rows(settings, "users")] == [9]
    assert db_rows(settings, "orders") == [{"id": 1}]


async def test_reset_one_table_also_forgets_its_rejected_records(
    admin: Admin, api: Api, settings: Settings
) -> None:
    await api.push(users(1))
    await api.push([record("users", 2, {"id": 2, "name": "x"}, key_names=["name"])])
    await api.push(
        [
            record("orders", 1, {"id": 1}),
            record("orders", 2, {"id": 2, "name": "x"}, key_names=["name"]),
        ]
    )
    assert {r["table_name"] for r in rejected_rows(settings)} == {"users", "orders"}

    await admin.delete(TABLE + "/users")

    assert {r["table_name"] for r in rejected_rows(settings)} == {"orders"}


async def test_reset_a_client_and_everything_keep_the_tokens(
    admin: Admin, api: Api, settings: Settings
) -> None:
    other = make_token(settings, client_id=42)
    await api.push(users(1))
    await api.push([{**users(1)[0], "client_id": 42}], token=other)

    client = await admin.delete(f"/clients/{CLIENT_ID}")
    after_client = await admin.get("/clients")
    everything = await admin.delete("/clients")
    after_all = await admin.get("/clients")
    again = await api.push(users(5))

    assert client.body["removed"] is True
    tables = {c["client_id"]: c["integrations"][0]["tables"] for c in after_client.body["clients"]}
    assert tables[CLIENT_ID] == [] and tables[42][0]["rows"] == 1
    assert everything.body["clients_removed"] == 1
    assert all(not c["integrations"][0]["tables"] for c in after_all.body["clients"])
    assert again.status == 201 and db_rows(settings, "users") == [{"id": 5, "name": "user 5"}]


async def test_reset_of_nothing_says_so(admin: Admin) -> None:
    reply = await admin.delete(TABLE + "/never")

    assert (reply.status, reply.body["removed"]) == (200, False)


async def test_resets_during_pushes_never_fail_a_request(admin: Admin, api: Api) -> None:
    pushes = [api.push(users(i)) for i in range(1, 21)]
    resets = [admin.delete(TABLE + "/users") for _ in range(5)]

    replies = await asyncio.gather(*pushes, *resets)

    assert {r.status for r in replies} <= {200, 201}
