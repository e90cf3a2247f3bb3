"""An event loop of its own, in a thread, on which task runs read their upstream answers.

When 2,000 answers of 2 MiB arrive at once, reading them is seconds of event-loop work: up
to 1,800 sockets hold unread data together, and one loop serves its ready sockets in order.
On the API's loop, every request that came in meanwhile, a `/healthz` probe included, waited
for all of them (bench/README.md: probes answered 3.4-7.2 s late, released exactly as the last
socket was read). Read on a loop of their own, the API's loop takes its turns in between: the
interpreter switches threads every few milliseconds however long the other loop's turn.

What runs there is an upstream exchange as a whole (`UpstreamClient._send`: the request, the
answer's body drained into memory or a spool file, its parse), handed over by `run` and
handed back as its result or exception. Budget and spool are safe across the two loops
(`providers/holding.py`); aiohttp sessions are per loop (`UpstreamClient._open`). Reading a
spool file back (`SpoolFile.take_out`) goes to this loop's own default executor: copying from
the page cache, not the CPU-bound work that `cpu_workers` bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (uvicorn's `standard` extra brings it; the API's loop is one
    too): it reads sockets in a fraction of asyncio's time."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AnswerReader:
    """A thread running an event loop, started by `start` and ended by `stop`."""

    def __init__(self, name: str = "imagegate-upstream") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The reader's loop while it runs."""
        loop = self._loop
        return loop if loop is not None and loop.is_running() else None

    def start(self) -> None:
        if self._thread is not None:
            return
        started = threading.Event()

        def main() -> None:
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            loop.call_soon(started.set)
            try:
                loop.run_forever()
            finally:
                # What `stop` left running (nothing, when the workers stopped first) is
                # cancelled, so the callers waiting for it hear so.
                left = asyncio.all_tasks(loop)
                for task in left:
                    task.cancel()
                if left:
                    loop.run_until_complete(asyncio.wait(left))
                loop.run_until_complete(loop.shutdown_asyncgens())
                self._loop = None
                loop.close()

        self._thread = threading.Thread(target=main, name=self._name, daemon=True)
        self._thread.start()
        started.wait()

    async def stop(self) -> None:
        """End the loop (after everything that read on it has closed its sessions) and wait
        for its thread, off this loop."""
        thread, self._thread = self._thread, None
        loop = self._loop
        if thread is None:
            return
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed already
                loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
        if thread.is_alive():
            log.warning("the upstream reader's thread did not stop in 10 s")

    def run(self, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """`coro` to await, run on the reader's loop (here, when it is not running or this
        is it). Cancelling the caller cancels it there; its result or exception comes back.

        Called on the caller's loop. Hands back a future, not a coroutine of its own, and
        not `run_coroutine_threadsafe`'s (a `concurrent.futures.Future`, with a condition and
        a lock): whatever is allocated here stays so while the upstream holds the call,
        thousands of calls at once (measured: one more suspended frame per call was +10 MB
        over 10,000 held calls)."""
        loop = self.loop
        here = asyncio.get_running_loop()
        if loop is None or loop is here:
            return coro
        hop: _Hop[T] = _Hop(coro, here.create_future(), loop)
        try:
            loop.call_soon_threadsafe(hop.start)
        except RuntimeError:  # the loop closed between the check and now
            hop.coro = None
            return coro
        # The caller's cancel cancels this future: carried to the reader's loop from there.
        hop.done.add_done_callback(hop.caller_done)
        return hop.done


class _Hop(Generic[T]):
    """One coroutine's trip to the reader's loop and its outcome's trip back."""

    __slots__ = ("cancelled", "coro", "done", "reader", "task")

    def __init__(self, coro: Coroutine[Any, Any, T], done: asyncio.Future[T],
                 reader: asyncio.AbstractEventLoop) -> None:
        self.coro: Coroutine[Any, Any, T] | None = coro
        self.done, self.reader = done, reader
        self.task: asyncio.Task[T] | None = None
        self.cancelled = False

    def caller_done(self, done: asyncio.Future[T]) -> None:  # on the caller's loop
        if done.cancelled():
            with contextlib.suppress(RuntimeError):  # the reader's loop has closed
                self.reader.call_soon_threadsafe(self.cancel)

    def start(self) -> None:  # on the reader's loop
        coro, self.coro = self.coro, None
        if coro is None:
            return
        if self.cancelled:
            coro.close()
            return
        self.task = self.reader.create_task(coro)
        self.task.add_done_callback(self._finished)

    def cancel(self) -> None:  # on the reader's loop
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()

    def _finished(self, task: asyncio.Task[T]) -> None:  # on the reader's loop
        self.task = None
        # Taken out here, on the task's own loop, which also marks an exception retrieved.
        if task.cancelled():
            outcome: tuple[Any, BaseException | None, bool] = (None, None, True)
        else:
            error = task.exception()
            outcome = (None if error is not None else task.result(), error, False)
        with contextlib.suppress(RuntimeError):  # the caller's loop has closed
            self.done.get_loop().call_soon_threadsafe(self._deliver, *outcome)

    def _deliver(self, result: Any, error: BaseException | None,
                 cancelled: bool) -> None:  # on the caller's loop
        done = self.done
        if done.done():  # the caller was cancelled meanwhile
            return
        if cancelled:
            done.cancel()
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)
