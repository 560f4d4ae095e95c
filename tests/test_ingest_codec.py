"""``ingest/codec.py``: JSON and Transit JSON bodies to plain Python values (SPEC §11), or
MalformedBody."""

from __future__ import annotations

import datetime as dt
import json
import time
from decimal import Decimal

import pytest

from importapi_lite.errors import MalformedBody
from importapi_lite.ingest.codec import JSON, TRANSIT, decode_body, decode_json, decode_transit

from .helpers import WIRE

UTC = dt.UTC


def cache_code(index: int) -> str:
    """The Transit rolling-cache reference for entry ``index``: ``^`` + 1 or 2 base-44 digits."""
    if index < 44:
        return "^" + chr(48 + index)
    return "^" + chr(48 + index // 44) + chr(48 + index % 44)


def only(body: str) -> object:
    """Decode a one-element Transit array and return the element."""
    (value,) = decode_transit(body)
    return value


# --- the stitchclient 1.0.1 capture ---------------------------------------------------------


def test_stitchclient_capture_decodes_to_plain_records():
    raw = (WIRE / "stitchclient-1.0.1-push.transit.json").read_bytes()

    records = decode_body(TRANSIT, raw)

    assert [r["sequence"] for r in records] == [1000, 1001, 1002]
    first = records[0]
    assert first == {
        "action": "upsert",
        "table_name": "pc",
        "key_names": ["id"],
        "sequence": 1000,
        "client_id": 7723,
        "data": {
            "id": 0,
            "at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "price": Decimal("12.345"),
            "big": 1152921504606846976,
            "uid": "00000000-0000-0000-0000-000000000000",
            "ok": True,
            "nested": {"k": [1, 2, 3]},
        },
    }


def test_stitchclient_capture_values_have_plain_types():
    records = decode_body(TRANSIT, (WIRE / "stitchclient-1.0.1-push.transit.json").read_bytes())

    for record in records:
        assert type(record) is dict
        data = record["data"]
        assert type(data) is dict and type(data["nested"]) is dict
        assert type(data["nested"]["k"]) is list
        assert type(data["ok"]) is bool
        assert type(data["big"]) is int
        assert type(data["uid"]) is str
        assert type(data["price"]) is Decimal
        assert data["at"].utcoffset() == dt.timedelta(0)
        assert type(record["key_names"]) is list


def test_stitchclient_capture_cached_keys_resolve_in_later_records():
    records = decode_body(TRANSIT, (WIRE / "stitchclient-1.0.1-push.transit.json").read_bytes())

    # Records 2 and 3 spell every key as ^0..^7; they must come back as the real names.
    keys = {"action", "table_name", "key_names", "sequence", "data", "client_id"}
    assert all(set(r) == keys for r in records)
    assert records[1]["data"]["price"] == Decimal("12.345")
    assert records[2]["data"]["nested"] == {"k": [1, 2, 3]}
    assert [r["data"]["big"] for r in records] == [2**60, 2**60 + 1, 2**60 + 2]
    assert [r["data"]["ok"] for r in records] == [True, False, True]


# --- scalar tags, SPEC §11.2 ----------------------------------------------------------------


def test_transit_millis_become_utc_datetime():
    value = only('["~m1565880017123"]')

    assert value == dt.datetime(2019, 8, 15, 14, 40, 17, 123000, tzinfo=UTC)
    assert value.tzinfo is UTC


def test_transit_negative_millis_are_before_the_epoch():
    assert only('["~m-1"]') == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2020-01-13T21:25:03.123Z", dt.datetime(2020, 1, 13, 21, 25, 3, 123000, tzinfo=UTC)),
        ("2020-01-13T21:25:03+02:00", dt.datetime(2020, 1, 13, 19, 25, 3, tzinfo=UTC)),
        ("2020-01-13T21:25:03+0000", dt.datetime(2020, 1, 13, 21, 25, 3, tzinfo=UTC)),
        ("2020-01-13T21:25:03", dt.datetime(2020, 1, 13, 21, 25, 3, tzinfo=UTC)),
    ],
)
def test_transit_iso_instant_becomes_utc_datetime(text, expected):
    value = only(json.dumps(["~t" + text]))

    assert value == expected
    assert value.utcoffset() == dt.timedelta(0)


