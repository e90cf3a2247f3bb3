"""Task events: what happened to a task (started, progress, a partial image, finished or
cancelled) and "new work is queued", between whichever processes hold the two ends.

They only make things fast. Correctness never depends on them: every waiter also re-reads
the database on a timeout, a worker renews its leases on a timer, and idle workers poll the
queue. So a lost event (Redis away, a restart, a subscriber that joined late) costs latency,
never a task. The one thing polling cannot bring back is a partial image: a stream that
misses one shows fewer previews, then the final image.

`EventBus` has four methods and `aclose`:
- `publish(event)` sends a `TaskEvent` to this task's subscribers in every process (best
  effort: it never raises, and a process with no subscriber simply drops it);
- `subscribe(task_id)` (`async with`) collects the task's events from then on;
- `work_queued()` / `wait_for_work(timeout)`: one announcement wakes one waiting worker, in
  whichever process, not all of them (no thundering herd on a shared queue).

The memory bus serves one process (the embedded default); `redis_events.py` serves many.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from imagegate.config import Settings
from imagegate.domain.images import PartialImage

# Announcements kept while no worker waits; more add nothing (each makes one claim attempt).
MAX_PENDING_WORK = 1024
# Events one subscriber holds before the oldest are dropped: a task sends at most a few dozen
# (progress is rate-limited by the worker, partial images are ≤ 3 per image).
MAX_QUEUED_EVENTS = 256


class EventKind(enum.StrEnum):
    STARTED = "started"  # a worker claimed the task (attempt `Task.attempts`)
    PROGRESS = "progress"  # `progress` 0–99 was recorded
    PARTIAL_IMAGE = "partial_image"  # `partial` is a preview for streaming clients
    TERMINAL = "terminal"  # the row reached `status` (succeeded, failed, cancelled)


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One thing that happened to one task. The row stays the truth: a subscriber re-reads
    it on TERMINAL rather than trusting a status it was told."""

    task_id: str
    kind: EventKind
    progress: int | None = None
    status: str | None = None
    partial: PartialImage | None = None


class Subscription:
    """The events of one task since `subscribe` returned. Registered before the caller reads
    the row, so a change between the read and the wait is never missed. One reader at a
    time (each subscriber reads its own).

    A worker holds one per running task (its cancel watch), thousands at once while an
    upstream holds their calls, and almost none ever receives an event: so nothing is
    allocated until something arrives or someone waits (an empty deque and an
    `asyncio.Event`, itself a deque of waiters, were ~1.5 KB per held task)."""

    __slots__ = ("_events", "_notify", "_waiter", "task_id")

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self._events: list[TaskEvent] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._notify: Callable[[TaskEvent], None] | None = None

    def notify(self, callback: Callable[[TaskEvent], None] | None) -> None:
        """Hand each event to `callback` as it arrives (those already queued first) instead
        of queueing it for `next`; None goes back to queueing. For a subscriber that only
        reacts (a worker's cancel watch): no task has to sit waiting in `next`."""
        self._notify = callback
        if callback is not None:
            queued, self._events = self._events, None
            for event in queued or ():
                callback(event)

    def deliver(self, event: TaskEvent) -> None:
        """Called by the bus (on the subscriber's event loop)."""
        if self._notify is not None:
            self._notify(event)
            return
        events = self._events
        if events is None:
            events = self._events = []
        elif len(events) >= MAX_QUEUED_EVENTS:
            del events[0]  # the oldest go first, as a bounded deque would drop them
        events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, timeout: float | None) -> list[TaskEvent]:
        """The events that arrived since the last call, waiting up to `timeout` seconds
        (None: until one comes) for the first one; [] when none came (time to re-read the
        row)."""
        if not self._events:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                if timeout is None:
                    await waiter
                else:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel
                    # that lands as the event arrives, and a cancelled watcher waits on.
                    async with asyncio.timeout(timeout):
                        await waiter
            except TimeoutError:
                return []
            finally:
                self._waiter = None
        taken, self._events = self._events or [], None
        return taken


