"""Request bodies to plain Python values: JSON and Transit JSON. The only Transit import.

Decoded values are always plain: dict, list, str, int, float, bool, None, plus ``Decimal``
(Transit ``~f``) and timezone-aware UTC ``datetime`` (Transit ``~m``/``~t``). Every failure to
decode is a ``MalformedBody`` (400); nothing here can raise anything else on client input.

JSON is parsed by ``msgspec`` (faster than the stdlib on big batches, and exact on big
integers, unlike ``orjson``). Whatever it refuses is parsed again by the stdlib ``json``, which
alone decides the answer: the same values (it accepts ``1e400`` as infinity) or the same error
text as before. The codec tests check the two agree wherever msgspec accepts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from transit import transit_types
from transit.constants import MAP_AS_ARR
from transit.decoder import Decoder, Tag, default_options
from transit.rolling_cache import (
    CACHE_CODE_DIGITS,
    CACHE_SIZE,
    FIRST_ORD,
    decode_key,
    is_cache_key,
    is_cacheable,
)

from ..errors import MalformedBody

JSON = "application/json"
TRANSIT = "application/transit+json"
UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def decode_body(media_type: str, raw: bytes) -> Any:
    """Decode by media type; never Transit-decode a JSON body (SPEC §3.3 step 5)."""
    parsed = _parse_json(raw)
    return transit_to_plain(parsed) if media_type == TRANSIT else parsed


_FAST_JSON = msgspec.json.Decoder()


def _parse_json(raw: bytes | str) -> Any:
    try:
        return _FAST_JSON.decode(raw)
    # Any refusal (bad UTF-8 or syntax, lone surrogates, numbers out of its range, depth) is
    # left to the stdlib parser, whose answer and wording are the reference.
    except (msgspec.MsgspecError, ValueError, RecursionError):
        pass
    return decode_json(_utf8(raw) if isinstance(raw, bytes) else raw)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(
            f"Invalid UTF-8 in the body: {exc.reason} at byte {exc.start}"
        ) from None


class _Invalid(ValueError):
    """A decoding failure whose message is ours, fit to show the client."""


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Stitch's Jackson parser) do not.
    raise _Invalid(f"Unrecognized token '{name}': not a valid JSON value")


def decode_json(text: str) -> Any:
    # The parser's own messages name the position ("Expecting value: line 1 column 4 (char 3)"),
    # as Stitch's does; other failures get a message of ours, never Python's wording.
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, _Invalid) as exc:
        raise MalformedBody(str(exc)) from None
    except RecursionError:
        raise MalformedBody("The body is nested too deeply") from None
    except ValueError:  # integers beyond Python's digit limit for conversion
        raise MalformedBody("A number in the body has too many digits") from None
    _reject_lone_surrogates(text, value)
    return value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_lone_surrogates(text: str, value: Any) -> None:
    """``"\\ud800"`` is JSON syntax but no character: SQLite could not store it as UTF-8.

    Pairs decode to one character and pass; only a body with such an escape is checked whole.
    """
    if _SURROGATE_ESCAPE.search(text) is None:
        return
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedBody("Invalid Unicode: an unpaired surrogate escape") from None


class _UnknownTag(_Invalid):
    pass


class _RejectUnknownTag:
    # Unknown tags are a malformed body [mock-defined, SPEC §11.1].
    @staticmethod
    def from_rep(tag: str, rep: Any) -> Any:
        raise _UnknownTag(f"Unknown transit tag: {tag}")


class _AsText:
    """``~b`` (base64 bytes) and ``~c`` (a char): stored as their text (SPEC §11.2)."""

    @staticmethod
    def from_rep(rep: Any) -> str:
        return str(rep)


class _Millis:
    """``~m``: milliseconds since the epoch, exact (no float round trip)."""

    @staticmethod
    def from_rep(rep: Any) -> dt.datetime:
        # Milliseconds by position: timedelta's keyword parsing took half of this.
        return _EPOCH + dt.timedelta(0, 0, 0, int(rep))


class _Instant:
    """``~t``: ISO-8601. The stock handler gives naive or local-zone results; we want UTC."""

    @staticmethod
    def from_rep(rep: Any) -> dt.datetime:
        if isinstance(rep, int):
            return _Millis.from_rep(rep)
        value = dt.datetime.fromisoformat(str(rep))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Cmap:
    """``~#cmap``: a map with non-string keys, as a flat list of key, value, key, value…"""

    @staticmethod
    def from_rep(rep: Any) -> Any:
        if len(rep) % 2:
            raise _UnknownTag("a cmap has an odd number of items")
        return transit_types.frozendict(zip(rep[::2], rep[1::2], strict=True))


