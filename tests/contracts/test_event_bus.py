"""The EventBus contract: every bus passes the same suite (`bus_pair` in conftest.py gives a
publisher and a subscriber: two buses on one Redis, as two processes hold them, or the one
memory bus)."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.domain.images import PartialImage
from imagegate.tasks.events import EventBus, EventKind, TaskEvent

pytestmark = pytest.mark.anyio

Pair = tuple[EventBus, EventBus]


async def collect(sub_next: object, want: int, timeout: float = 5.0) -> list[TaskEvent]:
    got: list[TaskEvent] = []
    async with asyncio.timeout(timeout):
        while len(got) < want:
            got.extend(await sub_next(1.0))  # type: ignore[operator]
    return got


async def test_a_subscriber_gets_every_event_of_its_task_in_order(bus_pair: Pair) -> None:
    publisher, subscriber = bus_pair
    partial = PartialImage(image_index=1, partial_index=2, data=bytes(range(256)) * 100)
    sent = [
        TaskEvent("img_a", EventKind.STARTED),
        TaskEvent("img_a", EventKind.PROGRESS, progress=40),
        TaskEvent("img_a", EventKind.PARTIAL_IMAGE, partial=partial),
        TaskEvent("img_a", EventKind.TERMINAL, status="succeeded"),
    ]
    async with subscriber.subscribe("img_a") as sub:
        for event in sent:
            await publisher.publish(event)
        assert await collect(sub.next, len(sent)) == sent


async def test_events_of_other_tasks_are_not_delivered(bus_pair: Pair) -> None:
    publisher, subscriber = bus_pair
    async with subscriber.subscribe("img_mine") as sub:
        await publisher.publish(TaskEvent("img_other", EventKind.TERMINAL, status="failed"))
        await publisher.publish(TaskEvent("img_mine", EventKind.PROGRESS, progress=5))
        got = await collect(sub.next, 1)
        assert [e.task_id for e in got] == ["img_mine"]
        assert await sub.next(0.2) == []


async def test_every_subscriber_of_a_task_gets_it(bus_pair: Pair) -> None:
    publisher, subscriber = bus_pair
    async with subscriber.subscribe("img_b") as one, subscriber.subscribe("img_b") as two:
        await publisher.publish(TaskEvent("img_b", EventKind.TERMINAL, status="cancelled"))
        for sub in (one, two):
            [event] = await collect(sub.next, 1)
            assert event.status == "cancelled" and event.kind is EventKind.TERMINAL


async def test_nothing_arrives_after_leaving(bus_pair: Pair) -> None:
    publisher, subscriber = bus_pair
    async with subscriber.subscribe("img_c") as sub:
        pass
    await publisher.publish(TaskEvent("img_c", EventKind.PROGRESS, progress=1))
    assert await sub.next(0.3) == []
    # And subscribing again works (the channel is joined afresh).
    async with subscriber.subscribe("img_c") as again:
        await publisher.publish(TaskEvent("img_c", EventKind.PROGRESS, progress=2))
        assert [e.progress for e in await collect(again.next, 1)] == [2]


async def test_waiting_with_nothing_published_times_out_empty(bus_pair: Pair) -> None:
    _, subscriber = bus_pair
    async with subscriber.subscribe("img_d") as sub:
        assert await sub.next(0.1) == []


async def test_publishing_to_nobody_is_fine(bus_pair: Pair) -> None:
    publisher, _ = bus_pair
    await publisher.publish(TaskEvent("img_nobody", EventKind.STARTED))


async def test_one_announcement_wakes_one_waiter(bus_pair: Pair) -> None:
    """No thundering herd: of two idle workers (two processes on Redis), one wakes."""
    publisher, subscriber = bus_pair
    waiters = [asyncio.create_task(bus.wait_for_work(1.5)) for bus in (publisher, subscriber)]
    await asyncio.sleep(0.3)  # both are waiting
    await publisher.work_queued()
    assert sorted(await asyncio.gather(*waiters)) == [False, True]


async def test_an_announcement_waits_for_a_worker(bus_pair: Pair) -> None:
    """Work announced while every worker is busy wakes the next one to wait."""
    publisher, subscriber = bus_pair
    await publisher.work_queued()
    assert await subscriber.wait_for_work(2.0) is True
    assert await subscriber.wait_for_work(0.1) is False


async def test_the_bus_reports_itself_connected(bus_pair: Pair) -> None:
    publisher, subscriber = bus_pair
    await publisher.check()
    async with subscriber.subscribe("img_e"):
        assert subscriber.connected
