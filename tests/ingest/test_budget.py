"""MemoryBudget: bytes held at once across requests; a bounded wait, then 503 + Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.errors import ServiceUnavailableError
from imagegate.ingest.budget import MemoryBudget

pytestmark = pytest.mark.anyio


async def test_within_the_budget_nothing_waits() -> None:
    budget = MemoryBudget(100, wait_seconds=0)
    a, b = budget.lease(), budget.lease()
    await a.grow(60, param="body")
    await b.grow(40, param="body")
    assert budget.used == 100 and (a.held, b.held) == (60, 40)
    a.shrink(10)
    assert budget.used == 90
    a.close()
    b.close()
    b.close()  # closing twice gives back nothing twice
    assert budget.used == 0


async def test_beyond_the_budget_is_503_with_retry_after() -> None:
    budget = MemoryBudget(100, wait_seconds=0)
    holder = budget.lease()
    await holder.grow(80, param="body")
    late = budget.lease()
    with pytest.raises(ServiceUnavailableError) as err:
        await late.grow(30, param="image[0]")
    assert (err.value.status_code, err.value.code, err.value.param) == (503, "server_busy",
                                                                        "image[0]")
    assert err.value.headers == {"Retry-After": "1"}
    assert late.held == 0 and budget.used == 80


async def test_a_waiter_goes_ahead_when_room_is_freed() -> None:
    budget = MemoryBudget(100, wait_seconds=30)
    holder = budget.lease()
    await holder.grow(100, param="body")
    waiter = budget.lease()
    pending = asyncio.ensure_future(waiter.grow(50, param="body"))
    await asyncio.sleep(0)
    assert not pending.done()
    holder.shrink(40)  # not enough yet: it keeps waiting
    await asyncio.sleep(0)
    assert not pending.done()
    holder.close()
    await asyncio.wait_for(pending, 5)
    assert budget.used == 50 == waiter.held


async def test_the_wait_is_bounded() -> None:
    budget = MemoryBudget(100, wait_seconds=0.05)
    holder = budget.lease()
    await holder.grow(100, param="body")
    with pytest.raises(ServiceUnavailableError):
        await asyncio.wait_for(budget.lease().grow(1, param="body"), 5)
    assert budget.used == 100


async def test_one_holder_may_always_go_ahead_alone() -> None:
    # A budget below one request's size makes large requests take turns, not all fail.
    budget = MemoryBudget(100, wait_seconds=0)
    alone = budget.lease()
    await alone.grow(500, param="body")
    await alone.grow(500, param="body")  # its next chunk too
    with pytest.raises(ServiceUnavailableError):
        await budget.lease().grow(1, param="body")
    alone.close()
    assert budget.used == 0
