"""Every documented error, byte for byte: one parametrised test over (request → status, body).

Bodies are SPEC §2, §3.4, §5.4 and §7; [mock-defined] ones are marked. The parser's own detail in
the malformed-body error is not Stitch's text, so it is matched as "any non-empty string".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from importapi_lite.store.sqlite.tokens import SqliteTokenStore

from .helpers import CLIENT_ID, JSON, TRANSIT, Api, record

PUSH = "/v2/import/push"
VALIDATE = "/v2/import/validate"
BATCH = "/v2/import/batch"
STATUS = "/v2/import/status"


class NonEmptyString:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    def __repr__(self) -> str:
        return "<non-empty string>"


DETAIL = NonEmptyString()
NOT_AUTHORIZED = {"message": "Not Authorized"}
NOT_FOUND = {"status": "ERROR", "message": "Not Found"}  # [mock-defined]
INACTIVE = {"error": "Forbidden", "errors": {"error": "Connection is not active."}}
FORBIDDEN = {
    "status": "ERROR",
    "error": "Forbidden",
    "errors": {"error": "Access token is not associated with this client."},
}
MALFORMED = {
    "status": "ERROR",
    "message": "Malformed json in the body!",
    "error": DETAIL,
    "input": None,
}
NOT_ARRAY = {"status": "ERROR", "message": "An array of records is expected"}
BAD_COUNT = {"status": "ERROR", "message": "A request must contain between 1 and 20000 records"}
UNSUPPORTED = (
    "Unsupported content-type {}. Please send application/json or application/transit+json"
)
SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}


def unprocessable(*reasons: Any) -> dict[str, Any]:
    return {
        "status": "ERROR",
        "error": "Request cannot be processed; see errors.",
        "errors": [{"reason": r} for r in reasons],
    }


def good(**data: Any) -> dict[str, Any]:
    return record("users", 1, {"id": 1, **data})


def batch_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "table_name": "users",
        "schema": SCHEMA,
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1, "name": "a"}}],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def upsert(data: dict[str, Any], sequence: int = 1) -> dict[str, Any]:
    return {"action": "upsert", "sequence": sequence, "data": data}


def invalid(text: str) -> dict[str, str]:
    return {"error": "Request failed validation:" + text}


REGION = {"message": "Invalid region."}
TEXT_415 = {"status": "ERROR", "message": UNSUPPORTED.format("text/plain")}
BATCH_415 = "Content-Type must be application/json"
NOT_ALLOWED = "Method not allowed."
LACKS_SEQUENCE = (
    "#/messages/0: #: 0 subschemas matched instead of one "
    "#/messages/0: 2 schema violations found #/messages/0: required key [sequence] not found "
    "#/messages/0: extraneous key [data] is not permitted "
    "#/messages/0: required key [sequence] not found"
)


def without(record: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != field}


def case(
    name: str,
    path: str,
    body: Any,
    status: int,
    expected: Any,
    *,
    method: str = "POST",
    token: str | None = "valid",
    content_type: str | None = JSON,
) -> Any:
    """One request (body: a JSON value, or bytes sent as they are) and its exact answer."""
    return pytest.param(method, path, token, content_type, body, status, expected, id=name)


# fmt: off
CASES = [
    # Routing: SPEC §7, §15 Q13.
    case("unknown path", "/v2/import/nope", None, 404, NOT_FOUND, method="GET"),
    case("trailing slash", PUSH + "/", [good()], 404, NOT_FOUND),
    case("push GET", PUSH, None, 405, NOT_ALLOWED, method="GET", content_type=None),
    case("validate PUT", VALIDATE, [good()], 405, NOT_ALLOWED, method="PUT"),
    case("batch GET", BATCH, None, 405, NOT_ALLOWED, method="GET", content_type=None),
    case("status POST", STATUS, [], 405, NOT_ALLOWED, token=None),
    case("405 before auth", PUSH, None, 405, NOT_ALLOWED, method="DELETE", token=None),
    # Auth: SPEC §2.
    case("push no token", PUSH, [good()], 401, NOT_AUTHORIZED, token=None),
    case("validate no token", VALIDATE, [good()], 401, NOT_AUTHORIZED, token=None),
    case("batch no token", BATCH, batch_body(), 401, NOT_AUTHORIZED, token=None),
    case("unknown token", PUSH, [good()], 401, NOT_AUTHORIZED, token="unknown"),
    case("colon form", PUSH, [good()], 401, NOT_AUTHORIZED, token="colon"),
    case("basic scheme", BATCH, batch_body(), 401, NOT_AUTHORIZED, token="basic"),
    case("revoked token", PUSH, [good()], 401, NOT_AUTHORIZED, token="revoked"),
    case("other region", PUSH, [good()], 401, REGION, token="europe"),
    case("batch other region", BATCH, batch_body(), 401, REGION, token="europe"),
    case("paused integration", PUSH, [good()], 401, INACTIVE, token="paused"),
    case("deleted integration", BATCH, batch_body(), 401, INACTIVE, token="deleted"),
    case("auth before 415", PUSH, b"a,b", 401, NOT_AUTHORIZED, token=None, content_type="text/csv"),
    # Media type: SPEC §3.4 and §5.4.
    case("push text/plain", PUSH, b"[]", 415, TEXT_415, content_type="text/plain"),
    case("push no content type", PUSH, b"[]", 415,
         {"status": "ERROR", "message": UNSUPPORTED.format("")}, content_type=None),
    case("validate xml", VALIDATE, b"<a/>", 415,
         {"status": "ERROR", "message": UNSUPPORTED.format("application/xml")},
         content_type="application/xml"),
    case("batch transit", BATCH, b"[]", 415, BATCH_415, content_type=TRANSIT),
    case("batch form", BATCH, b"a=b", 415, BATCH_415,
         content_type="application/x-www-form-urlencoded"),
    # Body shape: SPEC §3.4.
    case("push malformed json", PUSH, b'[{"a": ]', 400, MALFORMED),
    case("push malformed transit", PUSH, b'[["^ ", "a"', 400, MALFORMED, content_type=TRANSIT),
    case("push unknown transit tag", PUSH, b'[["~#point", [1, 2]]]', 400, MALFORMED,
         content_type=TRANSIT),
    case("push NaN literal", PUSH, b"[NaN]", 400, MALFORMED),
    case("push invalid utf-8", PUSH, b'["\xff"]', 400, MALFORMED),
    case("push object root", PUSH, good(), 400, NOT_ARRAY),
    case("push scalar element", PUSH, [good(), 5], 400, NOT_ARRAY),
    case("validate object root", VALIDATE, {"a": 1}, 400, NOT_ARRAY),
    case("push empty array", PUSH, [], 400, BAD_COUNT),
    case("push 20001 records", PUSH, [good()] * 20001, 400, BAD_COUNT),
    # Record rules: SPEC §3.4 (422).
    case("missing client_id", PUSH, [without(good(), "client_id")], 422,
         unprocessable({"client_id": ["can't be blank"]})),
    case("blank table_name", PUSH, [good() | {"table_name": "  "}], 422,
         unprocessable({"table_name": ["can't be blank"]})),
    case("string sequence", PUSH, [good() | {"sequence": "1"}], 422,
         unprocessable({"sequence": ["should be an integer", "should be a number"]})),
    case("float sequence", PUSH, [good() | {"sequence": 1.5}], 422,
         unprocessable({"sequence": ["should be an integer"]})),
    case("sequence 1.0", PUSH, [good() | {"sequence": 1.0}], 422,
         unprocessable({"sequence": ["should be an integer"]})),
    case("sequence above max", PUSH, [good() | {"sequence": 2**63}], 422,
         unprocessable({"sequence": ["can not be above 9223372036854775807"]})),
    case("missing action", PUSH, [without(good(), "action")], 422,
         unprocessable({"action": ["can't be blank"]})),
    case("unknown action", PUSH, [good() | {"action": "delete"}], 422,
         unprocessable({"action": ["must be upsert"]})),
    case("data not object", PUSH, [good() | {"data": [1]}], 422,
         unprocessable({"data": ["data must be an object"]})),
    case("key absent from data", PUSH, [record("users", 1, {"name": "x"})], 422,
         unprocessable({"data": ["data must include keys"]})),
    case("null key", PUSH, [record("users", 1, {"id": None})], 422,
         unprocessable({"data": ["keys cannot not be null in data"]})),
    case("key_properties", PUSH, [without(good(), "key_names") | {"key_properties": ["id"]}], 422,
         unprocessable({"key_names": ["can't be blank"], "key_properties": ["unknown key"]})),
    case("empty key_names", PUSH, [good() | {"key_names": []}], 422,
         unprocessable({"key_names": ["can't be blank"]})),
    case("long string key", PUSH, [record("users", 1, {"id": "x" * 1025})], 422,
         unprocessable({"data": ["String keys cannot be longer than 1024 characters"]})),
    case("non-scalar key", PUSH, [record("users", 1, {"id": {"a": 1}})], 422,
         unprocessable({"data": ["keys must be scalar values"]})),
    case("too many data points", PUSH, [record("users", 1, {"id": 1, "v": list(range(10000))})],
         422, unprocessable({"data": ["data cannot contain more than 10000 data points"]})),
    case("one reason per failing record", VALIDATE,
         [good(), good() | {"sequence": None}, good() | {"table_name": 5}], 422,
         unprocessable({"sequence": ["can't be blank"]}, {"table_name": ["should be a string"]})),
    case("multiple clients", PUSH, [good(), good() | {"client_id": 1}], 422, unprocessable(
        "The batch contains data points for multiple clients. Only client_id 7723 is allowed")),
    case("other client", PUSH, [good() | {"client_id": 1}], 403, FORBIDDEN),
    case("validate other client", VALIDATE, [good() | {"client_id": 1}], 403, FORBIDDEN),
    # Batch: SPEC §5.4.
    case("batch missing field", BATCH, batch_body(table_name=None), 400,
         invalid("#: required key [table_name] not found")),
    case("batch extraneous key", BATCH, batch_body(client_id=CLIENT_ID), 400,
         invalid("#: extraneous key [client_id] is not permitted")),
    case("batch wrong type", BATCH, batch_body(table_name=5), 400,
         invalid("#/table_name: expected type: String, found: Integer")),
    case("batch schema array", BATCH, batch_body(schema=[]), 400,
         invalid("#/schema: expected type: JSONObject, found: JSONArray")),
    case("batch message lacks sequence", BATCH,
         batch_body(messages=[{"action": "upsert", "data": {"id": 1}}]), 400,
         invalid(LACKS_SEQUENCE)),
    case("batch sequence above max", BATCH, batch_body(messages=[upsert({"id": 1}, 2**63)]), 400,
         invalid("#: sequence can not be above 9223372036854775807")),
    case("batch sequence below min", BATCH,
         batch_body(messages=[upsert({"id": 1}, -(2**63) - 1)]), 400,
         invalid("#: sequence can not be below -9223372036854775808")),
    case("batch unknown schema type", BATCH,
         batch_body(schema={"type": "object", "properties": {"id": {"type": "int"}}}), 400,
         {"error": "Invalid JSON schema: unknown type: [int]"}),
    case("batch record violates schema", BATCH,
         batch_body(messages=[upsert({"id": 1}), upsert({"id": "2"})]), 400,
         {"error": "Record 1 did not conform to schema: #/id: expected: Integer, found: String"}),
    case("batch record lacks key", BATCH, batch_body(messages=[upsert({"name": "a"})]), 400,
         {"error": "Record is missing key property id"}),
    case("batch null key", BATCH,
         batch_body(schema={"properties": {"id": {}}}, messages=[upsert({"id": None})]), 400,
         {"error": "Record is missing key property id"}),
    case("batch key not in schema", BATCH, batch_body(key_names=["uid"]), 400,
         {"error": "Record is missing key property uid"}),
    case("batch long key", BATCH,
         batch_body(schema={"properties": {"id": {"type": "string"}}},
                    messages=[upsert({"id": "k" * 1025})]), 400,
         {"error": "String keys cannot be longer than 1024 characters"}),
    case("batch data points", BATCH,
         batch_body(messages=[upsert({"id": 1, "v": list(range(10001))})]), 400,
         {"error": "Record 0 contains more than 10000 data points"}),
    case("batch malformed json", BATCH, b'{"table_name": ', 400, MALFORMED),
    case("batch array root", BATCH, [batch_body()], 400,
         invalid("#: expected type: JSONObject, found: JSONArray")),
    case("batch no messages", BATCH, batch_body(messages=[]), 400,
         invalid("#/messages: expected minimum item count: 1, found: 0")),
    case("batch 20001 messages", BATCH, batch_body(messages=[upsert({"id": 1})] * 20001), 400,
         invalid("#/messages: expected maximum item count: 20000, found: 20001")),
]
# fmt: on


@pytest.fixture
def tokens(settings: Any, token: str) -> dict[str, str | None]:
    store = SqliteTokenStore(settings.data_dir)
    revoked = store.create(CLIENT_ID, "revoked_schema")[1]
    store.revoke(revoked)
    paused = store.create(CLIENT_ID, "paused_schema")[1]
    store.set_integration_state(CLIENT_ID, "paused_schema", "paused")
    deleted = store.create(CLIENT_ID, "deleted_schema")[1]
    store.set_integration_state(CLIENT_ID, "deleted_schema", "deleted")
    europe = store.create(CLIENT_ID, "eu_schema", region="europe")[1]
    store.close()
    return {
        "valid": token,
        "unknown": "0" * 64,
        "revoked": revoked,
        "paused": paused,
        "deleted": deleted,
        "europe": europe,
    }


@pytest.mark.parametrize(
    ("method", "path", "token_kind", "content_type", "body", "status", "expected"), CASES
)
async def test_documented_error_body(
    api: Api,
    tokens: dict[str, str],
    method: str,
    path: str,
    token_kind: str | None,
    content_type: str | None,
    body: Any,
    status: int,
    expected: Any,
) -> None:
    headers = {}
    if token_kind == "colon":
        headers["Authorization"] = f"Bearer: {tokens['valid']}"
    elif token_kind == "basic":
        headers["Authorization"] = f"Basic {tokens['valid']}"
    token = tokens.get(token_kind) if token_kind else None
    data = body if isinstance(body, bytes) or body is None else json.dumps(body)
    reply = await api.request(
        method, path, data=data, content_type=content_type, token=token, headers=headers
    )
    assert (reply.status, reply.body) == (status, expected)
    if isinstance(expected, str):
        assert reply.content_type == "text/plain;charset=UTF-8"
    else:
        assert reply.content_type == "application/json;charset=UTF-8"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", PUSH, "POST"),
        ("PUT", VALIDATE, "POST"),
        ("DELETE", BATCH, "POST"),
        ("POST", STATUS, "GET"),
    ],
)
async def test_a_405_keeps_stitchs_body_and_lists_the_allowed_method(
    api: Api, method: str, path: str, allowed: str
) -> None:
    reply = await api.request(method, path, content_type=None, token=None)

    assert (reply.status, reply.body) == (405, NOT_ALLOWED)
    assert reply.headers["Allow"] == allowed  # RFC 9110 §15.5.6; Stitch's docs show none


async def test_no_error_case_writes_anything(
    api: Api, tokens: dict[str, str], settings: Any
) -> None:
    """A rejected request writes nothing: after every error case, no table file exists."""
    for case_ in CASES:
        method, path, kind, content_type, body, _, _ = case_.values
        data = body if isinstance(body, bytes) or body is None else json.dumps(body)
        token = tokens.get(kind) if kind else None
        reply = await api.request(method, path, data=data, content_type=content_type, token=token)
        assert reply.status >= 400
    written = [p for p in settings.data_dir.rglob("*.sqlite3") if p.name != "tokens.sqlite3"]
    assert written == []
