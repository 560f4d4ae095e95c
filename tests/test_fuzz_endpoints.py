"""Property-based fuzzing of /v2/import/push, /validate and /batch (``web/``) on a real server.

Every generated body, well-formed or hostile, must get a documented status with exactly the
documented body (the shapes pinned by ``test_errors.py``), never a 5xx, never a traceback or a
Python repr; a 2xx stores every record (read back from the SQLite file, or found in
``_sdc_rejected``) and a 4xx stores nothing.

One server per module, on its own event loop in a background thread (as the pytest plugin runs
it), talked to with ``http.client``, so the ``@given`` tests stay plain synchronous functions;
the store is reset through the admin API before every example. How many cases run is chosen by
``IMPORTAPI_LITE_FUZZ``: ``ci`` (the default, in every plain ``pytest`` run; marked ``fuzz``, so
``-m "not fuzz"`` leaves it out) or ``deep`` (``make fuzz``, many times more); the terminal summary
reports the count and the statuses seen. The bugs it found are kept at the end, each the
smallest request that shows it.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from transit.writer import Writer

from importapi_lite.ingest.codec import decode_body
from importapi_lite.pytest_plugin import ServerThread
from importapi_lite.store.sqlite.paths import (
    REJECTED_TABLE,
    NameTooLong,
    integration_dir,
    table_path,
)
from importapi_lite.store.sqlite.tokens import SqliteTokenStore
from importapi_lite.store.tokens import DEFAULT_INTEGRATION

from .helpers import CLIENT_ID, JSON, TRANSIT, Reply

pytestmark = pytest.mark.fuzz

PUSH = "/v2/import/push"
VALIDATE = "/v2/import/validate"
BATCH = "/v2/import/batch"

# --- profiles ---------------------------------------------------------------------------------

# Settings objects, not registered profiles: this module is collected with the rest of the
# suite, and must not change hypothesis' defaults for other modules.
CI = settings(
    deadline=None,  # a request's time depends on the machine, not on the input
    database=None,  # no .hypothesis/ in the working tree; failures print their reproducer
    print_blob=True,
    derandomize=True,  # the same cases on every CI run: a red build is never a coin toss
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILES = {"ci": CI, "deep": settings(CI, derandomize=False)}
PROFILE = os.environ.get("IMPORTAPI_LITE_FUZZ", "ci")
# Each test names its share of examples; the profile scales them all (the summary counts them).
SCALE = {"ci": 3, "deep": 60}[PROFILE]


def examples(ci: int) -> Any:
    return settings(PROFILES[PROFILE], max_examples=ci * SCALE)


# --- the server -------------------------------------------------------------------------------

STATS: Counter[tuple[str, int]] = Counter()  # requests, by endpoint and status
EXAMPLES = Counter[str]()  # generated cases: every @given example starts with a reset


class Server:
    """importapi-lite on a free port, in a daemon thread with its own event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        tokens = SqliteTokenStore(data_dir)
        try:
            self.token = tokens.create(CLIENT_ID)[1]
        finally:
            tokens.close()
        self.admin_token = secrets.token_hex(16)
        # fast: a crash-safe commit without an fsync each; durability is not what is fuzzed here.
        self.thread = ServerThread(data_dir, self.admin_token, durability="fast")
        self.thread.start()
        self.port = self.thread.port

    def stop(self) -> None:
        self.thread.stop()

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        # A connection per request: a reply that closes the connection can never hide in the next.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            return Reply(response.status, response.headers, text)
        finally:
            connection.close()

    def post(self, path: str, body: bytes, content_type: str = JSON) -> Reply:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        reply = self.request("POST", path, body, headers)
        STATS[(path.rsplit("/", 1)[-1], reply.status)] += 1
        return reply

    def reset(self) -> None:
        EXAMPLES["examples"] += 1
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        reply = self.request("DELETE", "/_importapi/v1/clients", headers=headers)
        assert reply.status == 200, reply


class _Summary:
    """Reports how many cases ran and requests were sent (what ``make fuzz`` promises is a count),
    and what they got."""

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not STATS:
            return
        by_endpoint: Counter[str] = Counter()
        for (endpoint, _), n in STATS.items():
            by_endpoint[endpoint] += n
        statuses = ", ".join(f"{e} {s}: {n}" for (e, s), n in sorted(STATS.items()))
        terminalreporter.write_sep(
            "-",
            f"fuzz ({PROFILE}): {EXAMPLES['examples']} cases, {sum(STATS.values())} requests",
        )
        terminalreporter.write_line(", ".join(f"{e}: {n}" for e, n in sorted(by_endpoint.items())))
        terminalreporter.write_line(statuses)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    if not request.config.pluginmanager.has_plugin("importapi-lite-fuzz-summary"):
        request.config.pluginmanager.register(_Summary(), "importapi-lite-fuzz-summary")
    running = Server(tmp_path_factory.mktemp("fuzz"))
    try:
        yield running
    finally:
        running.stop()


# --- what every answer must be ----------------------------------------------------------------

