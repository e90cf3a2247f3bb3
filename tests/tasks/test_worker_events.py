"""The worker and the waiters on the event bus, over every bus (`bus_pair`): the worker holds
one bus, the "API process" (a TaskService, a subscriber) the other — two processes' worth of
Redis connections, or the one memory bus.

No timing is asserted: each test makes polling so slow (lease renewals, poll intervals of
minutes) that only the event can explain the outcome within the test's bound.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagegate.domain.images import GeneratedImage, PartialImage
from imagegate.domain.task import TaskStatus, new_id
from imagegate.providers.base import (
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
)
from imagegate.storage.obstore_store import ObstoreBlobStore
from imagegate.tasks.events import EventBus, EventKind, TaskEvent
from imagegate.tasks.service import TaskService
from tests.tasks.test_worker import rig_with

pytestmark = pytest.mark.anyio

SLOW = 600.0  # a poll interval or lease no test waits out


class Previewing(Provider):
    """Reports progress and one partial image, then waits for `release` (or is cancelled)."""

    name = "previewing"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        self.started.set()
        await progress(30)
        await partial(PartialImage(0, 0, b"preview-bytes"))
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        r = job.request
        return ProviderResult([GeneratedImage(b"final", r.content_type, r.width, r.height)],
                              {"total_tokens": 1})


Pair = tuple[EventBus, EventBus]


async def test_a_cancel_from_another_process_stops_the_run_at_once(
        tmp_path: Path, bus_pair: Pair) -> None:
    api_bus, worker_bus = bus_pair
    provider = Previewing()
    async with rig_with(tmp_path, ObstoreBlobStore.memory(), worker_bus) as rig:
        # Lease renewals (which would also notice) come only every SLOW/3 seconds.
        await rig.worker(provider, lease_seconds=SLOW)
        tid = await rig.submit()
        async with asyncio.timeout(10):
            await provider.started.wait()
        api = TaskService(rig.store, api_bus, poll_interval=SLOW, sync_wait_seconds=SLOW)
        cancelled = await api.cancel(tid, "k")
        assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
        async with asyncio.timeout(10):
            await provider.cancelled.wait()
            while True:  # and the run is gone from the worker's books
                if not rig.workers[0].in_flight:
                    break
                await asyncio.sleep(0.01)


async def test_a_runs_events_reach_a_subscriber_elsewhere(tmp_path: Path, bus_pair: Pair
                                                          ) -> None:
    api_bus, worker_bus = bus_pair
    provider = Previewing()
    async with rig_with(tmp_path, ObstoreBlobStore.memory(), worker_bus) as rig:
        await rig.worker(provider, progress_interval=0.0)
        seen: list[TaskEvent] = []
        tid = new_id("img_")
        async with api_bus.subscribe(tid) as sub:  # before the task exists: nothing missed
            await rig.submit(tid=tid)
            async with asyncio.timeout(10):
                while not any(e.kind is EventKind.PARTIAL_IMAGE for e in seen):
                    seen.extend(await sub.next(1.0))
                provider.release.set()
                while not any(e.kind is EventKind.TERMINAL for e in seen):
                    seen.extend(await sub.next(1.0))
    kinds = [e.kind for e in seen]
    assert kinds[0] is EventKind.STARTED and kinds[-1] is EventKind.TERMINAL
    assert EventKind.PROGRESS in kinds and all(e.task_id == tid for e in seen)
    assert [e.progress for e in seen if e.kind is EventKind.PROGRESS] == [30]
    [preview] = [e.partial for e in seen if e.kind is EventKind.PARTIAL_IMAGE]
    assert preview == PartialImage(0, 0, b"preview-bytes")
    assert seen[-1].status == "succeeded"


async def test_a_sync_wait_elsewhere_wakes_on_the_end(tmp_path: Path, bus_pair: Pair) -> None:
    api_bus, worker_bus = bus_pair
    provider = Previewing()
    async with rig_with(tmp_path, ObstoreBlobStore.memory(), worker_bus) as rig:
        await rig.worker(provider)
        tid = await rig.submit()
        task = await rig.store.get(tid)
        assert task is not None
        # Re-reads only every SLOW seconds: the task's end can only come as an event.
        api = TaskService(rig.store, api_bus, poll_interval=SLOW, sync_wait_seconds=SLOW)
        waiting = asyncio.create_task(api.wait(task, timeout=30))
        async with asyncio.timeout(10):
            await provider.started.wait()
        provider.release.set()
        async with asyncio.timeout(10):
            done = await waiting
        assert done.status is TaskStatus.SUCCEEDED
