"""Python 3.11 shims for the old official clients, imported at the start of every process.

``install.sh`` copies this file into the site-packages of the client venvs that need it, next to
``py311_shims.pth`` (one line: ``import py311_shims``), so the clients run unchanged and nothing
is patched in the server's venv. Not a ``sitecustomize.py``: Debian's python3.11 ships its own in
``/usr/lib/python3.11``, which comes before the venv's site-packages on ``sys.path`` and so
shadows one there, while every ``.pth`` file in site-packages is read. Each shim only adds a name
that Python 3.10/3.11 removed; it never replaces one that exists.

- ``collections.Mapping`` & co. (removed in 3.10): stitchclient 1.0.1's vendored Transit writer
  (``class_hash.py``, ``transit_types.py``) subclasses ``collections.MutableMapping`` and imports
  ``Mapping``/``Hashable`` from ``collections``. (Its venv does not carry this file: the test
  scripts alias the names themselves.)
- ``asyncio.coroutine`` (removed in 3.11): target-stitch 3.x pins singer-python 5.8.0, which pins
  backoff 1.8.0, whose ``_async.py`` wraps each plain ``giveup``/``on_backoff`` handler with
  ``asyncio.coroutine`` when target-stitch decorates its ``post_coroutine`` at import time, and
  awaits it on every non-2xx answer. So this must return an awaitable even for a plain function,
  as the old decorator did: ``types.coroutine`` alone hands back the handler's plain result, and
  the first 400 or 503 ends in ``TypeError: object bool can't be used in 'await' expression``.
"""

import asyncio
import collections
import collections.abc
import functools
import inspect
import types

for _name in collections.abc.__all__:
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))


def _coroutine(func):
    """What ``@asyncio.coroutine`` did for the uses these clients make of it."""
    if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
        return types.coroutine(func)

    @functools.wraps(func)
    async def run(*args, **kwargs):
        result = func(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    return run


if not hasattr(asyncio, "coroutine"):
    asyncio.coroutine = _coroutine
