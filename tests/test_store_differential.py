"""One loading model, two destinations: the fuzzer's bodies sent to a SQLite server and to a
PostgreSQL server must get the same answers and leave the same data, table by table: the same
columns with the same Stitch types (the SQL type names differ), the same rows (values as the
admin API shows them), the same rejections (PostgreSQL writes a NUL in a rejected name as
``\u0000``).

Where the two must differ, they may: PostgreSQL's name and column limits are Stitch's for
PostgreSQL, tighter than SQLite's, and it refuses text with a NUL; a table holding a record one
of them rejected for such a reason is left out of the comparison. The times each server stamps
(``_sdc_received_at``, ``_sdc_batched_at``) and an append-only table's random
``__sdc_primary_key`` (and its subtables' link to it) are left out of the rows, and a zero's
sign (SQLite keeps none).
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importapi_lite.admin.routes import ADMIN_PREFIX
from importapi_lite.settings import Settings
from importapi_lite.store.postgres import without_nul

from .helpers import CLIENT_ID, JSON, TRANSIT, Serving, make_token, serving
from .pg_cluster import Cluster
from .test_fuzz_endpoints import (
    BATCH,
    FIELD,
    KEY_VALUE,
    PUSH,
    PUSH_BODY,
    TRANSIT_BODY,
    VALUE,
    Server,
    batch_body,
    examples,
    json_bytes,
    transit_bytes,
)

pytestmark = pytest.mark.fuzz

COMPARED: Counter[str] = Counter()
# Each server's own: its clock, and the random key of an append-only table (and its subtables').
UNSTAMPED = {
    "_sdc_received_at",
    "_sdc_batched_at",
    "__sdc_primary_key",
    "_sdc_source_key___sdc_primary_key",
}
# Rejections that follow from a destination's own limits, not from the loading model.
OWN_LIMITS = ("longer than", "Too many columns", "is empty", "0x00", "out of range")


class DestinationServer(Server):
    """The fuzzer's server, on the given destination, in a process of its own (a server thread
    here would draw from the ``random`` module while Hypothesis draws an example, and
    Hypothesis takes that for a strategy's doing)."""

    def __init__(self, served: Serving, token: str, admin_token: str) -> None:
        self.port = served.port
        self.token = token
        self.admin_token = admin_token

    def admin(self, path: str) -> Any:
        """The admin API's answer; None for a 404 (a table whose every record was rejected is
        listed, with its rejections, but has no table to describe)."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        reply = self.request("GET", ADMIN_PREFIX + path, headers=headers)
        if reply.status == 404:
            return None
        assert reply.status == 200, reply
        return reply.body


@contextmanager
def destination_server(data_dir: Path, destination: str) -> Iterator[DestinationServer]:
    token = make_token(Settings(data_dir=data_dir, destination=destination))
    admin_token = secrets.token_hex(16)
    env = {"IMPORTAPI_LITE_DESTINATION": destination, "IMPORTAPI_LITE_ADMIN_TOKEN": admin_token}
    # fast: a crash-safe commit without an fsync each; durability is not what is compared here.
    with serving(data_dir, "--durability", "fast", env=env) as served:
        yield DestinationServer(served, token, admin_token)


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, postgres_cluster: Cluster
) -> Iterator[tuple[DestinationServer, DestinationServer]]:
    url = postgres_cluster.create_database("differential")
    with (
        destination_server(tmp_path_factory.mktemp("sqlite") / "data", "sqlite") as sqlite,
        destination_server(tmp_path_factory.mktemp("postgresql") / "data", url) as postgresql,
    ):
        yield sqlite, postgresql


def stored(server: DestinationServer) -> dict[str, Any]:
    """Every table's columns and rows, and every rejection, as the admin API shows them."""
    base = f"/clients/{CLIENT_ID}/integrations/import_api"
    found: dict[str, Any] = {}
    for summary in server.admin(f"{base}/tables")["tables"]:
        for name in [summary["name"], *(s["name"] for s in summary["subtables"])]:
            path = f"{base}/tables/{urllib.parse.quote(name, safe='')}"
            described = server.admin(path)
            if described is None:
                continue
            columns = [(c["name"], c["type"]) for c in described["columns"]]
            page = server.admin(f"{path}/rows?limit=10000")
            rows = sorted(
                json.dumps({k: unsigned(v) for k, v in row.items() if k not in UNSTAMPED})
                for row in page["rows"]
            )
            found[name] = (columns, rows)
    rejected = server.admin(f"{base}/rejected?limit=10000")
    found["_sdc_rejected"] = sorted(
        (without_nul(r["table_name"]), without_nul(r["reason"]), json.dumps(r["record"]))
        for r in rejected["records"]
    )
    return found