class _Boolean:
    """``~?t`` / ``~?f`` only; the stock handler reads anything else as false."""

    @staticmethod
    def from_rep(rep: Any) -> Any:
        if rep not in ("t", "f"):
            raise _UnknownTag(f"~?{rep} is not a boolean")
        return transit_types.true if rep == "t" else transit_types.false


class _StrictDecoder(Decoder):  # type: ignore[misc]
    """transit-python2's reader, made linear-time and strict about malformed input.

    The stock ``decode_list`` decodes a list's first element twice (once to look for a tag),
    so nested lists cost 2^depth: 80 bytes of ``[[[…]]]`` would pin a core for weeks. It also
    drops the odd item of a ``"^ "`` map and reads a reference to an empty cache slot as text.
    """

    def decode_list(self, node: list[Any], cache: Any, as_map_key: bool) -> Any:
        if not node:
            return ()
        if node[0] == MAP_AS_ARR:
            if len(node) % 2 == 0:
                raise _UnknownTag("a map has an odd number of items")
            return super().decode_list(node, cache, as_map_key)
        first = self._decode(node[0], cache, as_map_key)
        if isinstance(first, Tag):
            if len(node) != 2:
                raise _UnknownTag(f"tagged value ~#{first.tag} needs exactly one representation")
            return self.decode_tag(first.tag, self._decode(node[1], cache, as_map_key))
        return (first, *(self._decode(item, cache, as_map_key) for item in node[1:]))


class _ReadCache:
    """The rolling cache as the Transit spec reads it (transit-java's ``ReadCache``).

    Every cacheable string read in full takes the next slot; after 44² slots it starts again at
    ``^0``. transit-python2's cache never restarts, so it misreads bodies from spec writers
    (the Java client) past 1,936 strings; stitchclient stops caching at that point and writes
    every string in full, which this reads right too (SPEC §11.1, §15 Q10).
    """

    def __init__(self) -> None:
        self._slots: list[str] = []

    def decode(self, name: str, as_map_key: bool = False) -> str:
        if is_cache_key(name):
            index = int(decode_key(name)) if len(name) in (2, 3) else -1
            if not 0 <= index < len(self._slots):
                raise _UnknownTag(f"cache reference {name} to nothing")
            return self._slots[index]
        return self.encode(name, as_map_key)

    def encode(self, name: str, as_map_key: bool = False) -> str:
        if is_cacheable(name, as_map_key):
            if len(self._slots) == CACHE_SIZE:
                self._slots.clear()
            self._slots.append(name)
        return name


def _decoder() -> Decoder:
    decoders = dict(default_options["decoders"])  # a copy: Decoder mutates the dict it is given
    decoders.update({"m": _Millis, "t": _Instant, "b": _AsText, "c": _AsText, "cmap": _Cmap})
    del decoders["link"]
    decoder = _StrictDecoder({"decoders": decoders, "default_decoder": _RejectUnknownTag})
    decoder.decoders["?"] = _Boolean  # after __init__, which forces the stock ground decoders
    return decoder


_DECODER = _decoder()


def decode_transit(text: str) -> Any:
    return transit_to_plain(_parse_json(text))


def transit_to_plain(parsed: Any) -> Any:
    """A parsed Transit JSON document as plain values: the fast reader, else the reference."""
    try:
        return _FastReader().value(parsed)
    # Anything outside its subset, errors included, is read again by the reference decoder,
    # which alone words a failure. The fast reader has no side effects, so starting over is safe.
    except Exception:  # noqa: BLE001
        return _reference_transit(parsed)


def _reference_transit(parsed: Any) -> Any:
    """transit-python2 (made strict and linear above), then ``_plain``: the reference reading."""
    try:
        # A fresh rolling cache per body: the cache is per top-level value (SPEC §11.1).
        return _plain(_DECODER.decode(parsed, _ReadCache()))
    except _Invalid as exc:
        raise MalformedBody(str(exc)) from None
    except RecursionError:
        raise MalformedBody("The body is nested too deeply") from None
    # Client input of any shape reaches the third-party decoder, which signals trouble with a
    # variety of exception types, worded for Python programmers: each means invalid Transit.
    except Exception:  # noqa: BLE001
        raise MalformedBody("The body is not valid Transit JSON") from None


