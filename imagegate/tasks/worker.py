"""Workers: claim tasks under a lease, run them on a provider, store results, finish.

One dispatcher claims (so a new task wakes one claimer, not a herd), up to `concurrency`
tasks run at once, one loop renews all held leases, one reaper requeues leases that dead
workers left behind, and one cleaner removes tasks past retention with their blobs.

Each run tells the event bus what happens (started, progress, partial images, the end) and
listens on it for the task ending elsewhere: a client's cancel, in whichever API process,
stops the run at once instead of at the next lease renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from imagegate.domain import webhook_events
from imagegate.domain.catalog import Catalog
from imagegate.domain.delivery import Delivery, bill_delivery
from imagegate.domain.images import PartialImage, ReferenceImage, format_of
from imagegate.domain.request import ImageRequest, StoredReference
from imagegate.domain.task import StoredImage, Task, TaskStatus, new_owner_id
from imagegate.errors import CONTENT_POLICY, ImagegateError, ProviderError
from imagegate.providers.base import (
    SYNC_CALL,
    ProviderJob,
    ProviderResult,
)
from imagegate.providers.holding import ResultBudget, holding
from imagegate.providers.registry import ProviderRegistry
from imagegate.storage.base import BlobStore
from imagegate.tasks.cancel_watch import CancelWatch
from imagegate.tasks.estimates import DurationEstimates
from imagegate.tasks.events import EventBus, EventKind, TaskEvent
from imagegate.tasks.store import TaskStore

log = logging.getLogger("imagegate.worker")


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 32
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    reaper_interval: float = 5.0
    cleaner_interval: float = 60.0
    max_attempts: int = 3
    progress_interval: float = 0.25  # at most this often a progress write per task


class _LeaseLost(BaseException):
    """The task was cancelled or taken over while an upstream was being told about it.

    A BaseException, like CancelledError and for the same reason: it must pass through
    providers and routing (which handle Exception to retry) straight up to the run."""


def _result(images: list[StoredImage], result: ProviderResult, request: ImageRequest,
            delivery: Delivery) -> dict[str, Any]:
    """The task's `result`: its images, the usage (the upstream's, passed through), what the
    upstream says it made where the request left it open (responses report that instead of
    the request's values), and what was delivered and charged (`delivered`)."""
    out: dict[str, Any] = {"images": [i.to_json() for i in images], "usage": result.usage,
                           "delivered": delivery.to_json()}
    if result.quality is not None:
        out["quality"] = result.quality
    if result.background is not None:
        out["background"] = result.background
    if images and (images[0].width, images[0].height) != (request.width, request.height):
        # Not the size asked for (a smaller tier, say): responses report what was made.
        out["size"] = f"{images[0].width}x{images[0].height}"
    return out


def _etag(key: str) -> str:
    """A result's ETag, from its blob key rather than its bytes: a key names one attempt's
    image and is written once, never overwritten (see `_store_images`), so the key identifies
    the bytes as well as their hash would, without reading megabytes to hash them."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class _RunReports:
    """What a run's provider reports back (`ProviderJob.remember_upstream`, `progress`,
    `partial`): one object with slots per run rather than three closures and their cells
    (~0.9 KB), which live as long as an upstream holds the call, thousands at once."""

    __slots__ = ("_last_hook", "_last_time", "_last_value", "_task_id", "_worker", "upstream",
                 "webhook")

    def __init__(self, worker: Worker, task_id: str) -> None:
        self._worker = worker
        self._task_id = task_id
        # The task (its `request` left out while the run holds it) and its request, when
        # its webhook wants `progress` (at most one delivery every PROGRESS_INTERVAL_SECONDS,
        # queued with the progress write itself).
        self.webhook: tuple[Task, ImageRequest] | None = None
        self._last_time, self._last_value = 0.0, -1
        self._last_hook = -webhook_events.PROGRESS_INTERVAL_SECONDS
        # The upstream id last recorded by `remember`, so the run's task can say what its
        # row says (the success writes the channel itself).
        self.upstream: str | None = None

    async def remember(self, name: str, upstream_id: str) -> None:
        """Persist which channel holds the job under which upstream id before the provider
        goes on, so a restarted worker resumes (or, for a sync call, refunds) instead of
        submitting again."""
        worker = self._worker
        if not await worker._store.set_upstream(self._task_id, worker.owner, name,
                                                upstream_id):
            raise _LeaseLost(self._task_id)
        self.upstream = upstream_id

    async def progress(self, progress: int) -> None:
        """Providers may report often; the row is written at most every progress_interval.
        100 (the upstream is done) is left to the success written next, which records it
        with the result: writing it first cost a commit per task for a state a poll would
        see for milliseconds (and a row at 99 that event streams re-read to show)."""
        worker = self._worker
        if progress >= 100:
            return
        now = time.monotonic()
        if (progress <= self._last_value
                or now - self._last_time < worker._config.progress_interval):
            return
        self._last_time, self._last_value = now, progress
        hook = None
        webhook = self.webhook
        if (webhook is not None
                and now - self._last_hook >= webhook_events.PROGRESS_INTERVAL_SECONDS):
            task, request = webhook
            hook, self._last_hook = replace(task, request=request.to_json()), now
        if await worker._store.set_progress(self._task_id, worker.owner, progress, hook):
            await worker._events.publish(TaskEvent(self._task_id, EventKind.PROGRESS,
                                                   progress=max(0, min(99, progress))))

    async def partial(self, partial: PartialImage) -> None:
        await self._worker._events.publish(TaskEvent(self._task_id, EventKind.PARTIAL_IMAGE,
                                                     partial=partial))


class Worker:
    def __init__(
        self,
        store: TaskStore,
        events: EventBus,
        providers: ProviderRegistry,
        blobs: BlobStore,
        config: WorkerConfig,
        housekeeping: Sequence[Callable[[], Awaitable[int]]] = (),
        on_refused: Callable[[str, str | None], Awaitable[None]] | None = None,
        estimates: DurationEstimates | None = None,
        catalog: Catalog | None = None,
        results: ResultBudget | None = None,
    ) -> None:
        """`housekeeping`: other expiry sweeps (idempotency records) run with the cleaner.
        `on_refused(key_id, model)`: told when an upstream refused a task for its content
        (moderation counts those with its own refusals). `estimates`: told each succeeded
        task's run time (tasks' `estimated_seconds`). `catalog`: prices what was delivered
        (fewer or smaller images cost less); without one, each image produced costs the held
        unit price. `results`: the process's bound on upstream answers held in memory."""
        self._store = store
        self._events = events
        self._providers = providers
        self._blobs = blobs
        self._config = config
        self._housekeeping = tuple(housekeeping)
        self._on_refused = on_refused
        self._estimates = estimates
        self._catalog = catalog
        self._results = results
        self.owner = new_owner_id()
        self._running: dict[str, asyncio.Task[Task | None]] = {}
        self._slots = asyncio.Semaphore(config.concurrency)
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._running)

    # -- running a task in the process that took its request (`tasks/inline.py`)
    @property
    def lease_seconds(self) -> float:
        return self._config.lease_seconds

    async def reserve(self) -> bool:
        """Take a slot for a task about to be created already claimed by this worker; False
        when none is free (the task then queues like any other) or the worker is stopping."""
        if self._stopping or self._slots.locked():
            return False
        await self._slots.acquire()  # not locked, so this returns without suspending
        return True

    def release(self) -> None:
        """Give back a reserved slot whose task was not created."""
        self._slots.release()

    def adopt(self, task: Task) -> asyncio.Task[Task | None]:
        """Run `task` (created under this worker's lease in a reserved slot) as if it had
        been claimed: leases renewed, handed back on stop, recovered by the reaper after a
        crash. The caller may await the job; cancelling its await does not stop the run."""
        job = asyncio.create_task(self._run(task), name=f"imagegate-task-{task.id}")
        self._running[task.id] = job
        job.add_done_callback(self._finished)
        return job

    async def start(self) -> None:
        self._loops = [
            asyncio.create_task(self._dispatch_loop(), name="imagegate-dispatch"),
            asyncio.create_task(self._renew_loop(), name="imagegate-renew"),
            asyncio.create_task(self._reaper_loop(), name="imagegate-reaper"),
            asyncio.create_task(self._cleaner_loop(), name="imagegate-cleaner"),
        ]

    async def stop(self) -> None:
        """Stop claiming, abandon running tasks and hand their leases back at once, so a
        restart (or another worker) picks them up without waiting for the lease to lapse."""
        self._stopping = True
        for loop in self._loops:
            loop.cancel()
        # The dispatcher first: it may be holding a just-claimed task that is not yet running.
        await asyncio.gather(*self._loops, return_exceptions=True)
        running = list(self._running.items())
        for _, job in running:
            job.cancel()
        await asyncio.gather(*(j for _, j in running), return_exceptions=True)
        await self._hand_back([tid for tid, _ in running])

    async def _hand_back(self, task_ids: list[str]) -> None:
        if not task_ids:
            return
        try:
            await self._store.release(task_ids, self.owner)
            await self._events.work_queued()
        except Exception:  # the lease then lapses and the reaper requeues the task
            log.exception("could not hand back %d leases", len(task_ids))

    # -- loops
    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            claim = asyncio.ensure_future(
                self._store.claim(self.owner, self._config.lease_seconds)
            )
            try:
                task = await asyncio.shield(claim)
            except asyncio.CancelledError:
                # Stopping mid-claim: the claim may still land, and nobody would run it.
                with contextlib.suppress(Exception):
                    late = await claim
                    if late is not None:
                        await self._hand_back([late.id])
                raise
            except Exception:
                self._slots.release()
                log.exception("claim failed; retrying")
                await asyncio.sleep(self._config.poll_interval)
                continue
            if task is None:
                self._slots.release()
                await self._events.wait_for_work(self._config.poll_interval)
                continue
            if task.id in self._running:
                # Our own run's lease lapsed (a stalled event loop renewed it late) and the
                # reaper requeued it; this claim took it back under the same owner. The
                # first run still holds the work: starting a second would repeat it (or,
                # for a sync upstream call, fail it as interrupted).
                self._slots.release()
                continue
            job = asyncio.create_task(self._run(task), name=f"imagegate-task-{task.id}")
            self._running[task.id] = job
            job.add_done_callback(self._finished)

    def _finished(self, job: asyncio.Task[Task | None]) -> None:
        task_id = job.get_name().removeprefix("imagegate-task-")
        self._running.pop(task_id, None)
        self._slots.release()

    async def _renew_loop(self) -> None:
        interval = self._config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = list(self._running)
            if not ids:
                continue
            try:
                held = await self._store.renew(ids, self.owner, self._config.lease_seconds)
            except Exception:
                log.exception("lease renewal failed")
                continue
            for tid in ids:
                job = self._running.get(tid)
                if tid not in held and job is not None:
                    # Cancelled by its owner, or the lease lapsed and was requeued: stop work
                    # whose result could no longer be recorded.
                    job.cancel()

    async def _reaper_loop(self) -> None:
        while True:
            try:
                await self.expire_overdue()
            except Exception:
                log.exception("deadline pass failed")
            try:
                requeued, failed = await self._store.requeue_expired(self._config.max_attempts)
                if requeued or failed:
                    log.warning("reaper: %d expired leases requeued, %d failed", requeued, failed)
                if requeued:
                    await self._events.work_queued()
            except Exception:
                log.exception("reaper pass failed")
            await asyncio.sleep(self._config.reaper_interval)

    async def expire_overdue(self) -> int:
        """Cancel the tasks whose deadline passed (queued ones, a dead worker's; a run of our
        own has its own timer) and tell everyone following them, this task's worker too."""
        expired = await self._store.expire_overdue()
        for task_id in expired:
            log.info("task %s passed its deadline and was cancelled", task_id)
            await self._events.publish(TaskEvent(task_id, EventKind.TERMINAL,
                                                 status=TaskStatus.CANCELLED.value))
        return len(expired)

    async def _enforce_deadline(self, task_id: str, deadline_at: float) -> None:
        """Cancel the task at its deadline, and stop this run: whatever the provider is
        waiting on (an upstream's task: none of the seeds' dialects can cancel one) is
        abandoned. The cancel is conditional, so a success recorded at the same moment
        either wins whole or changes nothing."""
        await asyncio.sleep(max(0.0, deadline_at - time.time()))
        if not await self._store.expire(task_id):
            return  # finished meanwhile, or cancelled by someone else (the cancel watch's case)
        log.info("task %s passed its deadline; its run stops", task_id)
        await self._events.publish(TaskEvent(task_id, EventKind.TERMINAL,
                                             status=TaskStatus.CANCELLED.value))
        job = self._running.get(task_id)
        if job is not None and job is not asyncio.current_task():
            job.cancel()

    async def _cleaner_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.cleaner_interval)
            try:
                await self.clean_expired()
            except Exception:
                log.exception("cleaner pass failed")

    async def clean_expired(self) -> int:
        removed = 0
        while batch := await self._store.take_expired():
            for task in batch:
                # The whole folder: a run killed between writing its images and recording
                # them left files that no row names.
                await self._blobs.delete_prefix(f"tasks/{task.id}/")
            removed += await self._store.delete([t.id for t in batch])
        for sweep in self._housekeeping:
            await sweep()
        return removed

    async def _ended_elsewhere(self, task_id: str) -> None:
        """Stop this run as soon as the task ends elsewhere (a client's cancel in any API
        process, or another worker finishing it after our lease lapsed), told by its
        `CancelWatch`. The event is only a hint: the lease, checked at once, decides."""
        try:
            held = await self._store.renew([task_id], self.owner, self._config.lease_seconds)
        except Exception:
            return  # the renewal loop will look again
        job = self._running.get(task_id)
        if task_id not in held and job is not None:
            log.info("task %s ended elsewhere; its run stops", task_id)
            job.cancel()

    # -- one task
    async def _run(self, task: Task) -> Task | None:
        """Run `task` to its end. Returns the task as its success left it (a sync caller in
        this process answers from it, `TaskService.result`); None when it ended any other
        way (the row then says how)."""
        # The upstream answers this run reads count against `results` until it ends
        # (`providers/holding.py`): by then its images are stored and the task recorded.
        # One frame for the run, not a `_run` awaiting a `_run_task`: it stays suspended as
        # long as an upstream holds the call, thousands at once.
        with holding(self._results):
            started = time.monotonic()
            if task.deadline_at is not None and task.deadline_at <= time.time():
                # Claimed after its deadline: cancelled before anything is sent anywhere.
                await self._enforce_deadline(task.id, task.deadline_at)
                return None
            watch = CancelWatch(self._events, task.id, self._ended_elsewhere)
            watch.start()
            timer = None if task.deadline_at is None else asyncio.create_task(
                self._enforce_deadline(task.id, task.deadline_at),
                name=f"imagegate-deadline-{task.id}")
            outcome: str | None = None
            succeeded: Task | None = None
            await self._events.publish(TaskEvent(task.id, EventKind.STARTED))
            try:
                if task.upstream_task_id == SYNC_CALL:
                    # A crash cut off a synchronous upstream call: the upstream may have made (and
                    # billed) the image, so it is not made again; the client is refunded.
                    raise ProviderError(
                        "The upstream call was interrupted by a restart; it was not repeated, to "
                        "avoid paying twice. Nothing was charged; please submit again",
                        retryable=False, code="upstream_interrupted",
                    )
                request = ImageRequest.from_json(task.request)
                wanted = request.webhook_events or webhook_events.DEFAULT
                if webhook_events.STARTED in wanted:
                    await self._webhook_started(task)
                provider = self._providers.for_model(request.model)
                reports = _RunReports(self, task.id)
                job = ProviderJob(
                    task.id,
                    request,
                    task.attempts,
                    references=tuple([await self._input(r) for r in request.reference_images]),
                    mask=await self._input(request.mask_image) if request.mask_image else None,
                    upstream_channel=task.provider if task.upstream_task_id else None,
                    upstream_task_id=task.upstream_task_id,
                    remember_upstream=reports.remember,
                )
                # The row's request, parsed (~2 KB), is not kept while the upstream holds
                # the call: `request` says the same (its `to_json` is the exact inverse), and
                # the task gets it back from there once the call ends, however it ends.
                task = replace(task, request={})
                if webhook_events.PROGRESS in wanted:
                    reports.webhook = (task, request)
                try:
                    result = await provider.generate(job, reports.progress, reports.partial)
                finally:
                    task = replace(task, request=request.to_json())
                served_by = result.channel or provider.name
                images = await self._store_images(task, result, request.revises_prompt)
                delivery = bill_delivery(
                    self._catalog.get(request.model) if self._catalog is not None else None,
                    request, [(i.width, i.height) for i in images], unit_price=task.unit_price,
                    hold=task.hold_amount, reported_quality=result.quality)
                # The run time is recorded before the task is marked succeeded: a poll that
                # sees it succeeded must find its run in the estimate (after the commit, a
                # poll could come in before this coroutine resumed). A run whose task was
                # cancelled meanwhile is still a sample of how long the upstream took.
                if self._estimates is not None:
                    self._estimates.record(task.model, str(request.tier),
                                           time.time() - (task.started_at or task.created_at))
                if reports.upstream is not None:  # what `remember` wrote to the row
                    task = replace(task, upstream_task_id=reports.upstream)
                succeeded = await self._store.succeed(
                    task, self.owner, _result(images, result, request, delivery), served_by,
                    charged=delivery.charged, tier=delivery.tier, note=delivery.memo(request))
                if succeeded is not None:
                    outcome = "succeeded"
                    log.info("task %s succeeded in %.2fs", task.id, time.monotonic() - started)
                else:
                    # Cancelled meanwhile, or our lease was taken over: the result has no home.
                    for image in images:
                        await self._blobs.delete(image.key)
            except asyncio.CancelledError:
                raise
            except _LeaseLost:
                log.info("task %s was cancelled or taken over; its run stops", task.id)
            except ImagegateError as exc:
                log.info("task %s failed: %s", task.id, exc.message)
                if await self._store.fail(task, self.owner, exc.to_json()):
                    outcome = "failed"
                if exc.code == CONTENT_POLICY and self._on_refused is not None:
                    try:
                        await self._on_refused(task.key_id, task.model)
                    except Exception:  # counting it must never undo the failure just recorded
                        log.exception("could not count the content-policy refusal of %s", task.id)
            except Exception:
                log.exception("task %s failed unexpectedly", task.id)
                if await self._store.fail(
                    task,
                    self.owner,
                    {"message": "The image could not be generated because of an internal error",
                     "type": "server_error", "param": None, "code": "internal_error"},
                ):
                    outcome = "failed"
            finally:
                # The watch stops first, so our own TERMINAL event cannot make it look at the
                # lease; the event goes out before waiting for the helpers to end, so the end
                # is announced even if this run is cancelled meanwhile. asyncio.wait: it
                # neither swallows a cancel of this run nor raises a helper's end.
                watch.stop()
                if timer is not None:
                    timer.cancel()
                if outcome is not None:
                    await self._events.publish(TaskEvent(task.id, EventKind.TERMINAL,
                                                         status=outcome))
                helpers = [watch.closing()] if timer is None else [watch.closing(), timer]
                await asyncio.wait(helpers)
                for helper in helpers:
                    if not helper.cancelled() and helper.exception() is not None:
                        log.warning("task %s: %s failed: %r", task.id, helper.get_name(),
                                    helper.exception())
        return succeeded

    async def _input(self, ref: StoredReference) -> ReferenceImage:
        return ReferenceImage(await self._blobs.get(ref.key), ref.content_type, ref.width,
                              ref.height)

    async def _webhook_started(self, task: Task) -> None:
        try:
            await self._store.webhook_started(task)
        except Exception:  # a lost notice must not cost the task its run
            log.exception("could not queue the started webhook of %s", task.id)

    async def _store_images(self, task: Task, result: ProviderResult,
                            revises_prompt: bool) -> list[StoredImage]:
        """The result's images in the blob store. A `revised_prompt` is kept only for a model
        that rewrites prompts (003: dall-e-3); some upstreams send one (or "") for others."""
        stored: list[StoredImage] = []
        try:
            for index, image in enumerate(result.images):
                ext = format_of(image.content_type) or "bin"
                # The attempt is in the key so a stale worker can never overwrite (or delete)
                # the images of a later run of the same task. In the file's name, not a
                # folder of its own: on local files each folder is a mkdir and a chmod per
                # task, 5% of the event loop's time in a burst of 4 KiB relays (py-spy).
                key = f"tasks/{task.id}/{task.attempts}-{index}.{ext}"
                await self._blobs.put(key, image.data, image.content_type)
                stored.append(
                    StoredImage(
                        key=key,
                        content_type=image.content_type,
                        size=len(image.data),
                        etag=_etag(key),
                        width=image.width,
                        height=image.height,
                        revised_prompt=image.revised_prompt if revises_prompt else None,
                    )
                )
        except BaseException:
            for done in stored:
                with contextlib.suppress(Exception):
                    await self._blobs.delete(done.key)
            raise
        return stored