def unsigned(value: Any) -> Any:
    """-0.0 as 0.0: SQLite stores a REAL zero without its sign, PostgreSQL keeps it."""
    return 0.0 if isinstance(value, float) and value == 0 else value


def stitch_types(columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, kind) for name, kind in columns if name not in UNSTAMPED]


def compare(servers: tuple[DestinationServer, DestinationServer], bodies: list[bytes]) -> None:
    sqlite, postgresql = servers
    for each in servers:
        each.reset()
    for path, raw, content_type in bodies:
        a = sqlite.post(path, raw, content_type)
        b = postgresql.post(path, raw, content_type)
        assert (a.status, a.body) == (b.status, b.body), raw[:2000]
    left, right = stored(sqlite), stored(postgresql)
    own = {
        table
        for _, table, reason, _ in _rejections(left) + _rejections(right)
        if any(words in reason for words in OWN_LIMITS)
    }
    tables = {t for t in left.keys() | right.keys() if t != "_sdc_rejected"}
    COMPARED["tables"] += len(tables)
    for table in sorted(tables):
        if any(table == t or table.startswith(t + "__") for t in own):
            continue  # the table, or one of its subtables ("a__b" owns "a__b__c")
        assert table in left and table in right, (table, sorted(left), sorted(right))
        (lcols, lrows), (rcols, rrows) = left[table], right[table]
        assert stitch_types(lcols) == stitch_types(rcols), table
        assert lrows == rrows, table
    assert [r for r in _rejections(left) if r[1] not in own] == [
        r for r in _rejections(right) if r[1] not in own
    ]


def _rejections(found: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(None, *r) for r in found.get("_sdc_rejected", [])]


@st.composite
def loadable_record(draw: st.DrawFn) -> dict[str, Any]:
    """A push record the API accepts, of a few tables, with any data: what loading decides."""
    key = draw(st.sampled_from(["id", "Id", "k"]))
    data = dict(draw(st.dictionaries(FIELD, VALUE, max_size=4)))
    data[key] = draw(KEY_VALUE)
    return {
        "client_id": CLIENT_ID,
        "table_name": draw(st.sampled_from(["users", "Users", "orders", "a__b"])),
        "sequence": draw(st.integers(0, 5)),
        "action": "upsert",
        "key_names": [key],
        "data": data,
    }


@examples(15)
@given(body=PUSH_BODY)
def test_json_pushes_store_the_same_on_both(servers: Any, body: Any) -> None:
    compare(servers, [(PUSH, json_bytes(body), JSON)])


@examples(10)
@example(  # a subtable of a table whose record PostgreSQL alone rejected (an empty field name)
    bodies=[
        [
            {
                "client_id": CLIENT_ID,
                "table_name": "a__b",
                "sequence": 0,
                "action": "upsert",
                "key_names": ["id"],
                "data": {"": ["x"], "id": 0},
            }
        ]
    ]
)
@given(bodies=st.lists(st.lists(loadable_record(), min_size=1, max_size=6), min_size=1, max_size=3))
def test_loadable_pushes_one_after_another_store_the_same_on_both(
    servers: Any, bodies: Any
) -> None:
    compare(servers, [(PUSH, json_bytes(body), JSON) for body in bodies])


@examples(4)
@given(body=TRANSIT_BODY)
def test_transit_pushes_store_the_same_on_both(servers: Any, body: Any) -> None:
    compare(servers, [(PUSH, transit_bytes(body), TRANSIT)])


@examples(20)
@given(bodies=st.lists(batch_body(table="events"), min_size=1, max_size=3))
def test_batches_store_the_same_on_both(servers: Any, bodies: Any) -> None:
    compare(servers, [(BATCH, json_bytes(body), JSON) for body in bodies])


def test_the_comparisons_compared_something() -> None:
    """Runs after the properties above (in file order): they must have compared real tables."""
    assert COMPARED["tables"] >= 50, COMPARED
