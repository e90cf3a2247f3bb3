"""The worker against a real SQLite task table, with small providers written for each case."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from imagegate.db.database import Database, open_database
from imagegate.db.tables import api_keys, tasks
from imagegate.domain.catalog import load_catalog
from imagegate.domain.images import GeneratedImage
from imagegate.domain.normalize import normalize
from imagegate.domain.task import Task, TaskStatus, new_id
from imagegate.errors import ProviderError
from imagegate.providers.base import (
    SYNC_CALL,
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
)
from imagegate.providers.registry import ProviderRegistry
from imagegate.storage.base import BlobNotFoundError, BlobStore
from imagegate.storage.obstore_store import ObstoreBlobStore
from imagegate.tasks.events import EventBus, EventKind, MemoryEventBus
from imagegate.tasks.store import TaskStore
from imagegate.tasks.worker import Worker, WorkerConfig

pytestmark = pytest.mark.anyio


class Scripted(Provider):
    name = "scripted"

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        self.delay = delay
        self.error = error
        self.calls: list[str] = []

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        self.calls.append(job.task_id)
        for p in (10, 20, 30):
            await progress(p)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        r = job.request
        return ProviderResult(
            [GeneratedImage(b"img%d" % i, r.content_type, r.width, r.height)
             for i in range(r.n)],
            {"total_tokens": 1},
        )


class Rig:
    def __init__(self, store: TaskStore, blobs: BlobStore, events: EventBus) -> None:
        self.store, self.blobs, self.events = store, blobs, events
        self.workers: list[Worker] = []
        self.db: Database | None = None

    async def worker(self, provider: Provider, **cfg: Any) -> Worker:
        config = WorkerConfig(**{"poll_interval": 0.05, "reaper_interval": 0.05, **cfg})
        w = Worker(self.store, self.events, ProviderRegistry({"gpt-image-2": provider}),
                   self.blobs, config)
        await w.start()
        self.workers.append(w)
        return w

    async def submit(self, n: int = 1, tid: str | None = None) -> str:
        req = normalize({"prompt": "p", "n": n, "size": "2:1", "resolution": "2k"},
                        load_catalog())
        tid = tid or new_id("img_")
        await self.store.create(task_id=tid, key_id="k", operation="generate",
                                model=req.model, request=req.to_json(), retention_seconds=60)
        await self.events.work_queued()
        return tid

    async def until(self, tid: str, *statuses: TaskStatus, timeout: float = 10) -> Task:
        async with asyncio.timeout(timeout):
            while True:
                task = await self.store.get(tid)
                if task is not None and task.status in statuses:
                    return task
                await asyncio.sleep(0.02)


@asynccontextmanager
async def rig_with(tmp_path: Path, blobs: BlobStore, events: EventBus) -> AsyncIterator[Rig]:
    db = open_database(f"sqlite:///{tmp_path}/w.db")
    await db.migrate()
    await db.write(api_keys.insert().values(id="k", name="k", prefix="k", key_hash="0" * 64,
                                            created_at=0.0))
    r = Rig(TaskStore(db), blobs, events)
    r.db = db
    try:
        yield r
    finally:
        for w in r.workers:
            await w.stop()
        await db.aclose()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with rig_with(tmp_path, ObstoreBlobStore.memory(), MemoryEventBus()) as r:
        yield r


async def test_success_stores_every_image(rig: Rig) -> None:
    await rig.worker(Scripted())
    tid = await rig.submit(n=3)
    task = await rig.until(tid, TaskStatus.SUCCEEDED)
    assert task.progress == 100 and task.provider == "scripted" and task.attempts == 1
    assert [await rig.blobs.get(i.key) for i in task.images] == [b"img0", b"img1", b"img2"]
    assert task.images[0].width == 2688 and task.result and task.result["usage"]


class Reporting(Provider):
    """An upstream that reports what it made and revises every prompt (as some resellers
    send `revised_prompt` for any model)."""

    name = "reporting"

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        r = job.request
        return ProviderResult(
            [GeneratedImage(b"img", r.content_type, r.width, r.height,
                            revised_prompt="a better prompt")],
            quality="high", background="transparent")


@pytest.mark.parametrize(("model", "revised"), [("dall-e-3", "a better prompt"),
                                                ("gpt-image-2", None)])
async def test_the_result_keeps_what_was_made_and_only_dalle3s_revised_prompt(
        rig: Rig, model: str, revised: str | None) -> None:
    """Issue 18: the upstream's report of the quality and background made is kept with the
    result; a `revised_prompt` only for a model that revises prompts (003: dall-e-3)."""
    provider = Reporting()
    w = Worker(rig.store, rig.events, ProviderRegistry({model: provider}), rig.blobs,
               WorkerConfig(poll_interval=0.05, reaper_interval=0.05))
    await w.start()
    rig.workers.append(w)
    req = normalize({"model": model, "prompt": "p"}, load_catalog())
    tid = new_id("img_")
    await rig.store.create(task_id=tid, key_id="k", operation="generate", model=model,
                           request=req.to_json(), retention_seconds=60)
    await rig.events.work_queued()
    task = await rig.until(tid, TaskStatus.SUCCEEDED)
    assert task.result is not None
    assert (task.result["quality"], task.result["background"]) == ("high", "transparent")
    assert [i.revised_prompt for i in task.images] == [revised]


async def test_a_result_without_a_report_has_no_quality_of_its_own(rig: Rig) -> None:
    await rig.worker(Scripted())
    task = await rig.until(await rig.submit(), TaskStatus.SUCCEEDED)
    assert task.result is not None
    assert "quality" not in task.result and "background" not in task.result


async def test_provider_error_fails_the_task(rig: Rig) -> None:
    await rig.worker(Scripted(error=ProviderError("upstream said no")))
    tid = await rig.submit()
    task = await rig.until(tid, TaskStatus.FAILED)
    assert task.error is not None and task.error["message"] == "upstream said no"


async def test_unexpected_exception_is_an_internal_error(rig: Rig) -> None:
    await rig.worker(Scripted(error=KeyError("secret internals")))
    tid = await rig.submit()
    task = await rig.until(tid, TaskStatus.FAILED)
    assert task.error is not None and task.error["code"] == "internal_error"
    assert "secret" not in task.error["message"]


async def test_concurrency_limit_is_respected(rig: Rig) -> None:
    worker = await rig.worker(Scripted(delay=0.3), concurrency=2)
    ids = [await rig.submit() for _ in range(5)]
    await asyncio.sleep(0.15)
    assert worker.in_flight == 2
    assert (await rig.store.count_by_status()).get("in_progress") == 2
    for tid in ids:
        await rig.until(tid, TaskStatus.SUCCEEDED)


async def test_cancel_stops_the_running_job_and_keeps_no_blobs(rig: Rig) -> None:
    provider = Scripted(delay=0.5)
    worker = await rig.worker(provider, lease_seconds=0.3)  # renewals every 0.1 s
    tid = await rig.submit()
    await rig.until(tid, TaskStatus.IN_PROGRESS)
    await rig.store.cancel(tid, "k")
    await asyncio.sleep(0.8)
    task = await rig.store.get(tid)
    assert task is not None and task.status is TaskStatus.CANCELLED and task.result is None
    assert worker.in_flight == 0
    with pytest.raises(BlobNotFoundError):
        await rig.blobs.get(f"tasks/{tid}/1-0.png")


async def test_graceful_stop_hands_the_task_to_the_next_worker(rig: Rig) -> None:
    first = await rig.worker(Scripted(delay=5), lease_seconds=30)
    tid = await rig.submit()
    await rig.until(tid, TaskStatus.IN_PROGRESS)
    await first.stop()
    rig.workers.remove(first)
    task = await rig.store.get(tid)
    assert task is not None and task.status is TaskStatus.QUEUED and task.attempts == 0
    second = Scripted()
    await rig.worker(second)
    done = await rig.until(tid, TaskStatus.SUCCEEDED)
    assert done.attempts == 1 and second.calls == [tid]


async def test_dead_worker_lease_is_reaped_and_rerun_once(rig: Rig) -> None:
    tid = await rig.submit()
    assert await rig.store.claim("dead-worker", 0.2) is not None  # claimed, then "crashed"
    survivor = Scripted()
    await rig.worker(survivor)
    done = await rig.until(tid, TaskStatus.SUCCEEDED)
    assert done.attempts == 2 and survivor.calls == [tid]


async def test_cleaner_removes_expired_tasks_and_blobs(tmp_path: Path, blobs: BlobStore
                                                        ) -> None:
    """In every blob store: files, memory, objects in an S3 bucket."""
    async with rig_with(tmp_path, blobs, MemoryEventBus()) as rig:
        await _cleaner_removes_expired_tasks_and_blobs(rig)


async def _cleaner_removes_expired_tasks_and_blobs(rig: Rig) -> None:
    worker = await rig.worker(Scripted())
    tid = await rig.submit()
    task = await rig.until(tid, TaskStatus.SUCCEEDED)
    key = task.images[0].key
    orphan = f"tasks/{tid}/9/0.png"  # as if a killed run had written it
    await rig.blobs.put(orphan, b"x", "image/png")
    from imagegate.db.tables import tasks

    assert rig.db is not None
    await rig.db.write(tasks.update().values(expires_at=0))  # age it past retention
    assert await worker.clean_expired() == 1
    assert await rig.store.get(tid) is None
    for gone in (key, orphan):
        with pytest.raises(BlobNotFoundError):
            await rig.blobs.get(gone)


async def test_reclaiming_its_own_running_task_does_not_start_it_twice(rig: Rig) -> None:
    """A stalled event loop can renew a lease late: the reaper requeues the live task and the
    same worker claims it back. The run already in hand must stay the only one (a second
    would pay an upstream twice, or fail a sync call as interrupted)."""
    provider = Scripted(delay=1.0)
    await rig.worker(provider)
    tid = await rig.submit()
    await rig.until(tid, TaskStatus.IN_PROGRESS)
    assert rig.db is not None
    await rig.db.write(tasks.update().where(tasks.c.id == tid).values(lease_expires_at=0.0))
    for _ in range(250):  # the reaper requeues it, the dispatcher takes it back
        current = await rig.store.get(tid)
        if current is not None and current.attempts >= 2:
            break
        await asyncio.sleep(0.02)
    task = await rig.until(tid, TaskStatus.SUCCEEDED)
    assert provider.calls == [tid] and task.attempts == 2


async def test_interrupted_sync_call_fails_without_calling_the_provider(rig: Rig) -> None:
    """A task whose upstream id is SYNC_CALL lost a synchronous upstream call to a crash: the
    upstream may have made (and billed) the image, so no provider is asked again."""
    tid = await rig.submit()
    claimed = await rig.store.claim("dead-worker", 30)
    assert claimed is not None and claimed.id == tid
    assert await rig.store.set_upstream(tid, "dead-worker", "ch1", SYNC_CALL)
    await rig.store.release([tid], "dead-worker")  # as the reaper would after the crash
    provider = Scripted()
    await rig.worker(provider)
    task = await rig.until(tid, TaskStatus.FAILED)
    assert task.error is not None and task.error["code"] == "upstream_interrupted"
    assert provider.calls == []


class SyncUpstream(Provider):
    """A non-resumable upstream call as `providers/openai.py` makes one: marked with
    SYNC_CALL first, 100% reported once the answer is in, then held until `go` is set."""

    name = "sync-upstream"
    remote = True

    def __init__(self) -> None:
        self.reported = asyncio.Event()
        self.go = asyncio.Event()

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        await job.remember_upstream("ch-a", SYNC_CALL)
        await progress(40)
        await progress(100)
        self.reported.set()
        await self.go.wait()
        r = job.request
        return ProviderResult([GeneratedImage(b"img", r.content_type, r.width, r.height)],
                              {"total_tokens": 3}, channel="ch-a")


async def test_an_adopted_run_hands_back_its_task_exactly_as_the_row_says(rig: Rig) -> None:
    """A sync request answers from its run's return value instead of reading the row back
    (`TaskService.result`): that value must be the row, column for column, including what
    the run recorded on the way (the upstream marker) and what settling charged."""
    provider = SyncUpstream()
    provider.go.set()
    worker = await rig.worker(provider, progress_interval=0)
    req = normalize({"prompt": "p", "n": 2, "size": "1:1"}, load_catalog())
    assert await worker.reserve()
    task = await rig.store.create(task_id=new_id("img_"), key_id="k", operation="generate",
                                  model=req.model, request=req.to_json(),
                                  retention_seconds=60, unit_price=7,
                                  lease=(worker.owner, worker.lease_seconds))
    done = await worker.adopt(task)
    assert done is not None and done == await rig.store.get(task.id)
    assert done.status is TaskStatus.SUCCEEDED and done.upstream_task_id == SYNC_CALL
    assert (done.provider, done.charge_state, done.charged_amount) == ("ch-a", "settled", 7)


async def test_a_run_that_does_not_succeed_hands_back_nothing(rig: Rig) -> None:
    await rig.worker(Scripted(error=ProviderError("no", retryable=False)))
    worker = rig.workers[0]
    req = normalize({"prompt": "p"}, load_catalog())
    assert await worker.reserve()
    task = await rig.store.create(task_id=new_id("img_"), key_id="k", operation="generate",
                                  model=req.model, request=req.to_json(),
                                  retention_seconds=60,
                                  lease=(worker.owner, worker.lease_seconds))
    assert await worker.adopt(task) is None
    failed = await rig.store.get(task.id)
    assert failed is not None and failed.status is TaskStatus.FAILED


async def test_progress_100_is_left_for_the_success_to_write(rig: Rig) -> None:
    """100 means the upstream is done: the success that follows writes it with the result,
    so neither the row (a commit per image) nor the listeners hear of it before."""
    provider = SyncUpstream()
    await rig.worker(provider, progress_interval=0)
    tid = new_id("img_")
    async with rig.events.subscribe(tid) as sub:
        await rig.submit(tid=tid)
        await asyncio.wait_for(provider.reported.wait(), 10)
        running = await rig.store.get(tid)
        assert running is not None and running.progress == 40
        provider.go.set()
        heard: list[tuple[EventKind, int | None]] = []
        async with asyncio.timeout(5):
            while (EventKind.TERMINAL, None) not in heard:
                heard += [(e.kind, e.progress) for e in await sub.next(1)]
    assert [p for kind, p in heard if kind is EventKind.PROGRESS] == [40]
    done = await rig.store.get(tid)
    assert done is not None and done.status is TaskStatus.SUCCEEDED and done.progress == 100