JSON_TYPE = "application/json;charset=UTF-8"
TEXT_TYPE = "text/plain;charset=UTF-8"
CREATED = {"status": "OK", "message": "Batch Accepted!"}
VALID = {"status": "OK", "message": "Batch is valid!"}
NOT_ARRAY = {"status": "ERROR", "message": "An array of records is expected"}
BAD_COUNT = {"status": "ERROR", "message": "A request must contain between 1 and 20000 records"}
FORBIDDEN = {
    "status": "ERROR",
    "error": "Forbidden",
    "errors": {"error": "Access token is not associated with this client."},
}
FIELD_MESSAGES = {
    "can't be blank",
    "should be an integer",
    "should be a number",
    "should be a string",
    "should be an array of strings",
    "unknown key",
    "can not be above 9223372036854775807",
    "can not be below -9223372036854775808",
    "must be upsert",
    "data must be an object",
    "data must include keys",
    "keys cannot not be null in data",
    "keys must be scalar values",
    "String keys cannot be longer than 1024 characters",
    "data cannot contain more than 10000 data points",
}
MULTIPLE_CLIENTS = (
    f"The batch contains data points for multiple clients. Only client_id {CLIENT_ID} is allowed"
)
BATCH_ERROR = re.compile(
    r"Request failed validation:#.+|Invalid JSON schema: .+"
    r"|Record \d+ did not conform to schema: .+"
    r"|Record is missing key property .*|Record \d+ contains more than 10000 data points"
    r"|Record \d+ key property .* must be a scalar value"
    r"|String keys cannot be longer than 1024 characters",
    re.DOTALL,
)
# What only Python says: a traceback, an object's repr, or the words of its built-in exceptions.
PYTHON = re.compile(
    r"Traceback \(most recent call last\)|File \"[^\"]*\", line \d+|<class '|object at 0x"
    r"|\b(?:datetime|decimal|uuid|collections|transit\w*)\.\w+\(|\b(?:Decimal|frozendict)\("
    r"|'(?:int|str|tuple|list|dict|float|bool|NoneType|bytes|frozendict|Keyword|Symbol)' object"
    r"|object of type '|, not '\w+'|invalid literal for int\(\)|int\(\) argument"
    r"|index out of range|set_int_max_str_digits|maximum recursion depth"
)


def malformed(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.keys() == {"status", "message", "error", "input"}
        and body["status"] == "ERROR"
        and body["message"] == "Malformed json in the body!"
        and isinstance(body["error"], str)
        and body["error"] != ""
        and body["input"] is None
    )


def is_reason(reason: Any) -> bool:
    if reason == MULTIPLE_CLIENTS:
        return True
    return (
        isinstance(reason, dict)
        and bool(reason)
        and all(
            isinstance(messages, list) and messages and set(messages) <= FIELD_MESSAGES
            for messages in reason.values()
        )
    )


def check_answer(path: str, reply: Reply, records: int | None = None) -> Any:
    """The documented status and exactly the documented body for it; the body, parsed."""
    assert reply.status < 500, reply
    assert PYTHON.search(reply.text) is None, reply
    if path == BATCH and reply.status == 415:
        assert (reply.content_type, reply.text) == (
            TEXT_TYPE,
            "Content-Type must be application/json",
        )
        return reply.text
    assert reply.content_type == JSON_TYPE, reply
    body = reply.body
    status = reply.status
    if status == 415:
        assert path != BATCH
        assert body.keys() == {"status", "message"} and body["status"] == "ERROR", reply
        assert body["message"].startswith("Unsupported content-type "), reply
        assert body["message"].endswith(
            ". Please send application/json or application/transit+json"
        ), reply
    elif path == BATCH:
        assert status in (201, 400), reply
        if status == 201:
            assert body == CREATED, reply
        else:
            assert malformed(body) or (
                body.keys() == {"error"}
                and isinstance(body["error"], str)
                and BATCH_ERROR.fullmatch(body["error"])
            ), reply
    else:
        success = (VALID, 200) if path == VALIDATE else (CREATED, 201)
        assert status in (success[1], 400, 403, 422), reply
        if status == success[1]:
            assert body == success[0], reply
        elif status == 400:
            assert malformed(body) or body in (NOT_ARRAY, BAD_COUNT), reply
        elif status == 403:
            assert body == FORBIDDEN, reply
        else:
            assert body.keys() == {"status", "error", "errors"}, reply
            assert body["status"] == "ERROR"
            assert body["error"] == "Request cannot be processed; see errors."
            errors = body["errors"]
            assert isinstance(errors, list) and errors, reply
            assert all(e.keys() == {"reason"} and is_reason(e["reason"]) for e in errors), reply
            if records is not None:
                assert len(errors) <= records, reply
    return body


# --- what the store must hold -----------------------------------------------------------------