class _Unhandled(Exception):
    """Outside the fast reader's subset: the reference decoder reads the body instead."""


def _finite_decimal(rep: str) -> Decimal:
    value = Decimal(rep)
    if not value.is_finite():
        raise _Unhandled  # the reference words this failure
    return value


def _double(rep: str) -> float | None:
    value = float(rep)
    return None if math.isnan(value) else value


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid_text(rep: str) -> str:
    # What writers send is already the canonical form, which is what str(UUID(rep)) gives back.
    return rep if _CANONICAL_UUID.fullmatch(rep) else str(uuid.UUID(rep))


_SPECIAL_NUMBERS = {"NaN": None, "INF": math.inf, "-INF": -math.inf}

# Scalar tags and their plain values, exactly as the reference's handlers and ``_plain`` give.
_SCALAR_TAGS: dict[str, Any] = {
    ":": str,  # a keyword is its name
    "i": int,
    "n": int,
    "d": _double,
    "f": _finite_decimal,
    "u": _uuid_text,
    "m": _Millis.from_rep,  # UTC already
    "t": lambda rep: _plain(_Instant.from_rep(rep)),
    "z": _SPECIAL_NUMBERS.__getitem__,
}
# Tags whose values never take a cache slot, by their first two characters (keywords do).
_SCALAR_VALUE_TAGS = {f"~{mark}": convert for mark, convert in _SCALAR_TAGS.items() if mark != ":"}
_ESCAPES = ("~", "^", "`")
_FIRST_CODE: int = FIRST_ORD  # cache codes: base-44 digits from "0"
_CODE_DIGITS: int = CACHE_CODE_DIGITS
_KEY_MARKS = (":", *_ESCAPES)
_MARKS = frozenset(("~", "^"))  # text starting with neither is itself, never cached as a value
_JSON_SCALARS = frozenset((bool, int, float))
_PLAIN = frozenset((bool, int, float, type(None)))  # JSON values that are their own reading


