"""`CancelWatch`: a run's watch for its task ending elsewhere, a callback on the task's
subscription rather than a task waiting on it."""

from __future__ import annotations

import asyncio

import pytest

from imagegate.tasks.cancel_watch import CancelWatch
from imagegate.tasks.events import EventKind, MemoryEventBus, TaskEvent

pytestmark = pytest.mark.anyio


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def _watching(bus: MemoryEventBus) -> tuple[CancelWatch, list[str]]:
    """A started watch of img_1 on `bus`, settled, and the task ids it reported ended."""
    ended: list[str] = []

    async def on_ended(task_id: str) -> None:
        ended.append(task_id)

    watch = CancelWatch(bus, "img_1", on_ended)
    watch.start()
    await _settle()
    return watch, ended


async def test_a_terminal_event_tells_the_worker_once_and_closing_unsubscribes() -> None:
    bus = MemoryEventBus()
    watch, ended = await _watching(bus)
    await bus.publish(TaskEvent("img_1", EventKind.PROGRESS, progress=5))
    await bus.publish(TaskEvent("img_2", EventKind.TERMINAL, status="cancelled"))
    await _settle()
    assert ended == []
    await bus.publish(TaskEvent("img_1", EventKind.TERMINAL, status="cancelled"))
    await bus.publish(TaskEvent("img_1", EventKind.TERMINAL, status="cancelled"))
    await _settle()
    assert ended == ["img_1"]
    watch.stop()
    await asyncio.wait([watch.closing()])
    assert bus._local.by_task == {}


async def test_after_stop_the_runs_own_end_is_not_taken_for_someone_elses() -> None:
    bus = MemoryEventBus()
    watch, ended = await _watching(bus)
    watch.stop()
    await bus.publish(TaskEvent("img_1", EventKind.TERMINAL, status="succeeded"))
    await asyncio.wait([watch.closing()])
    assert ended == []
    assert bus._local.by_task == {}


async def test_a_run_that_ends_before_the_watch_joined_leaves_nothing_behind() -> None:
    bus = MemoryEventBus()

    async def on_ended(_task_id: str) -> None:
        raise AssertionError("not expected")

    watch = CancelWatch(bus, "img_1", on_ended)
    watch.start()
    watch.stop()  # before the join ran
    await asyncio.wait([watch.closing()])
    await _settle()
    assert bus._local.by_task == {}