def snapshot(data_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file the store wrote (tokens and shared-memory files aside), with size and mtime."""
    found = {}
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.name.startswith(("tokens", "admin-token")):
            if not path.name.endswith("-shm"):
                stat = path.stat()
                found[str(path.relative_to(data_dir))] = (stat.st_size, stat.st_mtime_ns)
    return found


def read(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rejected(server: Server, table: str) -> list[dict[str, Any]]:
    path = integration_dir(server.data_dir, CLIENT_ID, DEFAULT_INTEGRATION) / (
        REJECTED_TABLE + ".sqlite3"
    )
    rows = read(path, f"SELECT * FROM {REJECTED_TABLE} WHERE table_name = ?", (table,))
    for row in rows:
        assert row["reason"], row
        row["record"] = json.loads(row["record"])
    return rows


def as_logged(value: Any) -> Any:
    """A value as ``_sdc_rejected.record`` keeps it (JSON, anything else as text)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stored_forms(value: Any) -> list[Any]:
    """Every value SQLite may hold for ``value``: its own type's, or the one a schema gave it."""
    if isinstance(value, bool):
        return [int(value)]
    if isinstance(value, int):
        own = value if -(2**63) <= value < 2**63 else str(value)
        return [own, float(value)] if abs(value) < 2**1000 else [own]
    if isinstance(value, Decimal):
        return [format(value, "f"), str(value)]
    if isinstance(value, dt.datetime):
        return [_timestamp(value)]
    if isinstance(value, str):
        try:
            return [value, _timestamp(dt.datetime.fromisoformat(value))]
        except (ValueError, OverflowError):
            return [value]
    return [value]


SPLITS = ("", "__it", "__do", "__de", "__st", "__bo", "__ti")


def holds(row: dict[str, Any], name: str, value: Any) -> bool:
    forms = stored_forms(value)
    return any(row.get(name + split, object()) in forms for split in SPLITS)


Point = tuple[int, dict[str, Any], list[str]]  # sequence, data, key_names


def check_loaded(server: Server, table: str, points: list[Point]) -> None:
    """After a 2xx: each data point is in the table or in ``_sdc_rejected``.

    Where the table has an active version, older rows may have been deleted on purpose
    (SPEC §10.5), so only the rejections are checked there.
    """
    logged = Counter(
        json.dumps([r["record"].get("sequence"), r["record"].get("data")], sort_keys=True)
        for r in rejected(server, table)
    )
    try:
        path = table_path(server.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, table)
    except NameTooLong:
        path = Path("/nonexistent")
    meta = read(path, "SELECT * FROM _sdc_table_meta WHERE table_name = ?", (table,))
    if meta and meta[0]["active_version"] is not None:
        return
    rows = read(path, f"SELECT * FROM {quoted(table)}")
    loaded: list[Point] = []
    for sequence, data, key_names in points:
        entry = json.dumps([sequence, as_logged(data)], sort_keys=True)
        if logged[entry] > 0:
            logged[entry] -= 1
            continue
        loaded.append((sequence, data, key_names))
        assert meta, f"{table!r}: data point {sequence} is neither loaded nor rejected"
        if not key_names:  # append-only: a row of its own
            assert any(r["_sdc_sequence"] == sequence for r in rows), (table, sequence, rows)
            continue
        match = [r for r in rows if all(holds(r, k, data[k]) for k in key_names)]
        assert match, f"{table!r}: no row for data point {sequence} {data!r}: {rows!r}"
        assert match[0]["_sdc_sequence"] >= sequence, (table, sequence, match)
    # The newest of this request's data points per key is the row, value for value.
    newest: dict[str, Point] = {}
    for sequence, data, key_names in loaded:
        key = json.dumps([as_logged(data[k]) for k in key_names]) if key_names else str(id(data))
        if key not in newest or sequence >= newest[key][0]:
            newest[key] = (sequence, data, key_names)
    for sequence, data, key_names in newest.values():
        match = [
            r
            for r in rows
            if r["_sdc_sequence"] == sequence and all(holds(r, k, data[k]) for k in key_names)
        ]
        if not match:
            continue  # an earlier request's row with a greater sequence won
        for name, value in data.items():
            if value is not None and not isinstance(value, (dict, list)):
                assert any(holds(r, name, value) for r in match), (table, name, value, match)


def send(server: Server, path: str, raw: bytes, content_type: str = JSON) -> Reply:
    """POST a body; check the answer and what it did to the store."""
    before = snapshot(server.data_dir)
    reply = server.post(path, raw, content_type)
    check_answer(path, reply)
    if reply.status >= 400 or path == VALIDATE:
        assert snapshot(server.data_dir) == before, f"{reply!r} changed the store"
        return reply
    body = decode_body(content_type, raw)
    if path == BATCH:
        keys = body.get("key_names") or []
        upserts = [m for m in body["messages"] if m["action"] == "upsert"]
        check_loaded(
            server, body["table_name"], [(m["sequence"], m["data"], keys) for m in upserts]
        )
        return reply
    by_table: dict[str, list[Point]] = {}
    for record in body:
        if record["action"] == "upsert":
            point = (record["sequence"], record["data"], record["key_names"])
            by_table.setdefault(record["table_name"], []).append(point)
    for table, points in by_table.items():
        check_loaded(server, table, points)
    return reply


def validate_then_push(server: Server, raw: bytes, content_type: str = JSON) -> None:
    """On an empty store: validate answers as push does (200 for its 201, the same errors)."""
    server.reset()
    checked = send(server, VALIDATE, raw, content_type)
    pushed = send(server, PUSH, raw, content_type)
    if checked.status == 200:
        assert pushed.status == 201, (checked, pushed)
    else:
        assert (pushed.status, pushed.text) == (checked.status, checked.text)


# --- strategies: names, values, records -------------------------------------------------------

HOSTILE_NAMES = [
    "id", "ID", "Id", "name", "a__b", "value", "", " ", "\x00", "a\x00b", '"', "'", "`",
    "'; DROP TABLE t; --", '"; DROP TABLE "t', "_sdc_sequence", "__sdc_primary_key", "_SDC_x",
    "_sdc_rejected", "sqlite_master", "_rjm", "../x", "a/b", "a\\b", "C:", "con", "NUL", "com1",
    "\u202eabc", "\u200f", "ü", "Ü", "a.b", "%41", "x" * 64, "x" * 300,
]  # fmt: skip
FIELD = st.sampled_from(HOSTILE_NAMES) | st.text(max_size=6)
TABLE = st.sampled_from(["users", "Users", "orders", *HOSTILE_NAMES[5:]]) | st.text(
    min_size=1, max_size=10
)
SEQUENCE = st.integers(0, 3) | st.integers(-(2**63), 2**63 - 1) | st.integers(2**63, 2**64)
FLOAT = st.floats(allow_nan=False, allow_infinity=False)
SCALAR = (
    st.none() | st.booleans() | st.integers(-3, 3) | st.integers(-(2**70), 2**70) | FLOAT
    | st.text(max_size=8)
)  # fmt: skip
KEY_VALUE = st.integers(-3, 3) | st.text(max_size=3) | st.booleans() | FLOAT | st.integers()


def values(scalar: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalar,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(FIELD, inner, max_size=3),
        max_leaves=8,
    )


VALUE = values(SCALAR)
ANY_JSON = values(SCALAR | st.sampled_from(["upsert", "switch_view", "activate_version"]))


@st.composite
def push_record(draw: st.DrawFn, value: st.SearchStrategy[Any] = VALUE) -> dict[str, Any]:
    key_names = draw(st.lists(FIELD, min_size=1, max_size=2, unique=True))
    data = dict(draw(st.dictionaries(FIELD, value, max_size=4)))  # a copy: reported as sent
    for key in key_names:
        if draw(st.integers(0, 9)):
            data[key] = draw(KEY_VALUE)
    record: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "table_name": draw(TABLE),
        "sequence": draw(SEQUENCE),
        "action": "upsert",
        "key_names": key_names,
        "data": data,
    }
    if draw(st.integers(0, 3)) == 0:
        record["table_version"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 19)) == 0:
        record["action"] = "switch_view"
    return record