class EventBus(abc.ABC):
    @abc.abstractmethod
    async def publish(self, event: TaskEvent) -> None:
        """Hand `event` to the subscribers of its task wherever they are. Never raises."""

    @abc.abstractmethod
    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        """`async with bus.subscribe(id) as sub:` then `await sub.next(timeout)`."""

    @abc.abstractmethod
    async def work_queued(self) -> None:
        """Wake one idle worker (now, or the next one to wait). Never raises."""

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> bool:
        """Sleep until work is announced (True) or `timeout` passes (False)."""

    @property
    def connected(self) -> bool:
        """Whether events currently travel (False while Redis is away: polling only)."""
        return True

    async def check(self) -> None:  # noqa: B027 - the memory bus is always there
        """Raise `BackendUnavailableError` when the bus's server cannot be reached."""

    async def aclose(self) -> None:  # noqa: B027 - the memory bus holds nothing
        """Release connections."""


class LocalSubscribers:
    """The subscriptions of this process, by task: both buses deliver through it.

    A task's one subscription is kept as itself, and only a second makes a set: a worker
    subscribes to each running task for as long as an upstream holds its call (thousands at
    once), and a set per task was ~0.2 KB more each."""

    def __init__(self) -> None:
        self.by_task: dict[str, Subscription | set[Subscription]] = {}

    def deliver(self, event: TaskEvent) -> None:
        subs = self.by_task.get(event.task_id)
        if isinstance(subs, Subscription):
            subs.deliver(event)
        elif subs is not None:
            for sub in subs:
                sub.deliver(event)

    def add(self, task_id: str) -> tuple[Subscription, bool]:
        """A new subscription, and whether it is the task's first in this process."""
        sub = Subscription(task_id)
        subs = self.by_task.get(task_id)
        if subs is None:
            self.by_task[task_id] = sub
            return sub, True
        if isinstance(subs, Subscription):
            subs = self.by_task[task_id] = {subs}
        subs.add(sub)
        return sub, False

    def remove(self, sub: Subscription) -> bool:
        """Forget `sub`; whether it was the task's last in this process."""
        subs = self.by_task.get(sub.task_id)
        if subs is None:
            return False
        if isinstance(subs, Subscription):
            if subs is not sub:
                return False
        else:
            subs.discard(sub)
            if subs:
                return False
        del self.by_task[sub.task_id]
        return True


class MemoryEventBus(EventBus):
    """In-process events for the embedded deployment (one server process)."""

    def __init__(self) -> None:
        self._local = LocalSubscribers()
        # A bounded queue of announcements: each wakes exactly one waiter, like Redis's list.
        self._work: asyncio.Queue[None] = asyncio.Queue(MAX_PENDING_WORK)

    async def publish(self, event: TaskEvent) -> None:
        self._local.deliver(event)

    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        return _LocalSubscription(self._local, task_id)

    async def work_queued(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._work.put_nowait(None)

    async def wait_for_work(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see Subscription.next
                await self._work.get()
        except TimeoutError:
            return False
        return True


def memory_bus(_settings: Settings) -> EventBus:
    """Events inside this process only (the embedded default, no `redis_url`)."""
    return MemoryEventBus()


class _LocalSubscription:
    """`async with` for the memory bus: a plain object rather than an
    `@asynccontextmanager` generator, whose suspended frame cost ~0.7 KB per running task."""

    __slots__ = ("_local", "_sub", "_task_id")

    def __init__(self, local: LocalSubscribers, task_id: str) -> None:
        self._local = local
        self._task_id = task_id
        self._sub: Subscription | None = None

    async def __aenter__(self) -> Subscription:
        self._sub, _first = self._local.add(self._task_id)
        return self._sub

    async def __aexit__(self, *_exc: object) -> None:
        if self._sub is not None:
            self._local.remove(self._sub)
            self._sub = None
