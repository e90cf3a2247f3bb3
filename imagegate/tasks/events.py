"""Wake-ups: "task X changed" and "new work is queued".

They only make things fast. Correctness never depends on them: every waiter also re-reads
the database on a timeout, so a lost event (another process, a restart) costs latency only.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from imagegate.config import Settings
from imagegate.domain.images import PartialImage


class Subscription:
    """A waiter for one task's changes, registered before the caller reads the row, so a
    change between the read and the wait is never missed."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        # Partial images for a streaming client; bounded by the request (≤ 3 per image).
        self.partials: list[PartialImage] = []

    def notify(self) -> None:
        self._event.set()

    def take_partials(self) -> list[PartialImage]:
        taken, self.partials = self.partials, []
        return taken

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        self._event.clear()
        return True


class EventBus(abc.ABC):
    @abc.abstractmethod
    async def task_changed(self, task_id: str) -> None:
        """Tell waiters of this task to re-read it."""

    @abc.abstractmethod
    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        """`async with bus.subscribe(id) as sub:` then `await sub.wait(timeout)`."""

    @abc.abstractmethod
    async def partial_image(self, task_id: str, partial: PartialImage) -> None:
        """Hand a partial image to this task's streaming subscribers (best effort: a
        subscriber elsewhere, or none at all, simply misses it)."""

    @abc.abstractmethod
    async def work_queued(self) -> None:
        """Tell idle workers there is something to claim."""

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> bool:
        """Sleep until work is announced or `timeout` passes."""

    async def aclose(self) -> None:  # noqa: B027 - the memory bus holds nothing
        """Release connections."""


class MemoryEventBus(EventBus):
    """In-process events for the embedded deployment (one server process)."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._work = asyncio.Event()

    async def task_changed(self, task_id: str) -> None:
        for sub in self._subs.get(task_id, ()):
            sub.notify()

    @asynccontextmanager
    async def _subscribe(self, task_id: str) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subs.setdefault(task_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(task_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[task_id]

    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscribe(task_id)

    async def partial_image(self, task_id: str, partial: PartialImage) -> None:
        for sub in self._subs.get(task_id, ()):
            sub.partials.append(partial)
            sub.notify()

    async def work_queued(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._work.wait(), timeout)
        except TimeoutError:
            return False
        self._work.clear()
        return True


def memory_bus(_settings: Settings) -> EventBus:
    return MemoryEventBus()
