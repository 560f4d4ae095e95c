"""Batch schema regexes (``pattern``, ``patternProperties``), run by ``regex`` under a time limit.

Python's ``re`` cannot be interrupted: one catastrophic pattern in a client's schema (``^(a|a)+$``
against ``"aaaa…!"``) held the event loop for as long as it backtracked. ``regex``
takes a ``timeout``, so both validators match through here: jsonschema with its pattern keywords
replaced, fastjsonschema with its compiled patterns swapped. Pure: no I/O, no aiohttp.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import jsonschema.validators
import regex

# [mock-defined] Stitch's validator (everit, Java regexes) sets no limit; ours bounds how long a
# hostile schema can hold the event loop. One match may take MATCH_TIMEOUT seconds, and all of
# one batch's matches together BATCH_BUDGET (time spent matching, not the batch's whole time),
# far more than ordinary patterns need even on the largest batch.
MATCH_TIMEOUT = 0.1
BATCH_BUDGET = 2.0

# What compiling a client's pattern may raise: a syntax error, a group nested thousands deep.
BAD_PATTERN = (regex.error, RecursionError, OverflowError)


class _Budget:
    """Seconds of matching left to the batch being validated."""

    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "importapi_lite_pattern_budget", default=None
)


class PatternTimedOut(Exception):
    """A pattern took too long on ``text``: a value of the record, or one of its keys."""

    def __init__(self, pattern: str, text: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern
        self.text = text


@contextlib.contextmanager
def time_limit(seconds: float = BATCH_BUDGET) -> Iterator[None]:
    """Bound the matching done inside, all matches together, to ``seconds``."""
    token = _budget.set(_Budget(seconds))
    try:
        yield
    finally:
        _budget.reset(token)


@functools.lru_cache(maxsize=256)
def _compile(source: str) -> Any:
    return regex.compile(source)


def is_valid(pattern: str) -> bool:
    """Whether ``regex``, which runs them, can compile the pattern."""
    try:
        _compile(pattern)
    except BAD_PATTERN:
        return False
    return True


def _search(compiled: Any, pattern: str, text: str) -> Any:
    """``compiled.search(text)`` within the time left; ``pattern`` names it if that runs out."""
    budget = _budget.get()
    timeout = MATCH_TIMEOUT if budget is None else min(MATCH_TIMEOUT, budget.left)
    if timeout <= 0:
        raise PatternTimedOut(pattern, text)
    started = time.monotonic()
    try:
        # Positional (pos, endpos, concurrent, partial, timeout): keywords cost a microsecond a
        # call. concurrent=False keeps the GIL, which is cheaper for the short matches that are
        # the rule; the event loop waits on this thread either way.
        return compiled.search(text, None, None, False, False, timeout)
    except TimeoutError:
        raise PatternTimedOut(pattern, text) from None
    finally:
        if budget is not None:
            budget.left -= time.monotonic() - started


def search(pattern: str, text: str) -> bool:
    return _search(_compile(pattern), pattern, text) is not None


class _TimedPattern:
    """Stands in for the ``re.Pattern`` fastjsonschema compiled: only ``search`` is used."""

    def __init__(self, pattern: str, source: str) -> None:
        self.pattern = pattern
        self.compiled = _compile(source)  # fastjsonschema's rewrite of the pattern ($ as \Z)

    def search(self, text: str) -> Any:
        return _search(self.compiled, self.pattern, text)


def time_fast_patterns(validate: Any) -> bool:
    """Make a fastjsonschema validator match through ``regex`` with the time limit.

    For schemas with patterns. fastjsonschema keeps its compiled patterns in the
    ``REGEX_PATTERNS`` dict of the generated function's globals and looks them up on each call.
    False if it holds none (a release that keeps them elsewhere) or one ``regex`` cannot compile:
    then the caller must not use the fast path. ``tests/test_ingest_validation_patterns.py``
    pins that a catastrophic pattern times out on it.
    """
    patterns = getattr(validate, "__globals__", {}).get("REGEX_PATTERNS")
    if not isinstance(patterns, dict) or not patterns:
        return False
    for name, compiled in list(patterns.items()):
        source = getattr(compiled, "pattern", None)
        if not isinstance(name, str) or not isinstance(source, str) or not is_valid(source):
            return False
        patterns[name] = _TimedPattern(name, source)
    return True


def locate(data: Any, text: str) -> str:
    """The pointer (``#/a/0``) to ``text`` in a record, as a value or as a key; ``#`` if unseen.

    Found by identity: the JSON decoder gives each value string its own object, so a value is
    found exactly; a key is the one object the validators matched, but the decoder shares it
    among objects with that key, so the first of those is named.
    """
    stack: list[tuple[Any, str]] = [(data, "#")]
    while stack:
        node, pointer = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for name, value in items:
            if value is text or name is text:
                return f"{pointer}/{name}"
            if isinstance(value, (dict, list)):
                stack.append((value, f"{pointer}/{name}"))
    return "#"


# --- jsonschema: Draft 4 with its three regex keywords matching through ``search`` ------------


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    # jsonschema's own joins every patternProperties key into one ``re`` pattern.
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [
        name
        for name in instance
        if name not in declared and not any(search(p, name) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif not additional and extras:
        unexpected = ", ".join(repr(name) for name in sorted(extras))
        yield jsonschema.ValidationError(f"Additional properties are not allowed ({unexpected})")


Draft4Validator: Any = jsonschema.validators.extend(
    jsonschema.Draft4Validator,
    {
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def _is_regex(instance: object) -> bool:
    return not isinstance(instance, str) or bool(_compile(instance))


# The metaschema's ``format: regex`` (on ``pattern``), checked by the engine that runs patterns.
SCHEMA_FORMATS = jsonschema.FormatChecker(formats=())
SCHEMA_FORMATS.checks("regex", raises=BAD_PATTERN)(_is_regex)