@st.composite
def wrong_record(draw: st.DrawFn) -> Any:
    """A record with wrong types, missing and unknown fields anywhere; now and then no record."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_JSON)
    record = draw(push_record())
    for name in list(record):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            del record[name]
        elif choice == 1:
            record[name] = draw(ANY_JSON)
    if draw(st.integers(0, 5)) == 0:
        record[draw(FIELD)] = draw(ANY_JSON)
    if draw(st.integers(0, 9)) == 0:
        record["client_id"] = draw(st.integers(-1, CLIENT_ID + 1))
    return record


PUSH_BODY = st.lists(push_record(), min_size=1, max_size=5)
WRONG_BODY = st.lists(wrong_record(), max_size=4) | ANY_JSON


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


# Transit: the values only Transit carries, written by the Transit library stitchclient uses.
TRANSIT_SCALAR = (
    SCALAR
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.just(dt.UTC),
    )
    | st.uuids()
    | st.floats()  # NaN and ±Infinity: ~zNaN, ~zINF
    | st.frozensets(st.integers(-3, 3), max_size=3)
)
TRANSIT_BODY = st.lists(push_record(values(TRANSIT_SCALAR)), min_size=1, max_size=5)


def transit_bytes(value: Any) -> bytes:
    out = io.StringIO()
    Writer(out, "json").write(value)
    return out.getvalue().encode("utf-8", "surrogatepass")


# Byte-level mutations: inserted, replaced, deleted and truncated bytes, chosen to hurt.
TOKENS = st.sampled_from(
    [
        b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1e-999", b"9" * 5000,
        b"-9223372036854775809", b"9223372036854775808", b"1.0", b"-0", b"\xff", b"\xc3",
        b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b'"\\ud800"', b'"\\udc00\\ud800"', b'"\\u0000"',
        b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"null", b"true", b"\x00", b"[" * 3000,
        b'"~#set"', b'"~#cmap"', b'"~#list"', b'"~#\'"', b'"~#u"', b'"~#point"', b'"^ "', b'"^0"',
        b'"^1"', b'"^9"', b'"^Z"', b'"^~"', b'"~i"', b'"~i9"', b'"~n1"', b'"~m"', b'"~m-1"',
        b'"~t"', b'"~t2020-01-01"', b'"~zNaN"', b'"~zINF"', b'"~z"', b'"~f"', b'"~f1e99999"',
        b'"~d"', b'"~u"', b'"~:"', b'"~$x"', b'"~?t"', b'"~?x"', b'"~_"', b'"~bAA=="', b'"~c"',
        b'"~r"', b'"~~"', b'"`"', b'"~x"',
    ]
) | st.binary(max_size=6)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    raw = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["insert", "replace", "delete", "truncate"]))
        if operation == "insert":
            raw[at:at] = draw(TOKENS)
        elif operation == "replace":
            raw[at : at + draw(st.integers(1, 4))] = draw(TOKENS)
        elif operation == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        else:
            del raw[at:]
    return bytes(raw)


@st.composite
def duplicate_keys(draw: st.DrawFn) -> bytes:
    """A record written by hand with repeated fields: the last of each counts, as in Python."""
    record = draw(push_record())
    pairs = list(record.items())
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from([*record, "data"]))
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(ANY_JSON)))
    fields = ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs)
    return ("[{" + fields + "}]").encode()


def nested(depth: int, opener: bytes, closer: bytes, core: bytes = b"1") -> bytes:
    return opener * depth + core + closer * depth


HOSTILE_BYTES = st.one_of(
    st.binary(max_size=64),
    st.integers(1, 200_000).map(lambda n: nested(n, b"[", b"]")),
    st.integers(1, 200_000).map(lambda n: nested(n, b'{"a":', b"}")),
    st.integers(1, 3_000).map(lambda n: b"[" + nested(n, b'["^ ","a",', b"]") + b"]"),
    st.integers(1, 3_000).map(lambda n: b"[" + nested(n, b'["~#set",[', b"]]") + b"]"),
    duplicate_keys(),
    st.sampled_from([b"", b"[]", b"{}", b"null", b"[null]", b"[[]]", b"[{}]", b"\xef\xbb\xbf[]"]),
)


# --- push and validate ------------------------------------------------------------------------


@examples(110)
@given(body=PUSH_BODY)
def test_push_json_records_load_or_fail_as_documented(server: Server, body: Any) -> None:
    validate_then_push(server, json_bytes(body))


@examples(90)
@given(body=WRONG_BODY)
def test_push_json_with_wrong_types_everywhere(server: Server, body: Any) -> None:
    validate_then_push(server, json_bytes(body))


@examples(75)
@given(bodies=st.lists(PUSH_BODY, min_size=2, max_size=3))
def test_successive_pushes_keep_every_acknowledged_record(server: Server, bodies: Any) -> None:
    server.reset()
    for body in bodies:
        send(server, PUSH, json_bytes(body))


@examples(110)
@given(body=TRANSIT_BODY)
def test_push_transit_records_load_or_fail_as_documented(server: Server, body: Any) -> None:
    validate_then_push(server, transit_bytes(body), TRANSIT)


@examples(110)
@given(raw=mutated(PUSH_BODY.map(json_bytes)) | HOSTILE_BYTES)
def test_push_json_raw_mutations(server: Server, raw: bytes) -> None:
    validate_then_push(server, raw)


@examples(110)
@given(raw=mutated(TRANSIT_BODY.map(transit_bytes)) | HOSTILE_BYTES)
def test_push_transit_raw_mutations(server: Server, raw: bytes) -> None:
    validate_then_push(server, raw, TRANSIT)


MEDIA_TYPE = st.sampled_from(
    [JSON, TRANSIT, "APPLICATION/JSON", "application/json; charset=latin-1", "text/plain", "",
     "application/json+transit", "application/transit+msgpack", "multipart/form-data; boundary=x",
     "application/json\x7f", "*/*", ";", "application/json;;;", "\u00e9/json"]
) | st.text(max_size=20)  # fmt: skip


@examples(45)
@given(content_type=MEDIA_TYPE, raw=st.sampled_from([b"[]", json_bytes([{"a": 1}])]))
def test_any_content_type_gets_a_documented_answer(
    server: Server, content_type: str, raw: bytes
) -> None:
    assume(content_type.isprintable() and "\n" not in content_type)
    server.reset()
    for path in (PUSH, VALIDATE, BATCH):
        try:
            content_type.encode("latin-1")
        except UnicodeEncodeError:
            return  # http.client cannot send it; aiohttp would not receive it either
        send(server, path, raw, content_type)


# --- batch ------------------------------------------------------------------------------------

SIMPLE_TYPES = ["integer", "number", "string", "boolean", "null", "object", "array"]


@st.composite
def property_schema(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    choice = draw(st.integers(0, 9 if depth < 2 else 5))
    if choice <= 3:
        return {"type": draw(st.sampled_from(["integer", "number", "string", "boolean"]))}
    if choice == 4:
        return {"type": ["null", draw(st.sampled_from(["integer", "number", "string"]))]}
    if choice == 5:
        return draw(st.sampled_from([{}, {"type": "string", "format": "date-time"}]))
    if choice == 6:
        return {"anyOf": [{"type": "integer"}, {"type": "string"}, {"type": "null"}]}
    if choice == 7:
        return {"type": ["integer", "string"]}
    if choice == 8:
        return {"type": "object", "properties": draw(properties(depth + 1))}
    return {"type": "array", "items": draw(property_schema(depth + 1))}


def properties(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(FIELD, property_schema(depth), max_size=4)


def conforming(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that (mostly) fit a schema from ``property_schema``."""
    options = {
        "integer": st.integers(-3, 3) | st.integers(-(2**64), 2**64),
        "number": st.integers(-3, 3) | FLOAT,
        "string": st.text(max_size=6) | st.sampled_from(["2020-01-13T21:25:03+0000", "x"]),
        "boolean": st.booleans(),
        "null": st.none(),
    }
    if "anyOf" in schema:
        return st.one_of([conforming(o) for o in schema["anyOf"]])
    declared = schema.get("type")
    if declared == "object":
        return st.fixed_dictionaries(
            {}, optional={k: conforming(v) for k, v in schema["properties"].items()}
        )
    if declared == "array":
        return st.lists(conforming(schema["items"]), max_size=3)
    if declared is None:
        return SCALAR
    names = declared if isinstance(declared, list) else [declared]
    return st.one_of([options[n] for n in names])


