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
import threading
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imagegate.providers.reader import AnswerReader
    from imagegate.providers.spool import AnswerSpool


class HoldingClosed(RuntimeError):
    """A take from a holding whose run has ended: an exchange that was cancelled on the
    upstream reader's loop and read on before the cancel reached it."""


class _Waiter:
    """One taker in line. `granted` is set (under the budget's lock) when its bytes are
    counted, so a waiter cancelled between that and its wake-up knows to give them back."""

    __slots__ = ("future", "granted", "own", "size")

    def __init__(self, size: int, own: int, future: asyncio.Future[None]) -> None:
        self.size, self.own, self.future = size, own, future
        self.granted = False


class ResultBudget:
    """Bytes taken and given back; takers wait first come, first served (a give wakes only
    those that now fit, in order: no herd of thousands re-checking on every release).

    Safe across threads: answers are read on the upstream reader's loop
    (`providers/reader.py`) while runs end, and give their bytes back, on the API's. A lock
    guards the count and the line; a waiter is woken on its own loop."""

    def __init__(self, limit_bytes: int, spool: AnswerSpool | None = None,
                 reader: AnswerReader | None = None) -> None:
        self.limit = limit_bytes
        self.used = 0
        # Where answers that do not fit wait instead of their sockets (`providers/spool.py`).
        self.spool = spool
        # The event loop on which runs holding this budget read their answers (None: their
        # own); see `UpstreamClient._send`.
        self.reader = reader
        self.lock = threading.Lock()
        self._waiting: collections.deque[_Waiter] = collections.deque()

    def _fits(self, size: int, own: int) -> bool:
        return self.used == own or self.used + size <= self.limit

    def try_take_locked(self, size: int, own: int) -> bool:
        """`try_take` for a caller that holds `lock`."""
        if not self._waiting and self._fits(size, own):
            self.used += size
            return True
        return False

    def try_take(self, size: int, own: int) -> bool:
        """Count `size` more bytes if they fit now and nobody waits before us."""
        with self.lock:
            return self.try_take_locked(size, own)

    async def take(self, size: int, own: int) -> None:
        """Count `size` more bytes for a holder that holds `own`; wait until they fit."""
        with self.lock:
            if self.try_take_locked(size, own):
                return
            waiter = _Waiter(size, own, asyncio.get_running_loop().create_future())
            self._waiting.append(waiter)
        try:
            await waiter.future  # the bytes are counted for us before we are woken
        except asyncio.CancelledError:
            with self.lock:
                granted = waiter.granted
                if not granted:
                    with contextlib.suppress(ValueError):
                        self._waiting.remove(waiter)
            if granted:
                self.give(size)  # counted for us and cancelled at once: hand them on
            raise

    def give(self, size: int) -> None:
        """Synchronous, so a release in a `finally` cannot be cut short by a cancel; callable
        from any thread."""
        woken: list[_Waiter] = []
        with self.lock:
            self.used = max(0, self.used - size)
            while self._waiting:
                waiter = self._waiting[0]
                if not self._fits(waiter.size, waiter.own):
                    break
                self._waiting.popleft()
                self.used += waiter.size
                waiter.granted = True
                woken.append(waiter)
        for waiter in woken:
            _wake(waiter.future)


def _wake(future: asyncio.Future[None]) -> None:
    """Resolve `future` on its own loop: at once from that loop's thread, else through
    `call_soon_threadsafe` (a loop that has closed has no one left to wake)."""
    loop = future.get_loop()
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if loop is here:
        _resolve(future)
    else:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Holding:
    """What one task run holds of the budget; `with` it (see `holding`) to make it the run's
    current one. Its own context manager, with slots, rather than an `@contextmanager`
    generator: a run's `with` lasts as long as an upstream holds its call (thousands at
    once), and the generator's suspended frame cost ~0.2 KB each.

    Released once, when the run ends; a take after that raises `HoldingClosed` (a cancelled
    exchange on the reader's loop may read on until the cancel reaches it, and what it took
    would never be given back)."""

    __slots__ = ("_closed", "_token", "budget", "held")

    def __init__(self, budget: ResultBudget) -> None:
        self.budget = budget
        self.held = 0
        self._closed = False
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
        if size <= 0:
            return
        budget = self.budget
        with budget.lock:
            if self._closed:
                raise HoldingClosed
            own = self.held
        await budget.take(size, own)
        with budget.lock:
            closed = self._closed
            if not closed:
                self.held += size
        if closed:
            budget.give(size)
            raise HoldingClosed

    def try_take(self, size: int) -> bool:
        budget = self.budget
        with budget.lock:
            if self._closed:
                raise HoldingClosed
            if size > 0 and not budget.try_take_locked(size, self.held):
                return False
            self.held += max(0, size)
            return True

    def release(self) -> None:
        budget = self.budget
        with budget.lock:
            held, self.held = self.held, 0
            self._closed = True
        if held:
            budget.give(held)


# A key into each task's context, not state: what it finds is the running task's own.
_HOLDING: ContextVar[Holding | None] = ContextVar("imagegate_result_holding", default=None)


def current() -> Holding | None:
    """The holding of the task run this code runs for, if any (API-side calls have none)."""
    return _HOLDING.get()


def holding(budget: ResultBudget | None) -> AbstractContextManager[Holding | None]:
    """A holding for the run in this task, released when the `with` ends (the run's
    answers are no longer needed by then)."""
    return contextlib.nullcontext() if budget is None else Holding(budget)
