"""The task lifecycle as the API sees it: submit, wait (sync), read, cancel."""

from __future__ import annotations

import time

from imagegate.db.database import Step
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, new_id
from imagegate.tasks.events import EventBus
from imagegate.tasks.store import TaskStore


class TaskService:
    def __init__(self, store: TaskStore, events: EventBus, *, retention_seconds: float,
                 poll_interval: float) -> None:
        self._store = store
        self._events = events
        self._retention = retention_seconds
        self._poll = poll_interval

    @staticmethod
    def new_task_id() -> str:
        return new_id("img_")

    async def submit(self, request: ImageRequest, key_id: str, task_id: str | None = None,
                     *, unit_price: int = 0, extra_steps: tuple[Step, ...] = ()) -> Task:
        """Create the task with its hold (price × n); 402/429 when the key cannot take it."""
        task = await self._store.create(
            task_id=task_id or self.new_task_id(),
            key_id=key_id,
            operation=request.operation,
            model=request.model,
            request=request.to_json(),
            retention_seconds=self._retention,
            unit_price=unit_price,
            extra_steps=extra_steps,
        )
        await self._events.work_queued()
        return task

    async def get(self, task_id: str, key_id: str) -> Task | None:
        return await self._store.get_for_key(task_id, key_id)

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
                await sub.wait(min(self._poll, remaining))

    async def cancel(self, task_id: str, key_id: str) -> Task | None:
        task = await self._store.cancel(task_id, key_id)
        if task is not None:
            await self._events.task_changed(task_id)
        return task
