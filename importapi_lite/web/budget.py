"""A byte budget for request bodies in memory: requests wait their turn, first come first served.

A batch body becomes many times its size in Python objects while it is decoded, validated and
loaded, and the event loop works on one request at a time anyway, so many big uploads at once
buy no speed and cost gigabytes. ``middleware.checks_middleware`` holds a body's declared size
(the limit, when it declares none) from before reading it until the response, so at most
``capacity`` bytes of bodies are in the server at once; small pushes pass straight through
while the budget has room.
"""

from __future__ import annotations

import asyncio
from collections import deque

from ..observe.metrics import WAITING_FOR_BODY


class ByteBudget:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def hold(self, size: int) -> _Hold:
        """``async with budget.hold(size)``: wait until ``size`` bytes are free, hold them."""
        return _Hold(self, min(size, self.capacity))  # one body larger than the budget runs alone

    async def _take(self, size: int) -> None:
        if not self._waiting and size <= self.free:
            self.free -= size
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append((size, turn))
        WAITING_FOR_BODY.inc()
        try:
            await turn
        except asyncio.CancelledError:  # the client went away while waiting
            if turn.done() and not turn.cancelled():
                self._release(size)  # granted in the same instant: give it back
            else:
                self._waiting.remove((size, turn))
                self._grant()  # it may have been first in line, holding others up
            raise
        finally:
            WAITING_FOR_BODY.dec()

    def _release(self, size: int) -> None:
        self.free += size
        self._grant()

    def _grant(self) -> None:
        # In arrival order: a big body at the head is not starved by small ones behind it.
        while self._waiting and self._waiting[0][0] <= self.free:
            size, turn = self._waiting.popleft()
            self.free -= size
            turn.set_result(None)


class _Hold:
    """A class, not ``@asynccontextmanager``, whose generator would cost every request more."""

    __slots__ = ("budget", "size")

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self.budget = budget
        self.size = size

    async def __aenter__(self) -> None:
        await self.budget._take(self.size)

    async def __aexit__(self, *exc_info: object) -> None:
        self.budget._release(self.size)
