"""Upstream answers held in memory at once, across every task run of one process.

Nothing else bounds them since a channel's connection pool stopped capping calls in flight: a
burst of 2,000 sync requests whose 2 MiB results come back together read 2,000 answers (and
their decodings) at once, and measured 8.6 GB. `ResultBudget` is the process-wide bound
(`max_inflight_result_bytes`): an answer's bytes are taken before its body is read and stay
taken until the run that read it ends (its images are stored and the task is recorded by
then). An answer that does not fit is read into a spool file and waits there for room
(`providers/spool.py`); only when the spool is full or missing does it wait unread in its
socket. It is never refused — the upstream has made the image, and dropping it would lose
it — so the wait is bounded only by the channel's own timeout.

A run that holds everything held may always take more, so one answer larger than the budget
slows the others instead of blocking forever.

Which run reads an answer is not passed down through every adapter: the worker opens a
`Holding` for each run in a context variable (`holding`), which the run's own task and any
task it starts see, and the upstream client takes from whatever holding is current.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagegate.providers.spool import AnswerSpool


class ResultBudget:
    """Bytes taken and given back; takers wait first come, first served (a give wakes only
    those that now fit, in order: no herd of thousands re-checking on every release)."""

    def __init__(self, limit_bytes: int, spool: AnswerSpool | None = None) -> None:
        self.limit = limit_bytes
        self.used = 0
        # Where answers that do not fit wait instead of their sockets (`providers/spool.py`).
        self.spool = spool
        self._waiting: collections.deque[tuple[int, int, asyncio.Future[None]]] = (
            collections.deque())

    def _fits(self, size: int, own: int) -> bool:
        return self.used == own or self.used + size <= self.limit

    def try_take(self, size: int, own: int) -> bool:
        """Count `size` more bytes if they fit now and nobody waits before us."""
        if not self._waiting and self._fits(size, own):
            self.used += size
            return True
        return False

    async def take(self, size: int, own: int) -> None:
        """Count `size` more bytes for a holder that holds `own`; wait until they fit."""
        if self.try_take(size, own):
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, own, woken)
        self._waiting.append(entry)
        try:
            await woken  # the bytes are counted for us before we are woken
        except asyncio.CancelledError:
            if woken.done() and not woken.cancelled():
                self.give(size)  # woken and cancelled at once: hand them on
            else:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(entry)
            raise

    def give(self, size: int) -> None:
        """Synchronous, so a release in a `finally` cannot be cut short by a cancel."""
        self.used = max(0, self.used - size)
        while self._waiting:
            size_next, own, woken = self._waiting[0]
            if woken.done():
                self._waiting.popleft()
                continue
            if not self._fits(size_next, own):
                break
            self._waiting.popleft()
            self.used += size_next
            woken.set_result(None)


class Holding:
    """What one task run holds of the budget; `with` it (see `holding`) to make it the run's
    current one. Its own context manager, with slots, rather than an `@contextmanager`
    generator: a run's `with` lasts as long as an upstream holds its call (thousands at
    once), and the generator's suspended frame cost ~0.2 KB each."""

    __slots__ = ("_token", "budget", "held")

    def __init__(self, budget: ResultBudget) -> None:
        self.budget = budget
        self.held = 0
        self._token: Token[Holding | None] | None = None

    def __enter__(self) -> Holding:
        self._token = _HOLDING.set(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _HOLDING.reset(token)
        self.release()

    async def take(self, size: int) -> None:
        if size > 0:
            await self.budget.take(size, self.held)
            self.held += size

    def try_take(self, size: int) -> bool:
        if size > 0 and not self.budget.try_take(size, self.held):
            return False
        self.held += max(0, size)
        return True

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self.budget.give(held)


# A key into each task's context, not state: what it finds is the running task's own.
_HOLDING: ContextVar[Holding | None] = ContextVar("imagegate_result_holding", default=None)


def current() -> Holding | None:
    """The holding of the task run this code runs for, if any (API-side calls have none)."""
    return _HOLDING.get()


def holding(budget: ResultBudget | None) -> AbstractContextManager[Holding | None]:
    """A holding for the run in this task, released when the `with` ends (the run's
    answers are no longer needed by then)."""
    return contextlib.nullcontext() if budget is None else Holding(budget)