class _FastReader:
    """Transit JSON as stitchclient writes it, straight to plain values, in one pass.

    transit-python2 builds frozendicts, tuples and wrapper objects that ``_plain`` then converts
    again; on records it costs many times the JSON parse. This reads the subset real writers use:
    ``"^ "`` maps with string and keyword keys, lists, ``~#list``, the rolling cache, escapes
    and the scalar tags above. Anything else (verbose maps, sets, cmaps, other tags, keys that
    collide once made plain, every error) raises, and the reference reads the body instead.
    ``tests/test_ingest_codec_differential.py`` checks the two agree, case by generated case.
    """

    def __init__(self) -> None:
        self.slots: list[str] = []  # the rolling cache, as ``_ReadCache`` keeps it
        self.known_keys: dict[tuple[Any, ...], tuple[str, ...]] = {}  # by the keys as written
        self.restarts = 0  # of the cache

    def value(self, node: Any) -> Any:
        kind = type(node)
        if node is None or kind in _JSON_SCALARS:
            return node
        if kind is str:
            # Most values are text that no tag, escape or cache reference could touch, and
            # most of the rest scalar tags, which never take a cache slot.
            mark = node[:2]
            if mark[:1] not in _MARKS:
                return node
            convert = _SCALAR_VALUE_TAGS.get(mark)
            if convert is not None:
                return convert(node[2:])
            return self.parse(self.cached(node, False))
        if kind is list:
            return self.read_list(node) if node else []
        raise _Unhandled  # a JSON object: a verbose-mode map

    def read_list(self, node: list[Any]) -> Any:
        first = node[0]
        if first == MAP_AS_ARR:
            return self.read_map(node)
        if type(first) is str:  # noqa: E721
            text = self.cached(first, False)
            if text.startswith("~#"):
                if text != "~#list" or len(node) != 2:
                    raise _Unhandled
                return self.value(node[1])  # the list tag adds nothing to its representation
            head = self.parse(text)
        else:
            head = self.value(first)
        return [head, *map(self.value, node[1:])]

    def read_map(self, node: list[Any]) -> dict[str, Any]:
        if not len(node) & 1:
            raise _Unhandled
        raw = tuple(node[1::2])
        keys = self.known_keys.get(raw)
        if keys is None:
            return self.read_map_in_order(node, raw)
        value, restarts, tags = self.value, self.restarts, _SCALAR_VALUE_TAGS
        # Plain items and scalar tags inline (as ``value`` reads them): a call per value would
        # cost more than the rest of the reading.
        items = [
            item
            if (kind := type(item)) in _PLAIN or (kind is str and item[:1] not in _MARKS)
            else convert(item[2:])
            if kind is str and (convert := tags.get(item[:2])) is not None
            else value(item)
            for item in node[2::2]
        ]
        if self.restarts != restarts:
            raise _Unhandled  # the cache restarted among the values: later keys mean others
        result = dict(zip(keys, items, strict=True))
        if len(result) != len(keys):
            raise _Unhandled  # keys that collide once plain: the reference decides which wins
        return result

    def read_map_in_order(self, node: list[Any], raw: tuple[Any, ...]) -> dict[str, Any]:
        """Key, value, key, value, as the cache fills; the keys remembered if that was pure.

        Records repeat their keys: a writer spells a long key out once, then refers to its
        cache slot, so from the second record on a map's keys are references and short names.
        Reading those takes no cache slot, so ``read_map`` can look them up and read the keys
        before the values (until the cache restarts).
        """
        result = {}
        keys = []
        pure = True
        for key, item in zip(raw, node[2::2], strict=True):
            if type(key) is not str:
                raise _Unhandled
            if len(key) >= 4 and key[0] != "^":
                pure = False  # read in full: it takes a cache slot
            key = self.cached(key, True)
            if key[:1] == "~":
                if key[1:2] not in _KEY_MARKS:
                    raise _Unhandled
                key = key[2:] if key[1] == ":" else key[1:]
            keys.append(key)
            result[key] = self.value(item)
        if len(result) != len(keys):
            raise _Unhandled  # keys that collide once plain: the reference decides which wins
        if pure:
            self.known_keys[raw] = tuple(keys)
        return result

    def cached(self, text: str, as_map_key: bool) -> str:
        """A cache reference resolved, or the text, cached if the Transit rules say so."""
        slots = self.slots
        if text[:1] == "^" and text != MAP_AS_ARR:
            size, index = len(text), -1
            if size == 2:
                index = ord(text[1]) - _FIRST_CODE
            elif size == 3:
                index = (ord(text[1]) - _FIRST_CODE) * _CODE_DIGITS + ord(text[2]) - _FIRST_CODE
            if not 0 <= index < len(slots):
                raise _Unhandled
            return slots[index]
        if len(text) >= 4 and (as_map_key or text[:2] in ("~#", "~$", "~:")):
            if len(slots) == CACHE_SIZE:
                slots.clear()
                self.known_keys.clear()  # references now mean other keys
                self.restarts += 1
            slots.append(text)
        return text

    @staticmethod
    def parse(text: str) -> Any:
        if text[:1] != "~":
            return text
        mark = text[1:2]
        if mark in _ESCAPES:
            return text[1:]
        return _SCALAR_TAGS[mark](text[2:])  # a KeyError is outside the subset too


def _plain(value: Any) -> Any:
    """Transit's Python types to the plain ones the rest of the server uses."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _UnknownTag(f"Decimal {value} is not a number")
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value  # NaN has no SQL value [mock-defined]
    if isinstance(value, transit_types.Boolean):
        return bool(value)
    if isinstance(value, Mapping):  # Transit's frozendict is a Mapping, not a dict
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (transit_types.Keyword, transit_types.Symbol)):
        return str(value.str)
    if isinstance(value, transit_types.URI):
        return str(value.rep)
    raise _UnknownTag(f"Unsupported transit value: {type(value).__name__}")


def _key(key: Any) -> str:
    """Map keys become column names, so always text: ``~:id`` is ``id``, ``~i5`` is ``5``."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, (bool, transit_types.Boolean)):
        return "true" if key else "false"
    plain = _plain(key)
    if isinstance(plain, (dict, list)):
        return json.dumps(plain, default=str, sort_keys=True)  # cmap keys [mock-defined]
    if isinstance(plain, dt.datetime):
        return plain.isoformat()
    return str(plain)
