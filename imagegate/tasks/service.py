"""The task as its client sees it after creation (`intake.py` creates it): read it, wait for
it, follow its events, cancel it."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager

from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import error_from_json
from imagegate.tasks.events import EventBus, EventKind, Subscription, TaskEvent
from imagegate.tasks.store import TaskStore


class TaskService:
    def __init__(self, store: TaskStore, events: EventBus, *, poll_interval: float,
                 sync_wait_seconds: float) -> None:
        self._store = store
        self._events = events
        self.poll_interval = poll_interval
        self.sync_wait_seconds = sync_wait_seconds

    async def get(self, task_id: str, key_id: str) -> Task | None:
        """A task as its owner sees it; another key's task is indistinguishable from none."""
        return await self._store.get_for_key(task_id, key_id)

    async def lookup(self, task_id: str) -> Task | None:
        """A task whoever owns it, for callers that authorize otherwise (signed URLs, the
        webhook dispatcher)."""
        return await self._store.get(task_id)

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

    async def result(self, task: Task, run: asyncio.Task[None] | None = None) -> Task:
        """For synchronous callers: the finished task, or raise the error it failed with. A
        task still running after `sync_wait_seconds` is returned as it is: the caller hands
        over its id instead. `run`: the task's run in this process (`create_and_run`), awaited
        directly instead of listening for its events; the caller going away (a disconnect
        cancels this) leaves the run going."""
        wait = self.sync_wait_seconds
        by_deadline = (task.deadline_at is not None
                       and task.deadline_at - time.time() <= self.sync_wait_seconds)
        if task.deadline_at is not None and by_deadline:
            # A deadline sooner than the wait ends the wait with the task's cancellation.
            wait = max(0.0, task.deadline_at - time.time())
        deadline = time.monotonic() + wait
        done: Task | None = None
        if run is not None:
            # `asyncio.wait` neither cancels the run nor raises how it ended (a cancel stops
            # a run by cancelling it): the row says what became of the task.
            await asyncio.wait([run], timeout=wait)
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