@st.composite
def batch_body(draw: st.DrawFn, table: str | None = None) -> dict[str, Any]:
    props = draw(properties())
    key_names = (
        draw(st.lists(st.sampled_from(sorted(props)), max_size=2, unique=True)) if props else []
    )
    if draw(st.integers(0, 19)) == 0:
        key_names.append(draw(FIELD))
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if draw(st.integers(0, 4)) == 0:
        schema["additionalProperties"] = draw(st.booleans())
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 9)) == 0:
            messages.append({"action": "activate_version", "sequence": draw(SEQUENCE)})
            continue
        data = dict(
            draw(st.fixed_dictionaries({}, optional={k: conforming(v) for k, v in props.items()}))
        )
        for key in key_names:
            if key in props and draw(st.integers(0, 9)):
                data[key] = draw(conforming(props[key]).filter(lambda v: v is not None) | KEY_VALUE)
        if draw(st.integers(0, 4)) == 0:
            data[draw(FIELD)] = draw(VALUE)
        message = {"action": "upsert", "sequence": draw(SEQUENCE), "data": data}
        if draw(st.integers(0, 4)) == 0:
            message["time_extracted"] = draw(
                st.sampled_from(["1970-01-01T03:45:23.000000Z", "not a time", ""])
            )
        messages.append(message)
    body: dict[str, Any] = {
        "table_name": table if table is not None else draw(TABLE),
        "schema": schema,
        "key_names": key_names,
        "messages": messages,
    }
    if draw(st.integers(0, 3)) == 0:
        body["table_version"] = draw(st.integers(0, 3))
    if draw(st.integers(0, 5)) == 0:
        body["bookmark_names"] = draw(st.lists(FIELD, max_size=2))
    if draw(st.integers(0, 5)) == 0:
        del body["key_names"]
    return body