def test_transit_decimal_keeps_its_exact_text():
    value = only('["~f-9999999999999999.9999999999999999999999"]')

    assert value == Decimal("-9999999999999999.9999999999999999999999")
    assert str(value) == "-9999999999999999.9999999999999999999999"


def test_transit_decimal_keeps_trailing_zeros():
    assert str(only('["~f1.10"]')) == "1.10"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('["~i9007199254740993"]', 9007199254740993),
        ('["~i-9223372036854775808"]', -(2**63)),
        ('["~n9223372036854775807"]', 2**63 - 1),
        ('["~n123456789012345678901234567890"]', 123456789012345678901234567890),
    ],
)
def test_transit_big_integers_decode_exactly(body, expected):
    value = only(body)

    assert value == expected
    assert type(value) is int


def test_transit_uuid_becomes_canonical_lowercase_string():
    assert only('["~u550E8400-E29B-41D4-A716-446655440000"]') == (
        "550e8400-e29b-41d4-a716-446655440000"
    )


def test_transit_uuid_as_two_longs_becomes_string():
    assert only('[["~#u", [1, 2]]]') == "00000000-0000-0001-0000-000000000002"


def test_transit_nan_becomes_none():
    assert decode_transit('["~zNaN", ["^ ", "x", "~zNaN"]]') == [None, {"x": None}]


def test_transit_infinities_become_float_infinities():
    assert decode_transit('["~zINF", "~z-INF"]') == [float("inf"), float("-inf")]


def test_transit_keyword_and_symbol_become_their_names():
    assert decode_transit('["~:name", "~$sym"]') == ["name", "sym"]


def test_transit_uri_char_and_bytes_become_text():
    assert decode_transit('["~rhttp://example.com/a?b=1", "~cx", "~bYWJj"]') == [
        "http://example.com/a?b=1",
        "x",
        "YWJj",
    ]


def test_transit_boolean_and_null_tags_as_values():
    values = decode_transit('["~?t", "~?f", "~_", true, false, null]')

    assert values == [True, False, None, True, False, None]
    assert [type(v) for v in values[:2]] == [bool, bool]


def test_transit_plain_json_scalars_are_themselves():
    values = decode_transit('[1, -2, 1.5, "text", true, null]')

    assert values == [1, -2, 1.5, "text", True, None]
    assert [type(v) for v in values] == [int, int, float, str, bool, type(None)]


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [("~~Finn", "~Finn"), ("~^x", "^x"), ("~`y", "`y"), ("~~m123", "~m123")],
)
def test_transit_escaped_strings_lose_one_tilde(encoded, decoded):
    assert only(json.dumps([encoded])) == decoded


def test_transit_quoted_top_level_scalar():
    assert decode_transit('["~#\'", 5]') == 5


# --- map keys --------------------------------------------------------------------------------


def test_transit_scalar_tags_as_map_keys_become_strings():
    value = only(
        '[["^ ", "~_", 1, "~?t", 2, "~?f", 3, "~d1.5", 4, "~i5", 5, "~:kw", 6, "~$sy", 7]]'
    )

    assert value == {"null": 1, "true": 2, "false": 3, "1.5": 4, "5": 5, "kw": 6, "sy": 7}


def test_transit_map_keys_are_always_strings():
    value = only('[["^ ", "~i5", "a", "~?t", "b", "~_", "c"]]')

    assert all(type(k) is str for k in value)


