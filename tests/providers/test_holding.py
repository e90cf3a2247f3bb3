"""The process-wide bound on upstream answers held in memory (`providers/holding.py`), alone
and under the upstream client reading real answers from a loopback server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from imagegate.providers.holding import Holding, ResultBudget, current, holding
from imagegate.providers.upstream import UpstreamClient
from tests.providers.test_upstream_client import channel, serve_get

pytestmark = pytest.mark.anyio


async def test_a_taker_that_does_not_fit_waits_for_a_give() -> None:
    budget = ResultBudget(100)
    a, b = Holding(budget), Holding(budget)
    await a.take(80)
    waiting = asyncio.create_task(b.take(50))
    await asyncio.sleep(0.05)
    assert not waiting.done() and budget.used == 80
    a.release()
    await asyncio.wait_for(waiting, 5)
    assert budget.used == 50 and b.held == 50
    b.release()
    assert budget.used == 0


async def test_first_come_first_served_and_only_those_that_fit() -> None:
    budget = ResultBudget(100)
    a = Holding(budget)
    await a.take(100)
    order: list[str] = []

    async def take(name: str, size: int) -> Holding:
        h = Holding(budget)
        await h.take(size)
        order.append(name)
        return h

    big = asyncio.create_task(take("big", 90))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 10))
    await asyncio.sleep(0.05)
    a.release()
    held_big = await asyncio.wait_for(big, 5)
    held_small = await asyncio.wait_for(small, 5)
    assert order == ["big", "small"] and budget.used == 100
    held_big.release()
    held_small.release()


async def test_one_answer_larger_than_the_budget_still_passes_alone() -> None:
    budget = ResultBudget(100)
    h = Holding(budget)
    await asyncio.wait_for(h.take(500), 5)  # nobody else holds anything: never a deadlock
    await asyncio.wait_for(h.take(10), 5)  # it holds all that is held: it may take more
    assert budget.used == 510
    h.release()
    assert budget.used == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    budget = ResultBudget(100)
    a = Holding(budget)
    await a.take(100)
    waiting = asyncio.create_task(Holding(budget).take(50))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    a.release()
    assert budget.used == 0
    late = Holding(budget)
    await asyncio.wait_for(late.take(100), 5)  # the cancelled one does not stand in line


async def test_the_holding_is_the_runs_own_and_released_at_its_end() -> None:
    budget = ResultBudget(100)
    assert current() is None
    with holding(budget) as h:
        assert current() is h

        async def child() -> Holding | None:
            return current()

        assert await asyncio.create_task(child()) is h  # tasks it starts see it too
        assert h is not None
        await h.take(40)
    assert current() is None and budget.used == 0


ANSWER = b'{"data": [{"b64_json": "' + b"A" * 700_000 + b'"}]}'


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=ANSWER, content_type="application/json")

    async with serve_get(answer, "/v1/result") as url:
        yield url


async def test_a_runs_answers_count_until_the_run_ends(upstream_url: str) -> None:
    """Two runs whose answers do not fit together: the second reads its answer only once
    the first run has ended; an API-side call (no run) is not counted."""
    budget = ResultBudget(1_000_000)
    client = UpstreamClient(channel(upstream_url))
    first_read, first_may_end = asyncio.Event(), asyncio.Event()

    async def run(read: asyncio.Event | None, may_end: asyncio.Event | None) -> int:
        with holding(budget):
            answer = await client.get_json("/result")
            if read is not None and may_end is not None:
                read.set()
                await may_end.wait()
            return len(answer["data"][0]["b64_json"])

    try:
        first = asyncio.create_task(run(first_read, first_may_end))
        await asyncio.wait_for(first_read.wait(), 10)
        assert budget.used == len(ANSWER)
        assert len((await client.get_json("/result"))["data"]) == 1  # outside any run
        second = asyncio.create_task(run(None, None))
        await asyncio.sleep(0.2)
        assert not second.done()  # waiting, its answer unread
        first_may_end.set()
        assert await asyncio.wait_for(first, 10) == 700_000
        assert await asyncio.wait_for(second, 10) == 700_000
        assert budget.used == 0
    finally:
        await client.aclose()
