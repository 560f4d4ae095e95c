"""``ingest/codec.py``'s fast decoders against their references, case by generated case.

- JSON: ``msgspec`` parses first; wherever it accepts a body, the stdlib parser (the reference,
  which words every error) must give exactly the same values.
- Transit: the fast reader must give exactly what transit-python2 (made strict, then made
  plain) gives, across every tag, the rolling cache, nesting and malformed input; where the fast
  reader declines, ``decode_body`` must answer as the reference does.

"Exactly" means the same types (``1`` is not ``1.0`` nor ``True``), float signs and digits,
Decimal exponents, UTC offsets and key order (key order decides column order when loading).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transit import transit_types
from transit.writer import Writer

from importapi_lite.errors import MalformedBody
from importapi_lite.ingest.codec import (
    _FAST_JSON,
    JSON,
    TRANSIT,
    _FastReader,
    _reference_transit,
    decode_body,
    decode_json,
)

CASES = settings(max_examples=300, deadline=None, derandomize=True, database=None)


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, dt.datetime):
        return a == b and a.tzinfo == b.tzinfo
    return bool(a == b)


def answer(media_type: str, raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_body(media_type, raw)
    except MalformedBody as exc:
        return "error", exc.body()


def reference_answer(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", _reference_transit(json.loads(raw))
    except MalformedBody as exc:
        return "error", exc.body()


# --- JSON ------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def json_texts() -> st.SearchStrategy[bytes]:
    dumped = st.builds(
        lambda value, ascii_only: json.dumps(value, ensure_ascii=ascii_only).encode(),
        json_values,
        st.booleans(),
    )
    # Hand-written number and escape forms json.dumps never writes, and plain damage.
    tokens = st.sampled_from(
        [
            "1e400",
            "-1e400",
            "1E5",
            "-0",
            "-0.0",
            "0.1e-400",
            "1" + "0" * 5000,
            "01",
            "1.",
            '"\\ud800"',
            '"\\udc00\\ud800"',
            '"\\ud83d\\ude00"',
            '"\\u0000"',
            '"\\/"',
            "NaN",
            "Infinity",
            "[1,]",
            '{"a":1,"a":2}',
            "\ufeff[1]",
            '"\x01"',
            "\x0c[1]",
            "[1]\x0c",
            "12345678901234567890123",
            "9223372036854775808",
            "-9223372036854775809",
        ]
    )
    spliced = st.builds(lambda t: f"[{t}]".encode(), tokens) | st.builds(str.encode, tokens)
    return dumped | spliced | st.binary(max_size=40) | damaged(dumped)


def damaged(texts: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    def damage(raw: bytes, at: int, byte: int) -> bytes:
        if not raw:
            return bytes([byte])
        at %= len(raw)
        return raw[:at] + bytes([byte]) + raw[at + 1 :]

    return st.builds(damage, texts, st.integers(0, 10**6), st.integers(0, 255))


@CASES
@given(json_texts())
def test_msgspec_accepts_only_what_the_stdlib_reads_the_same(raw: bytes) -> None:
    try:
        fast = _FAST_JSON.decode(raw)
    except Exception:  # noqa: BLE001  (the stdlib parser answers these; see the next test)
        return
    reference = decode_json(raw.decode("utf-8"))
    assert same(fast, reference), (raw, fast, reference)


@CASES
@given(json_texts())
def test_json_bodies_are_answered_as_the_stdlib_parser_answers(raw: bytes) -> None:
    try:
        reference: tuple[str, Any] = ("ok", decode_json(raw.decode("utf-8")))
    except UnicodeDecodeError:
        reference = answer(JSON, raw)  # the UTF-8 check is the same code on both paths
    except MalformedBody as exc:
        reference = ("error", exc.body())
    got = answer(JSON, raw)
    assert got[0] == reference[0] and same(got[1], reference[1]), (raw, got, reference)


# --- Transit ---------------------------------------------------------------------------------

names = st.text(min_size=0, max_size=6) | st.sampled_from(["id", "name", "~x", "^0", "`a", "^ "])
transit_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.decimals(allow_nan=False, places=None)
    | st.uuids()
    | st.datetimes(timezones=st.just(dt.UTC), min_value=dt.datetime(1900, 1, 1))
    | names
    | st.builds(transit_types.Keyword, names)
    | st.builds(transit_types.Symbol, names)
    | st.builds(transit_types.URI, st.sampled_from(["https://example.com/a", "urn:x"]))
)


def _maps(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = names | st.builds(transit_types.Keyword, names) | st.integers(-5, 5)
    return st.dictionaries(keys, inner, max_size=5).map(transit_types.frozendict)


transit_values = st.recursive(
    transit_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.frozensets(st.integers(-3, 3) | names, max_size=3)
        | _maps(inner)
    ),
    max_leaves=25,
)


def transit_text(value: Any, protocol: str) -> bytes:
    out = io.StringIO()
    Writer(out, protocol).write(value)
    return out.getvalue().encode()


written = st.builds(
    transit_text, st.lists(transit_values, max_size=4), st.sampled_from(["json", "json_verbose"])
)

# Hand-built trees reach what no writer writes: stray tags and references, odd map lengths.
tricky_strings = st.sampled_from(
    [
        "^0",
        "^1",
        "^ ",
        "^",
        "^00",
        "^zz",
        "~",
        "~~x",
        "~^x",
        "~`x",
        "~:kw",
        "~:key1",
        "~#list",
        "~#set",
        "~#cmap",
        "~#zzz",
        "~m1234",
        "~m-5",
        "~m1.5",
        "~m99999999999999999",
        "~t2026-01-01",
        "~t2026-01-01T00:00:00Z",
        "~t2026-01-01T00:00:00+02:00",
        "~fNaN",
        "~f1.50",
        "~f1E+2",
        "~i12",
        "~i 12",
        "~i1_0",
        "~n123456789012345678901234567890",
        "~d1.5",
        "~dnan",
        "~zNaN",
        "~zINF",
        "~z-INF",
        "~zX",
        "~u0d6b8a1e-5b6a-4c4c-9f1e-3a4f5b6c7d8e",
        "~ubad",
        "~?t",
        "~?x",
        "~_",
        "~bYWJj",
        "~cx",
        "~rhttp://a",
        "~$sym",
        "~q",
        "plain",
        "key1",
        "~~key1",
    ]
)
# Map keys that collide once plain ("~:key1" is "key1"), or through the cache.
colliding_keys = st.sampled_from(
    ["key1", "~:key1", "~~key1", "~key1", "^0", "^1", "abcd", "~:abcd"]
)


def _pairs(keys: list[str], values: list[Any]) -> list[Any]:
    return ["^ ", *(item for pair in zip(keys, values, strict=False) for item in pair)]


tricky_trees = st.recursive(
    tricky_strings | st.integers(-3, 3) | st.none() | st.booleans(),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.builds(_pairs, st.lists(colliding_keys, max_size=4), st.lists(inner, min_size=4))
        | st.builds(lambda items: ["^ ", *items], st.lists(inner, max_size=6))
        | st.builds(lambda tag, rep: [tag, rep], tricky_strings, inner)
        | st.dictionaries(tricky_strings, inner, max_size=2)
    ),
    max_leaves=25,
)
handmade = st.builds(lambda tree: json.dumps(tree).encode(), st.lists(tricky_trees, max_size=4))


@CASES
@given(written | handmade)
def test_the_fast_transit_reader_reads_exactly_what_the_reference_reads(raw: bytes) -> None:
    parsed = json.loads(raw)
    try:
        fast = _FastReader().value(parsed)
    except Exception:  # noqa: BLE001  (declined: the reference reads it; see the next test)
        return
    reference = _reference_transit(parsed)
    assert same(fast, reference), (raw, fast, reference)


@CASES
@given(written | handmade)
def test_transit_bodies_are_answered_as_the_reference_answers(raw: bytes) -> None:
    reference = reference_answer(raw)
    got = answer(TRANSIT, raw)
    assert got[0] == reference[0] and same(got[1], reference[1]), (raw, got, reference)


@CASES
@given(st.lists(colliding_keys, max_size=6), st.lists(st.integers(0, 9), min_size=6, max_size=6))
def test_map_keys_that_collide_are_read_as_the_reference_reads_them(keys, values):
    body = json.dumps([["^ ", "~:abcd", "~:key1"], _pairs(keys, values)]).encode()

    got, reference = answer(TRANSIT, body), reference_answer(body)

    assert got[0] == reference[0] and same(got[1], reference[1]), (body, got, reference)


def test_the_fast_reader_reads_what_stitchclient_writes():
    # The point of the fast reader: the records real clients send never need the reference.
    records = [
        transit_types.frozendict(
            {
                transit_types.Keyword("client_id"): 7723,
                transit_types.Keyword("table_name"): "orders",
                transit_types.Keyword("sequence"): 1_700_000_000_000 + i,
                transit_types.Keyword("key_names"): ("id",),
                transit_types.Keyword("action"): "upsert",
                transit_types.Keyword("data"): transit_types.frozendict(
                    {
                        "id": uuid.UUID(int=i),
                        "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                        "price": Decimal("12.50"),
                        "big": 2**64 + i,
                        "tags": ("a", "b"),
                        "ratio": math.pi,
                    }
                ),
            }
        )
        for i in range(3000)  # past 44² cached keys: the cache restarts
    ]
    parsed = json.loads(transit_text(records, "json"))

    fast = _FastReader().value(parsed)

    assert same(fast, _reference_transit(parsed))
    assert fast[2999]["data"]["id"] == str(uuid.UUID(int=2999))


def test_the_cache_restarts_after_1936_entries_in_both_readers():
    keys = [f"k{i:04d}" for i in range(1940)]
    first = ["^ "] + [item for k in keys for item in (k, 0)]
    parsed = [first, ["^ ", "^0", 1, "^1", 2]]

    fast = _FastReader().value(parsed)

    assert same(fast, _reference_transit(parsed))
    assert fast[1] == {"k1936": 1, "k1937": 2}


def test_a_cache_restart_among_a_maps_values_is_read_as_the_reference_reads_it():
    # Map keys read before their values (known keys, see read_map) must not outlive a restart
    # that happens while reading the values: "^1" then names a key cached after the restart.
    fill = ["^ "] + [item for i in range(1935) for item in (f"k{i:04d}", 0)]
    known = ["^ ", "^0", 1, "^1", 2]
    restarting = ["^ ", "^0", ["^ ", "late1", 1, "late2", 2, "late3", 3], "^1", 4]
    parsed = [fill, known, restarting]

    assert same(
        answer(TRANSIT, json.dumps(parsed).encode()), reference_answer(json.dumps(parsed).encode())
    )


@pytest.mark.parametrize(
    "body",
    ['[{"~#set": [1]}]', '[["~#set", [1, 2]]]', '[["~#cmap", [1, 2]]]', '["~?t", "~_"]'],
)
def test_what_the_fast_reader_declines_still_decodes(body):
    with pytest.raises(Exception):  # noqa: B017, PT011
        _FastReader().value(json.loads(body))
    assert same(decode_body(TRANSIT, body.encode()), _reference_transit(json.loads(body)))