def test_transit_verbose_json_object_map_decodes():
    assert only('[{"a": 1, "~:b": ["~m0"]}]') == {
        "a": 1,
        "b": [dt.datetime(1970, 1, 1, tzinfo=UTC)],
    }


# --- composites --------------------------------------------------------------------------------


def test_transit_set_and_list_become_lists():
    assert decode_transit('[["~#set", [1, 2]], ["~#list", ["a", "b"]]]') == [[1, 2], ["a", "b"]]


def test_transit_set_in_object_form_becomes_list():
    assert only('[{"~#set": [3]}]') == [3]


def test_transit_cmap_keys_are_stringified():
    value = only('[["~#cmap", [["a", 1], "composite", "plain", "scalar"]]]')

    assert value == {'["a", 1]': "composite", "plain": "scalar"}


def test_transit_cmap_in_object_form_with_map_key():
    value = only('[{"~#cmap": [["^ ", "a", 1], 2]}]')

    assert value == {'{"a": 1}': 2}


def test_transit_nested_maps_and_lists_become_dicts_and_lists():
    value = only('[["^ ", "a", ["^ ", "b", [["^ ", "c", ["~#set", ["~f1.0"]]]]]]]')

    assert value == {"a": {"b": [{"c": [Decimal("1.0")]}]}}
    assert type(value["a"]) is dict and type(value["a"]["b"]) is list


# --- rolling cache ---------------------------------------------------------------------------


def test_transit_cached_map_key_resolves_in_later_map():
    assert decode_transit('[["^ ", "name", 1], ["^ ", "^0", 2]]') == [{"name": 1}, {"name": 2}]


def test_transit_short_map_keys_are_not_cached():
    # "abc" has fewer than 4 characters, so "abcd" is the first cache entry: ^0.
    assert decode_transit('[["^ ", "abc", 1, "abcd", 2], ["^ ", "^0", 3]]') == [
        {"abc": 1, "abcd": 2},
        {"abcd": 3},
    ]


def test_transit_cached_keyword_resolves_in_value_position():
    assert decode_transit('["~:abcd", "^0", ["^ ", "^0", 1]]') == ["abcd", "abcd", {"abcd": 1}]


def test_transit_cached_tag_resolves_in_later_tagged_value():
    assert decode_transit('[["~#set", [1]], ["^0", [2]]]') == [[1], [2]]


def test_transit_plain_string_values_take_no_cache_slot():
    # "value" is a map value, not a key: it is not cached, so "kez2" is entry 1 (^1).
    assert decode_transit('[["^ ", "keyy", "value", "kez2", 1], ["^ ", "^1", 2, "^0", 3]]') == [
        {"keyy": "value", "kez2": 1},
        {"kez2": 2, "keyy": 3},
    ]


def test_transit_cache_past_44_entries_uses_two_character_codes():
    keys = [f"column_{i:02d}" for i in range(60)]
    first = ["^ "] + [item for i, k in enumerate(keys) for item in (k, i)]
    second = ["^ "] + [item for i in range(60) for item in (cache_code(i), -i)]
    body = json.dumps([first, second])
    assert '"^10"' in body and '"^1;"' in body  # entries 44 and 55

    assert decode_transit(body) == [
        {k: i for i, k in enumerate(keys)},
        {k: -i for i, k in enumerate(keys)},
    ]


def test_transit_cache_is_fresh_for_each_body():
    decode_transit('[["^ ", "first_key", 1]]')

    # In a new body ^0 names nothing cached yet: the first key of *this* body becomes ^0.
    assert decode_transit('[["^ ", "other_key", 1], ["^ ", "^0", 2]]') == [
        {"other_key": 1},
        {"other_key": 2},
    ]


# --- JSON --------------------------------------------------------------------------------------


def test_json_body_is_never_transit_decoded():
    body = b'[{"at": "~m1565880017123", "price": "~f3.14", "caret": "^ ", "k": ["^ ", "a", 1]}]'

    assert decode_body(JSON, body) == [
        {"at": "~m1565880017123", "price": "~f3.14", "caret": "^ ", "k": ["^ ", "a", 1]}
    ]


