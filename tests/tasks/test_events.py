"""`Subscription`, the piece both buses deliver through."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.tasks.events import EventKind, Subscription, TaskEvent

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("turns", [0, 1, 2])
async def test_a_cancel_that_is_accepted_is_honoured(turns: int) -> None:
    """A worker cancels a run's cancel watcher (parked in `next`) when the run ends; an event
    for the task can land in the same loop iteration. Whenever `cancel()` says it took, the
    waiter must end cancelled: with `asyncio.wait_for` (Python 3.11) the event could win
    after the cancel was accepted, the watcher waited on, and the run with it, until the next
    lease renewal (10 s of a sync request's latency). `turns`: loop turns between the event
    and the cancel, to land the cancel at each step of the wake-up."""
    sub = Subscription("img_1")
    waiting = asyncio.create_task(sub.next(3600))
    await asyncio.sleep(0)  # parked in next()
    sub.deliver(TaskEvent("img_1", EventKind.PROGRESS, progress=5))
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.cancel():
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
    else:  # it had already returned the event: nothing to honour
        assert [e.progress for e in waiting.result()] == [5]


async def test_next_returns_what_arrived_and_then_waits_again() -> None:
    sub = Subscription("img_1")
    sub.deliver(TaskEvent("img_1", EventKind.PROGRESS, progress=5))
    sub.deliver(TaskEvent("img_1", EventKind.TERMINAL, status="succeeded"))
    events = await sub.next(0.01)
    assert [e.kind for e in events] == [EventKind.PROGRESS, EventKind.TERMINAL]
    assert await sub.next(0.01) == []
