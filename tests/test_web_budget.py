"""``web/budget.py``'s ByteBudget: bytes of bodies in memory at once, granted in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from importapi_lite.web.budget import ByteBudget


async def holder(budget: ByteBudget, size: int, log: list[str], name: str, release: asyncio.Event):
    async with budget.hold(size):
        log.append(name)
        await release.wait()


async def test_requests_within_the_budget_run_at_once_and_the_rest_wait_in_order():
    budget, log = ByteBudget(10), []
    release = {name: asyncio.Event() for name in "abcd"}
    tasks = [
        asyncio.create_task(holder(budget, size, log, name, release[name]))
        for name, size in [("a", 6), ("b", 4), ("c", 8), ("d", 1)]
    ]
    await asyncio.sleep(0.01)
    assert log == ["a", "b"]  # d would fit, but c came first: no starving the big one

    release["a"].set()
    await asyncio.sleep(0.01)
    assert log == ["a", "b"]  # 6 free, c needs 8
    release["b"].set()
    await asyncio.sleep(0.01)
    assert log == ["a", "b", "c", "d"]
    for event in release.values():
        event.set()
    await asyncio.gather(*tasks)
    assert budget.free == 10


async def test_a_waiter_that_is_cancelled_gives_up_its_place():
    budget, log = ByteBudget(10), []
    release = asyncio.Event()
    first = asyncio.create_task(holder(budget, 8, log, "first", release))
    big = asyncio.create_task(holder(budget, 10, log, "big", release))
    small = asyncio.create_task(holder(budget, 2, log, "small", release))
    await asyncio.sleep(0.01)
    assert log == ["first"]

    big.cancel()
    await asyncio.sleep(0.01)

    assert log == ["first", "small"]  # the head of the line left: the next one fits now
    release.set()
    await asyncio.gather(first, small)
    with pytest.raises(asyncio.CancelledError):
        await big
    assert budget.free == 10


async def test_a_body_larger_than_the_budget_runs_alone():
    budget, log = ByteBudget(10), []
    release = asyncio.Event()
    task = asyncio.create_task(holder(budget, 50, log, "huge", release))
    await asyncio.sleep(0.01)
    assert log == ["huge"] and budget.free == 0
    release.set()
    await task
    assert budget.free == 10