def test_json_keeps_integers_and_floats_apart_with_full_digits():
    values = decode_json("[1, 1.0, 12345678901234567890123, -0, 3.14]")

    assert values == [1, 1.0, 12345678901234567890123, 0, 3.14]
    assert [type(v) for v in values] == [int, float, int, int, float]


def test_json_body_decodes_utf8_text():
    assert decode_body(JSON, '[{"name": "Zoë 😀"}]'.encode()) == [{"name": "Zoë 😀"}]


# --- malformed bodies ------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("media_type", "raw"),
    [
        pytest.param(JSON, b'[{"a": 1', id="json-truncated"),
        pytest.param(JSON, b"[1,]", id="json-trailing-comma"),
        pytest.param(JSON, b"", id="json-empty"),
        pytest.param(JSON, b"[1] [2]", id="json-extra-data"),
        pytest.param(JSON, b"[NaN]", id="json-nan-literal"),
        pytest.param(JSON, b"[Infinity]", id="json-infinity-literal"),
        pytest.param(JSON, b"[-Infinity]", id="json-minus-infinity-literal"),
        pytest.param(JSON, b'["\xff\xfe"]', id="json-invalid-utf8"),
        pytest.param(JSON, b'["\xed\xa0\x80"]', id="json-utf8-encoded-surrogate"),
        pytest.param(JSON, DEEP.encode(), id="json-very-deep"),
        pytest.param(TRANSIT, b'[["^ ", "a", 1', id="transit-bad-json"),
        pytest.param(TRANSIT, b'["~xfoo"]', id="transit-unknown-scalar-tag"),
        pytest.param(TRANSIT, b'[["~#foo", 1]]', id="transit-unknown-composite-tag"),
        pytest.param(TRANSIT, b'[{"~#point": [1, 2]}]', id="transit-unknown-object-tag"),
        pytest.param(TRANSIT, b'["~iabc"]', id="transit-int-not-digits"),
        pytest.param(TRANSIT, b'["~i"]', id="transit-int-empty"),
        pytest.param(TRANSIT, b'["~nabc"]', id="transit-bigint-not-digits"),
        pytest.param(TRANSIT, b'["~fNaN"]', id="transit-decimal-nan"),
        pytest.param(TRANSIT, b'["~fInfinity"]', id="transit-decimal-infinity"),
        pytest.param(TRANSIT, b'["~f-Infinity"]', id="transit-decimal-minus-infinity"),
        pytest.param(TRANSIT, b'["~fabc"]', id="transit-decimal-not-a-number"),
        pytest.param(TRANSIT, b'["~mabc"]', id="transit-millis-not-digits"),
        pytest.param(TRANSIT, b'["~m99999999999999999999"]', id="transit-millis-out-of-range"),
        pytest.param(TRANSIT, b'["~t2020-13-45"]', id="transit-instant-impossible-date"),
        pytest.param(TRANSIT, b'["~uxyz"]', id="transit-uuid-not-hex"),
        pytest.param(TRANSIT, b'["~zfoo"]', id="transit-special-float-unknown"),
        pytest.param(TRANSIT, b'[["~#set", 5]]', id="transit-set-of-a-scalar"),
        pytest.param(TRANSIT, b"[NaN]", id="transit-nan-literal"),
        pytest.param(TRANSIT, b"[Infinity]", id="transit-infinity-literal"),
        pytest.param(TRANSIT, b'["\xc3\x28"]', id="transit-invalid-utf8"),
        pytest.param(TRANSIT, DEEP.encode(), id="transit-very-deep"),
    ],
)
def test_malformed_body_raises_malformed_body_with_detail(media_type, raw):
    with pytest.raises(MalformedBody) as caught:
        decode_body(media_type, raw)

    assert isinstance(caught.value.detail, str) and caught.value.detail.strip()
    assert caught.value.status == 400
    assert caught.value.body() == {
        "status": "ERROR",
        "message": "Malformed json in the body!",
        "error": caught.value.detail,
        "input": None,
    }


