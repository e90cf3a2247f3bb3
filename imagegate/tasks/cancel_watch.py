"""A run's watch for its task ending elsewhere (a client's cancel in any API process, or
another worker finishing it after our lease lapsed): a callback on the task's subscription.

A worker holds one per running task, thousands at once while an upstream holds their calls,
and almost none ever sees the end it watches for. A task waiting on the subscription cost
~1.2 KB per run (the task, its coroutine, the `next` coroutine and its future); this is a
small object and a callback, and a task only for what has to wait: joining the subscription
(on Redis, a SUBSCRIBE and its confirmation, which the run does not wait for) and, when the
end is seen, telling the worker (`on_ended(task_id)`, which checks the lease).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from imagegate.tasks.events import EventBus, EventKind, Subscription, TaskEvent

log = logging.getLogger("imagegate.worker")


class CancelWatch:
    """`start()` when the run starts; `stop()` before the run announces its own end (so that
    event is not taken for someone else's); then wait for `closing()`."""

    __slots__ = ("_check", "_entered", "_joining", "_on_ended", "_sub", "_subscribing",
                 "_task_id")

    def __init__(self, events: EventBus, task_id: str,
                 on_ended: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._task_id = task_id
        self._on_ended = on_ended
        self._subscribing: AbstractAsyncContextManager[Subscription] = events.subscribe(task_id)
        self._sub: Subscription | None = None
        self._entered = False
        self._joining: asyncio.Task[None] | None = None
        self._check: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._joining = asyncio.create_task(self._join(),
                                            name=f"imagegate-watch-{self._task_id}")

    async def _join(self) -> None:
        try:
            sub = await self._subscribing.__aenter__()
            self._entered = True
            self._sub = sub
            sub.notify(self._seen)
        except Exception as exc:  # the renewal loop still notices the end, later
            log.warning("task %s: the cancel watch could not subscribe: %r", self._task_id, exc)
        finally:
            # A finished task is still ~0.5 KB: not kept for the rest of the run.
            self._joining = None

    def _seen(self, event: TaskEvent) -> None:
        if event.kind is EventKind.TERMINAL and self._check is None:
            self._check = asyncio.create_task(self._on_ended(self._task_id),
                                              name=f"imagegate-ended-{self._task_id}")

    def stop(self) -> None:
        """Stop reacting: no new check starts, a running one and a pending join stop."""
        if self._sub is not None:
            self._sub.notify(None)
        for helper in (self._joining, self._check):
            if helper is not None:
                helper.cancel()

    def closing(self) -> asyncio.Task[None]:
        """Leave the subscription once the helpers have ended, in a task of its own for the
        run to `asyncio.wait` for: a cancel of the run cannot cut the leaving (on Redis, an
        UNSUBSCRIBE) short."""
        return asyncio.create_task(self._close(), name=f"imagegate-unwatch-{self._task_id}")

    async def _close(self) -> None:
        helpers = [h for h in (self._joining, self._check) if h is not None]
        if helpers:
            await asyncio.wait(helpers)  # the join must have ended before we leave
        for helper in helpers:
            if not helper.cancelled() and helper.exception() is not None:
                log.warning("task %s: %s failed: %r", self._task_id, helper.get_name(),
                            helper.exception())
        if self._entered:
            self._entered = False
            self._sub = None
            try:
                await self._subscribing.__aexit__(None, None, None)
            except Exception as exc:
                log.warning("task %s: leaving the cancel watch failed: %r", self._task_id, exc)
