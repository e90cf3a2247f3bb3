"""`Subscription`, the piece both buses deliver through."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.tasks.events import (
    MAX_QUEUED_EVENTS,
    EventKind,
    LocalSubscribers,
    MemoryEventBus,
    Subscription,
    TaskEvent,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("turns", [0, 1, 2])
async def test_a_cancel_that_is_accepted_is_honoured(turns: int) -> None:
    """A follower's wait (parked in `next`) is cancelled when it stops following; an event
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


@pytest.mark.parametrize("turns", [0, 1, 2])
async def test_a_cancel_of_a_wait_without_timeout_is_honoured(turns: int) -> None:
    """A wait with no timeout (no timer per waiter) is cancelled the same way."""
    sub = Subscription("img_1")
    waiting = asyncio.create_task(sub.next(None))
    await asyncio.sleep(0)
    sub.deliver(TaskEvent("img_1", EventKind.TERMINAL, status="cancelled"))
    for _ in range(turns):
        await asyncio.sleep(0)
    if waiting.cancel():
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)
        # The event is not lost with the cancelled wait: the next look returns it.
        assert [e.kind for e in await sub.next(0.01)] == [EventKind.TERMINAL]
    else:
        assert [e.kind for e in waiting.result()] == [EventKind.TERMINAL]


async def test_a_wait_without_timeout_ends_when_an_event_comes() -> None:
    sub = Subscription("img_1")
    waiting = asyncio.create_task(sub.next(None))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    sub.deliver(TaskEvent("img_1", EventKind.STARTED))
    assert [e.kind for e in await asyncio.wait_for(waiting, 5)] == [EventKind.STARTED]
    # And it can wait again after that.
    again = asyncio.create_task(sub.next(None))
    await asyncio.sleep(0)
    sub.deliver(TaskEvent("img_1", EventKind.PROGRESS, progress=40))
    assert [e.progress for e in await asyncio.wait_for(again, 5)] == [40]


async def test_a_subscriber_that_never_reads_keeps_only_the_newest_events() -> None:
    sub = Subscription("img_1")
    for pct in range(MAX_QUEUED_EVENTS + 10):
        sub.deliver(TaskEvent("img_1", EventKind.PROGRESS, progress=pct))
    events = await sub.next(0.01)
    assert len(events) == MAX_QUEUED_EVENTS
    assert events[0].progress == 10 and events[-1].progress == MAX_QUEUED_EVENTS + 9


async def test_the_memory_bus_forgets_a_subscriber_when_its_block_ends() -> None:
    bus = MemoryEventBus()
    with pytest.raises(RuntimeError):
        async with bus.subscribe("img_1") as sub:
            await bus.publish(TaskEvent("img_1", EventKind.STARTED))
            assert [e.kind for e in await sub.next(0.01)] == [EventKind.STARTED]
            raise RuntimeError("the subscriber's own failure")
    await bus.publish(TaskEvent("img_1", EventKind.PROGRESS, progress=1))
    assert await sub.next(0.01) == []  # no longer delivered to
    async with bus.subscribe("img_1") as first, bus.subscribe("img_1") as second:
        await bus.publish(TaskEvent("img_1", EventKind.PROGRESS, progress=2))
        assert [e.progress for e in await first.next(0.01)] == [2]
        assert [e.progress for e in await second.next(0.01)] == [2]


async def test_notify_hands_over_queued_events_then_each_as_it_arrives() -> None:
    sub = Subscription("img_1")
    sub.deliver(TaskEvent("img_1", EventKind.STARTED))
    seen: list[EventKind] = []
    sub.notify(lambda e: seen.append(e.kind))
    assert seen == [EventKind.STARTED]
    sub.deliver(TaskEvent("img_1", EventKind.TERMINAL, status="cancelled"))
    assert seen == [EventKind.STARTED, EventKind.TERMINAL]
    assert await sub.next(0.01) == []  # nothing was queued meanwhile
    sub.notify(None)  # back to queueing
    sub.deliver(TaskEvent("img_1", EventKind.PROGRESS, progress=7))
    assert seen == [EventKind.STARTED, EventKind.TERMINAL]
    assert [e.progress for e in await sub.next(0.01)] == [7]


def test_local_subscribers_of_one_task_each_get_its_events_and_leave_in_any_order() -> None:
    local = LocalSubscribers()
    a, first = local.add("img_1")
    b, second = local.add("img_1")
    other, _ = local.add("img_2")
    assert (first, second) == (True, False)
    local.deliver(TaskEvent("img_1", EventKind.STARTED))
    assert [a._events, b._events, other._events] == [
        [TaskEvent("img_1", EventKind.STARTED)], [TaskEvent("img_1", EventKind.STARTED)], None]
    assert local.remove(a) is False
    assert local.remove(a) is False  # twice changes nothing
    assert local.remove(b) is True
    assert local.remove(Subscription("img_2")) is False  # not the task's subscription
    assert local.remove(other) is True
    assert local.by_task == {}