@examples(110)
@given(body=batch_body())
def test_batch_well_formed_loads_or_fails_as_documented(server: Server, body: Any) -> None:
    server.reset()
    send(server, BATCH, json_bytes(body))


@examples(55)
@given(table=TABLE, data=st.data())
def test_successive_batches_keep_every_acknowledged_record(
    server: Server, table: str, data: st.DataObject
) -> None:
    server.reset()
    for _ in range(data.draw(st.integers(2, 3))):
        send(server, BATCH, json_bytes(data.draw(batch_body(table))))


SCHEMA_WORDS = [
    "type", "properties", "items", "additionalProperties", "patternProperties", "required",
    "enum", "anyOf", "oneOf", "allOf", "not", "$ref", "definitions", "format", "pattern",
    "minimum", "maximum", "exclusiveMinimum", "multipleOf", "minLength", "maxItems",
    "dependencies", "uniqueItems", "additionalItems", "$schema", "id", "default", "inclusion",
]  # fmt: skip
# Invalid, engine-specific and catastrophic patterns; the last ones backtrack exponentially on
# REDOS_TEXT, in re or (the two alternations) in regex too.
PATTERNS = st.sampled_from(
    ["(", ")", "[", "*", "a{2,1}", "(?P<x>", "\\", "^$", ".*", "(?i)x", "a(?i)x", "\\p{L}",
     "[[:alpha:]]", "a{99999999999}", "(" * 3000 + ")" * 3000, "(?<=a+)b", "\\1(a)",
     "^(a+)+$", "^(a|a)+$", "(a|aa)+$"]
) | st.text(max_size=5)  # fmt: skip
REDOS_TEXT = st.sampled_from(["a" * 40 + "!", "a" * 28, "aaaa!"])
HOSTILE_SCHEMA_VALUE = st.recursive(
    SCALAR | PATTERNS | st.sampled_from(SIMPLE_TYPES + ["int", "any", "#", "#/definitions/a"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(SCHEMA_WORDS) | FIELD | PATTERNS, inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def hostile_schema(draw: st.DrawFn) -> Any:
    """Hostile schemas small enough to print; ``test_batch_deeply_nested_schemas`` has the deep."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(HOSTILE_SCHEMA_VALUE)
    if kind == 1:  # patterns, the ones Python's re refuses included
        where = draw(st.sampled_from(["pattern", "patternProperties"]))
        pattern = draw(PATTERNS)
        if where == "pattern":
            return {"properties": {"id": {"type": "integer"}, "s": {"pattern": pattern}}}
        return {"properties": {"id": {"type": "integer"}}, "patternProperties": {pattern: {}}}
    if kind == 2:  # references
        return draw(
            st.sampled_from(
                [
                    {"properties": {"id": {"$ref": "#"}}},
                    {"$ref": "#"},
                    {"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"},
                    {"properties": {"id": {"$ref": "http://127.0.0.1:1/x"}}},
                    {"properties": {"id": {"$ref": "file:///etc/passwd"}}},
                    {"properties": {"id": {"$ref": "#/properties/nope"}}},
                    {"properties": {"id": {"$ref": 5}}},
                ]
            )
        )
    props = draw(st.dictionaries(FIELD, HOSTILE_SCHEMA_VALUE, max_size=3))
    return {"properties": {"id": {"type": "integer"}, **props}}


@examples(90)
@given(
    schema=hostile_schema(),
    data=st.dictionaries(FIELD | st.just("s") | REDOS_TEXT, VALUE | REDOS_TEXT, max_size=3),
    key=st.booleans(),
)
def test_batch_hostile_schemas(server: Server, schema: Any, data: Any, key: bool) -> None:
    body = {
        "table_name": "t",
        "schema": schema,
        "key_names": ["id"] if key else [],
        "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1} | data}],
    }
    server.reset()
    send(server, BATCH, json_bytes(body))


NESTING = {  # keyword: (opening, closing) around the subschema
    "properties": ('{"properties":{"id":', "}}"),
    "items": ('{"items":', "}"),
    "not": ('{"not":', "}"),
    "anyOf": ('{"anyOf":[', "]}"),
}


def nested_schema(motif: list[str], depth: int) -> str:
    """``depth`` levels of the keywords in ``motif``, repeated, around ``{"type": "integer"}``.

    Written as text: thousands of levels are past what ``json.dumps`` (and hypothesis' printer,
    had the schema been the generated value) can recurse through.
    """
    levels = [NESTING[motif[i % len(motif)]] for i in range(depth)]
    return (
        "".join(opening for opening, _ in levels)
        + '{"type":"integer"}'
        + "".join(closing for _, closing in reversed(levels))
    )


@examples(20)
@given(
    motif=st.lists(st.sampled_from(sorted(NESTING)), min_size=1, max_size=6),
    depth=st.integers(1, 3000),
    key=st.booleans(),
)
def test_batch_deeply_nested_schemas(
    server: Server, motif: list[str], depth: int, key: bool
) -> None:
    key_names = '["id"]' if key else "[]"
    message = '{"action":"upsert","sequence":1,"data":{"id":1}}'
    raw = (
        f'{{"table_name":"t","schema":{nested_schema(motif, depth)},'
        f'"key_names":{key_names},"messages":[{message}]}}'
    )
    server.reset()
    send(server, BATCH, raw.encode())


@st.composite
def wrong_envelope(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(ANY_JSON)
    body = draw(batch_body())
    for name in list(body):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            del body[name]
        elif choice == 1:
            body[name] = draw(ANY_JSON)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        for name in list(message):
            choice = draw(st.integers(0, 14))
            if choice == 0:
                del message[name]
            elif choice == 1:
                message[name] = draw(ANY_JSON)
        if draw(st.integers(0, 9)) == 0:
            message[draw(FIELD)] = draw(ANY_JSON)
    if draw(st.integers(0, 9)) == 0:
        body[draw(FIELD)] = draw(ANY_JSON)
    return body


@examples(90)
@given(body=wrong_envelope())
def test_batch_with_wrong_types_everywhere(server: Server, body: Any) -> None:
    server.reset()
    send(server, BATCH, json_bytes(body))


@examples(90)
@given(raw=mutated(batch_body().map(json_bytes)) | HOSTILE_BYTES)
def test_batch_raw_mutations(server: Server, raw: bytes) -> None:
    server.reset()
    send(server, BATCH, raw)


# --- regressions the fuzzing found: each the smallest request that shows it ---------------------


def test_batch_schema_with_an_invalid_pattern_property_regex_is_a_400_not_a_500(
    server: Server,
) -> None:
    body = {
        "table_name": "t",
        "schema": {"properties": {"id": {"type": "integer"}}, "patternProperties": {"(": {}}},
        "key_names": ["id"],
        "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1}}],
    }
    server.reset()
    reply = server.post(BATCH, json_bytes(body))
    assert reply.status == 400, reply
    assert reply.body["error"].startswith("Invalid JSON schema: "), reply


def _transit_record(value: str) -> bytes:
    head = '["^ ","client_id",7723,"table_name","t","sequence",1,"action","upsert",'
    return f'[{head}"key_names",["id"],"data",["^ ","id",1,"x",{value}]]]'.encode()


@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        pytest.param(
            TRANSIT, _transit_record('"~t2020-01-01T00:00:00+25:00"'), id="timedelta-repr"
        ),
        pytest.param(TRANSIT, _transit_record('["~#set",5]'), id="int-not-iterable"),
        pytest.param(TRANSIT, _transit_record('["~#cmap",5]'), id="int-has-no-len"),
        pytest.param(TRANSIT, _transit_record('["~#m",[1]]'), id="int-argument-tuple"),
        pytest.param(TRANSIT, _transit_record('"~iabc"'), id="invalid-literal-for-int"),
        pytest.param(TRANSIT, _transit_record('["~#u",[1]]'), id="tuple-index"),
        pytest.param(JSON, b"[" * 100_000 + b"]" * 100_000, id="recursion-depth"),
        pytest.param(JSON, b"[1" + b"0" * 5000 + b"]", id="int-max-str-digits"),
    ],
)
def test_malformed_body_detail_shows_no_python_internals(
    server: Server, content_type: str, raw: bytes
) -> None:
    reply = server.post(PUSH, raw, content_type)
    assert reply.status == 400, reply
    assert PYTHON.search(reply.body["error"]) is None, reply


def test_batch_schema_error_shows_no_python_internals(server: Server) -> None:
    loop = {"definitions": {"a": {"$ref": "#/definitions/a"}}, "$ref": "#/definitions/a"}
    body = {
        "table_name": "t",
        "schema": loop,
        "messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1}}],
    }
    server.reset()
    reply = server.post(BATCH, json_bytes(body))
    assert reply.status == 400, reply
    assert PYTHON.search(reply.body["error"]) is None, reply


def _one_record_batch(schema: Any) -> bytes:
    message = {"action": "upsert", "sequence": 1, "data": {"id": 1}}
    return json_bytes({"table_name": "t", "schema": schema, "messages": [message]})


def _nested_schema(keyword: str, depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        schema = {"not": schema} if keyword == "not" else {"properties": {"id": schema}}
    return schema


def test_batch_schema_with_a_ref_that_is_not_a_string_is_a_400_not_a_500(server: Server) -> None:
    server.reset()
    reply = server.post(BATCH, _one_record_batch({"properties": {"id": {"$ref": 5}}}))
    assert reply.status == 400, reply
    assert reply.body["error"] == "Invalid JSON schema: $ref must be a string"


@pytest.mark.parametrize(
    ("schema", "status"),
    [
        # fastjsonschema compiles these to Python nested too deeply for compile(); the
        # reference validator still applies them (30 nots cancel out: the record conforms).
        pytest.param({"properties": {"id": _nested_schema("not", 30)}}, 201, id="not-30-deep"),
        pytest.param(_nested_schema("properties", 60), 201, id="properties-60-deep"),
    ],
)
def test_batch_schema_too_deep_for_the_fast_path_is_still_applied(
    server: Server, schema: Any, status: int
) -> None:
    server.reset()
    reply = server.post(BATCH, _one_record_batch(schema))
    assert reply.status == status, reply


@pytest.mark.parametrize("path", [PUSH, VALIDATE])
def test_content_type_with_a_non_ascii_byte_gets_a_415_not_a_500(server: Server, path: str) -> None:
    # The 415 body echoes the media type, which aiohttp decoded with surrogateescape; encoding
    # that body as UTF-8 raises, and aiohttp answers its own text/plain 500.
    reply = server.post(path, b"[]", "\u00a1")
    assert reply.status == 415, reply
    assert reply.content_type == JSON_TYPE, reply


@pytest.mark.parametrize("name", ["TRUE", "false"])
def test_push_of_an_array_of_objects_with_a_field_named_true_is_stored_not_a_500(
    server: Server, name: str
) -> None:
    # Subtable rows were staged in a table made by CREATE TABLE … AS SELECT, which names a
    # column "true" or "false" "columnN": inserting the staged rows failed (a 500).
    record = {
        "client_id": CLIENT_ID,
        "table_name": "users",
        "sequence": 0,
        "action": "upsert",
        "key_names": ["id"],
        "data": {"id": 0, "x": [{name: False, "n": "5"}]},
    }
    server.reset()
    assert send(server, PUSH, json_bytes([record])).status == 201
    path = table_path(server.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "users")
    assert read(path, f'SELECT "{name}", n FROM users__x') == [{name: 0, "n": "5"}]


def test_push_of_an_array_in_an_array_both_named_empty_is_stored_not_a_500(
    server: Server,
) -> None:
    # An empty path was taken for "top level", so the inner array's rows went to the outer
    # array's subtable, users__, and collided there (a 500); they belong in users____.
    record = {
        "client_id": CLIENT_ID,
        "table_name": "users",
        "sequence": 0,
        "action": "upsert",
        "key_names": ["id"],
        "data": {"id": 1, "": [{"": [7]}]},
    }
    server.reset()
    assert send(server, PUSH, json_bytes([record])).status == 201
    path = table_path(server.data_dir, CLIENT_ID, DEFAULT_INTEGRATION, "users")
    assert read(path, "SELECT _sdc_level_0_id FROM users__") == [{"_sdc_level_0_id": 0}]
    inner = read(path, "SELECT _sdc_level_1_id, value FROM users____")
    assert inner == [{"_sdc_level_1_id": 0, "value": 7}]


def _batch_with_pattern(where: str, pattern: str, text: str) -> bytes:
    if where == "pattern":
        schema = {"properties": {"id": {"type": "integer"}, "s": {"pattern": pattern}}}
        data = {"id": 1, "s": text}
    else:
        schema = {"properties": {"id": {"type": "integer"}}, "patternProperties": {pattern: {}}}
        data = {"id": 1, text: 1}
    message = {"action": "upsert", "sequence": 1, "data": data}
    return json_bytes(
        {"table_name": "t", "schema": schema, "key_names": ["id"], "messages": [message]}
    )


STALL = "a" * 40 + "!"
CONFORMS = "Record 0 did not conform to schema: "


@pytest.mark.parametrize(
    ("where", "pattern", "status", "error"),
    [
        # Exponential in re (the textbook catastrophic pattern); regex sees at once that it cannot
        # match.
        pytest.param(
            "pattern",
            "^(a+)+$",
            400,
            f"{CONFORMS}#/s: '{STALL}' does not match '^(a+)+$'",
            id="nested-quantifier",
        ),
        pytest.param("patternProperties", "^(a+)+$", 201, None, id="nested-quantifier-key"),
        # Exponential in regex too: stopped by the time limit [mock-defined text].
        pytest.param(
            "pattern",
            "^(a|a)+$",
            400,
            f"{CONFORMS}#/s: timed out matching pattern ^(a|a)+$",
            id="alternation",
        ),
        pytest.param(
            "patternProperties",
            "^(a|a)+$",
            400,
            f"{CONFORMS}#/{STALL}: timed out matching pattern ^(a|a)+$",
            id="alternation-key",
        ),
    ],
)
def test_batch_schema_pattern_cannot_stall_the_server(
    server: Server, where: str, pattern: str, status: int, error: str | None
) -> None:
    """A catastrophic-backtracking pattern must not hold the event loop: status stays live."""
    server.reset()
    replies: list[Reply] = []
    raw = _batch_with_pattern(where, pattern, STALL)
    batch = threading.Thread(target=lambda: replies.append(server.post(BATCH, raw)))
    batch.start()
    time.sleep(0.05)
    started = time.perf_counter()
    live = server.request("GET", "/v2/import/status")
    waited = time.perf_counter() - started
    batch.join(timeout=120)
    assert live.status == 200
    assert waited < 1.0, f"/v2/import/status took {waited:.1f} s while a batch was validated"
    (reply,) = replies
    assert reply.status == status, reply
    if error is not None:
        assert reply.body == {"error": error}


@pytest.mark.parametrize("where", ["pattern", "patternProperties"])
@pytest.mark.parametrize(
    "pattern",
    [
        pytest.param("a{99999999999}", id="overflow"),  # re: OverflowError, once a 500
        pytest.param("(" * 5000 + ")" * 5000, id="nested-5000-deep"),  # re: RecursionError
    ],
)
def test_batch_schema_pattern_python_cannot_compile_is_a_400_not_a_500(
    server: Server, where: str, pattern: str
) -> None:
    server.reset()
    reply = server.post(BATCH, _batch_with_pattern(where, pattern, "x"))
    assert reply.status == 400, reply
    assert reply.body["error"].startswith("Invalid JSON schema: "), reply
