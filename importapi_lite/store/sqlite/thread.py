"""A ``sqlite3`` connection and the one thread that uses it, driven from the event loop.

A connection may only be used by the thread that made it, and its calls block; so each open
database gets a thread of its own, which takes functions from a queue and runs each with the
connection (``run``). A whole transaction is one such function: one trip to the thread and one
wake-up of the loop, however many statements it runs. The shape is datasette's write thread
(``Database.execute_write_fn``), with only the standard library's public API.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Task = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
_STOP = None  # queued by close(): the thread closes the connection and ends


class ConnectionThread:
    """``await ConnectionThread.open(connect)``, then ``await thread.run(fn)`` for
    ``fn(connection)`` on the connection's thread, in the order the calls were made."""

    def __init__(self, name: str) -> None:
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, connect: Callable[[], sqlite3.Connection], name: str = "sqlite"
    ) -> ConnectionThread:
        """The thread, with the connection ``connect()`` made on it; raises what it raised."""
        thread = cls(name)
        thread._thread.start()
        try:
            await thread.run(lambda _: thread._connect(connect))
        except BaseException:
            thread._tasks.put(_STOP)
            raise
        return thread

    def _connect(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connection = connect()

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the thread, after every call queued before it.

        Once queued it runs to its end even if the awaiting task is cancelled: a transaction
        is never cut short halfway by a client that went away.
        """
        if self._closed:
            raise sqlite3.ProgrammingError("the connection is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._tasks.put((fn, future, loop))
        return await future

    async def close(self) -> None:
        """Close the connection after the calls queued before, and end the thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._tasks.put((lambda connection: connection.close(), done, loop))
        self._tasks.put(_STOP)
        try:
            await done
        finally:
            await asyncio.to_thread(self._thread.join)

    def _serve(self) -> None:
        while (task := self._tasks.get()) is not _STOP:
            fn, future, loop = task
            try:
                result = fn(self._connection)  # type: ignore[arg-type]  # set by the first task
            except BaseException as exc:  # handed to the awaiting task, whatever it is
                _call_soon(loop, _set_exception, future, exc)
            else:
                _call_soon(loop, _set_result, future, result)
        if self._connection is not None:
            self._connection.close()  # a no-op when close() already did


def _call_soon(loop: asyncio.AbstractEventLoop, *call: Any) -> None:
    try:
        loop.call_soon_threadsafe(*call)
    except RuntimeError:
        pass  # the loop is closed: nobody is left to tell


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # cancelled meanwhile: nobody waits for it
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