def test_invalid_utf8_detail_names_the_byte_offset():
    with pytest.raises(MalformedBody) as caught:
        decode_body(JSON, b'["ok", "\xff"]')

    assert "byte 8" in caught.value.detail


def test_deeply_nested_transit_maps_decode():
    depth = 200
    body = "[" + '["^ ", "a", ' * depth + "1" + "]" * depth + "]"

    (value,) = decode_transit(body)
    for _ in range(depth):
        value = value["a"]
    assert value == 1


# --- surrogate escapes ---------------------------------------------------------------------------


def test_a_lone_surrogate_escape_is_a_malformed_body():
    # "\ud800" is valid JSON syntax but no Unicode character; SQLite could not store it.
    for media_type in (JSON, TRANSIT):
        for body in (b'["\\ud800"]', b'["a\\udfffb"]', b'[{"\\udc00": 1}]'):
            with pytest.raises(MalformedBody) as raised:
                decode_body(media_type, body)
            assert "surrogate" in raised.value.detail
    assert decode_json('["\\\\ud800"]') == ["\\ud800"]  # an escaped backslash, not an escape


def test_a_surrogate_pair_escape_decodes_to_one_character():
    assert decode_json('["\\ud83d\\ude00"]') == ["😀"]


# --- Transit the third-party reader got wrong: malformed input, nesting, the cache ---------------


def test_transit_map_with_odd_number_of_items_is_malformed():
    # ["^ ", k1, v1, k2] has a key without a value: "b" must not be dropped without a word.
    with pytest.raises(MalformedBody):
        decode_transit('[["^ ", "a", 1, "b"]]')


def test_transit_cmap_with_odd_number_of_items_is_malformed():
    # A trailing key without a value: answering {"1": 2} would drop the 3 without a word.
    with pytest.raises(MalformedBody):
        decode_transit('[["~#cmap", [1, 2, 3]]]')


def test_transit_reference_to_an_empty_cache_slot_is_malformed():
    # A literal "^5" would have been written "~^5"; unescaped, it can only be a cache reference,
    # and nothing is cached yet, so it must not become a column named "^5".
    with pytest.raises(MalformedBody):
        decode_transit('[["^ ", "^5", 1]]')


def test_transit_boolean_tag_other_than_t_or_f_is_malformed():
    # "~?" takes "t" or "f" only: anything else must not pass as False.
    with pytest.raises(MalformedBody):
        decode_transit('["~?x"]')


def test_nested_transit_lists_decode_in_linear_time():
    # A 40-byte body of 20 nested lists. The third-party decoder decodes the first element of
    # every list twice (once to look for a tag, once as an item), so the work doubles with each
    # level, and a short body would hold the server for ever. Linear work takes microseconds;
    # the bound leaves a wide margin for slow machines.
    depth = 20
    body = "[" * depth + "]" * depth

    started = time.perf_counter()
    value = decode_transit(body)
    elapsed = time.perf_counter() - started

    for _ in range(depth - 1):
        (value,) = value
    assert value == []
    assert elapsed < 0.25, f"{2 * depth} bytes of nested lists took {elapsed:.2f} s"


def test_transit_cache_restarts_at_code_zero_after_1936_entries():
    # SPEC §11.1: a spec reader (transit-java, used by JSC) resets the cache when it holds 44²
    # entries, so the 1,937th cacheable key becomes ^0 again, and ^0 no longer means the first.
    keys = [f"k{i:04d}" for i in range(1937)]
    first = ["^ "] + [item for k in keys for item in (k, 0)]
    body = json.dumps([first, ["^ ", "^0", 1]])

    assert decode_transit(body)[1] == {"k1936": 1}
