"""The task as its client sees it after creation (`intake.py` creates it): read it, wait for
it, follow its events, cancel it."""

from __future__ import annotations

import time
from contextlib import AbstractAsyncContextManager

from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import error_from_json
from imagegate.tasks.events import EventBus, Subscription
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
        """Wait for a task to finish without hot-polling: sleep on its change event, re-read
        on each wake-up, and re-read every poll interval in case an event went elsewhere.
        Returns the task as last read (terminal, or still running when time ran out)."""
        deadline = time.monotonic() + timeout
        async with self._events.subscribe(task.id) as sub:
            while True:
                current = await self._store.get(task.id)
                if current is None or current.status.terminal:
                    return current or task
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return current
                await sub.wait(min(self.poll_interval, remaining))

    async def result(self, task: Task) -> Task:
        """For synchronous callers: the finished task, or raise the error it failed with. A
        task still running after `sync_wait_seconds` is returned as it is: the caller hands
        over its id instead."""
        done = await self.wait(task, self.sync_wait_seconds)
        if done.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) and done.error:
            raise error_from_json(done.error)
        return done

    async def cancel(self, task_id: str, key_id: str) -> Task | None:
        task = await self._store.cancel(task_id, key_id)
        if task is not None:
            await self._events.task_changed(task_id)
        return task
