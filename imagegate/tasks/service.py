"""The task as its client sees it after creation (`intake.py` creates it): read it, wait for
it, follow its events, cancel it."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import error_from_json
from imagegate.tasks.estimates import DurationEstimates
from imagegate.tasks.events import EventBus, EventKind, Subscription, TaskEvent
from imagegate.tasks.store import TaskStore


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a task's client may expect, beside the row: its place in the queue (while
    queued) and the expected run time (while not finished); None where it does not apply."""

    queue_position: int | None = None
    estimated_seconds: float | None = None


class TaskService:
    def __init__(self, store: TaskStore, events: EventBus, *, poll_interval: float,
                 sync_wait_seconds: float, estimates: DurationEstimates | None = None
                 ) -> None:
        self._store = store
        self._events = events
        self.poll_interval = poll_interval
        self.sync_wait_seconds = sync_wait_seconds
        self.estimates = estimates

    async def outlook(self, task: Task) -> Outlook:
        """The task's queue position and estimate. Only a queued task costs a query (its
        count of tasks ahead): polls of running and finished tasks stay one read."""
        if task.status.terminal:
            return Outlook()
        position = (await self._store.queue_position(task)
                    if task.status is TaskStatus.QUEUED else None)
        return Outlook(position, await self.estimate(task))

    async def estimate(self, task: Task) -> float | None:
        """Expected run time of a task like `task` (its model × tier), whatever its state;
        None without an estimator."""
        if self.estimates is None:
            return None
        return await self.estimates.estimate(task.model, str(task.request.get("tier")))

    async def get(self, task_id: str, key_id: str) -> Task | None:
        """A task as its owner sees it; another key's task is indistinguishable from none."""
        return await self._store.get_for_key(task_id, key_id)

    async def lookup(self, task_id: str) -> Task | None:
        """A task whoever owns it, for callers that authorize otherwise (signed URLs, the
        webhook dispatcher)."""
        return await self._store.get(task_id)

    async def page(self, *, key_id: str | None, limit: int, after: str | None = None,
                   status: str | None = None, model: str | None = None,
                   created_after: float | None = None, created_before: float | None = None
                   ) -> list[Task]:
        """Tasks newest first (`TaskStore.page`): one key's, or everyone's with None."""
        return await self._store.page(key_id=key_id, limit=limit, after=after, status=status,
                                      model=model, created_after=created_after,
                                      created_before=created_before)

    async def get_many(self, task_ids: list[str], key_id: str) -> dict[str, Task]:
        """The tasks of `key_id` among `task_ids`, by id (others' are left out)."""
        return {t.id: t for t in await self._store.get_many(list(dict.fromkeys(task_ids)))
                if t.key_id == key_id}

    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        return self._events.subscribe(task_id)

    async def wait(self, task: Task, timeout: float) -> Task:
        """Wait for a task to finish without hot-polling: sleep on its events, re-read the
        row when one says it ended, and re-read every poll interval anyway (an event may be
        lost: Redis away, a worker killed). Returns the task as last read (terminal, or still
        running when time ran out)."""
        deadline = time.monotonic() + timeout
        async with self._events.subscribe(task.id) as sub:
            while True:
                current = await self._store.get(task.id)
                if current is None or current.status.terminal:
                    return current or task
                now = time.monotonic()
                if now >= deadline:
                    return current
                reread = min(deadline, now + self.poll_interval)
                # Progress and previews do not change what a waiter reads: only an end does.
                while (left := reread - time.monotonic()) > 0:
                    if any(e.kind is EventKind.TERMINAL for e in await sub.next(left)):
                        break

    async def result(self, task: Task, run: asyncio.Task[Task | None] | None = None, *,
                     timeout: float | None = None) -> Task:
        """For synchronous callers: the finished task, or raise the error it failed with. A
        task still running after `sync_wait_seconds` is returned as it is: the caller hands
        over its id instead. `run`: the task's run in this process (`create_and_run`), awaited
        directly instead of listening for its events; the caller going away (a disconnect
        cancels this) leaves the run going. `timeout`: wait this long instead (`Prefer:
        wait=N`), never longer than `sync_wait_seconds`."""
        wait = (self.sync_wait_seconds if timeout is None
                else max(0.0, min(timeout, self.sync_wait_seconds)))
        by_deadline = (task.deadline_at is not None
                       and task.deadline_at - time.time() <= wait)
        if task.deadline_at is not None and by_deadline:
            # A deadline sooner than the wait ends the wait with the task's cancellation.
            wait = max(0.0, task.deadline_at - time.time())
        deadline = time.monotonic() + wait
        done: Task | None = None
        if run is not None:
            # `asyncio.wait` neither cancels the run nor raises how it ended (a cancel stops
            # a run by cancelling it). A run that succeeded hands back the task as it wrote
            # it; otherwise the row says what became of the task.
            await asyncio.wait([run], timeout=wait)
            done = (run.result() if run.done() and not run.cancelled()
                    and run.exception() is None else None)
            if done is None:
                done = await self._store.get(task.id)
        if done is None or not (done.status.terminal or time.monotonic() >= deadline):
            # Not run here, or the run ended without finishing the task (its lease was taken
            # over): wait for whoever finishes it.
            done = await self.wait(task, max(0.0, deadline - time.monotonic()))
        if not done.status.terminal and task.deadline_at is not None and by_deadline:
            # The monotonic wait may end a hair before the wall clock reaches the deadline.
            await asyncio.sleep(max(0.0, task.deadline_at - time.time()))
            done = await self._expire(done)
        if done.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) and done.error:
            raise error_from_json(done.error)
        return done

    async def _expire(self, task: Task) -> Task:
        """The task once its deadline has passed: cancelled here if nobody else (the worker
        running it, a sweeper) has done it yet, so the waiter answers at the deadline."""
        if await self._store.expire(task.id):
            await self._events.publish(TaskEvent(task.id, EventKind.TERMINAL,
                                                 status=TaskStatus.CANCELLED.value))
        return await self._store.get(task.id) or task

    async def cancel(self, task_id: str, key_id: str) -> Task | None:
        task = await self._store.cancel(task_id, key_id)
        if task is not None and task.status is TaskStatus.CANCELLED:
            # Reaches waiters and streams, and the worker running it, in any process.
            await self._events.publish(TaskEvent(task_id, EventKind.TERMINAL,
                                                 status=TaskStatus.CANCELLED.value))
        return task
