"""Running a synchronous request's task in the process that took the request.

A sync client waits for its image anyway. Instead of queueing the task for whichever worker
claims it (a write to claim it, a wake-up, re-reads while waiting), the process that took the
request creates the task already claimed by its own in-process worker, in the same
transaction as the hold, and starts it at once. Nothing about durability changes: the row is
an ordinary leased, in-progress task, renewed by the worker, handed back on a graceful stop,
and requeued by the reaper if this process dies.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from imagegate.domain.task import Task


class InlineRunner(Protocol):
    """What the intake needs of a worker to run a task it creates (`Worker` is one)."""

    owner: str

    @property
    def lease_seconds(self) -> float: ...

    async def reserve(self) -> bool: ...

    def release(self) -> None: ...

    def adopt(self, task: Task) -> asyncio.Task[Task | None]: ...
