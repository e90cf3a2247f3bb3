"""SQLite's one writer: a thread that owns the write connection and commits the write
transactions queued meanwhile together (group commit).

Why: a relayed request makes three write transactions (the hold and task insert, the
upstream marker, the finish). Run one hop and one COMMIT each, the hops (a concurrent
future, a loop wake-up per transaction) and the commits were the largest share of a relayed
4 KiB request's CPU. Here the loop queues a transaction and goes on; the thread takes every
transaction queued at that moment (at most `MAX_GROUP`), runs each inside a SAVEPOINT of one
transaction, commits once, and hands all the outcomes back to the loop in one wake-up.

What a caller can rely on (the same as one transaction per commit):
- Its await returns only after its own transaction is committed; what it wrote is durable as
  far as the database's `synchronous` setting makes any commit durable (WAL + NORMAL: it
  survives a crash of the process, kill -9 included, not a power cut).
- Its transaction is its own: a step that raises (or a `Step.require` that fails) rolls back
  to its SAVEPOINT, that caller gets the exception, and the others of the group commit. If
  the group's transaction as a whole is lost (SQLite rolled it back: disk full, I/O error) or
  its COMMIT fails, nothing of it was kept, and each transaction is run again alone, in its
  own transaction, so each caller learns its own outcome.
- A caller cancelled before its transaction started has it skipped (as an executor skips a
  work item cancelled before it runs); once started, it runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

# Bounds how long one group holds the write lock and how late its first caller hears back:
# a transaction of the relay path takes ~30-50 µs here, so a full group commits in a few ms.
MAX_GROUP = 64


@dataclass(slots=True, eq=False)
class _Job:
    fn: Callable[[sa.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    alone: bool  # runs in a transaction of its own, never grouped (migrations)
    new_work: bool  # admits new work: waits behind the transactions of work admitted before
    ok: bool = False
    value: Any = field(default=None)


class _GroupLost(Exception):
    """The group's transaction is gone (SQLite rolled it back under us)."""


class SqliteWriter:
    """Runs write transactions on one thread; see the module docstring."""

    def __init__(self, connect: Callable[[], sa.Connection], *,
                 name: str = "imagegate-sqlite", max_group: int = MAX_GROUP) -> None:
        self._connect = connect
        self._name = name
        self._max_group = max_group
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # starting the thread, only

    async def run(self, fn: Callable[[sa.Connection], T], *, alone: bool = False,
                  new_work: bool = False) -> T:
        """`fn(conn)` inside a transaction on the writer thread, committed before this
        returns; raises what `fn` (or the commit) raised, with nothing of `fn` kept.
        `new_work`: see `_serve`."""
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop.create_future(), loop, alone, new_work)
        self._start()
        self._jobs.put(job)
        value: T = await job.future
        return value

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                # A daemon: a database never closed must not keep the interpreter alive. A
                # transaction cut off at exit is rolled back by SQLite, and was never answered.
                self._thread = threading.Thread(target=self._serve, name=self._name,
                                                daemon=True)
                self._thread.start()

    async def aclose(self) -> None:
        """Stop the thread after the transactions queued before, and close the connection."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        # Waited for without the loop's default executor: that is the CPU pool
        # (`wiring.cpu_pool`), which another set of backends on this loop may already have
        # shut down (two in one process: tests, `--processes` children are separate).
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def end() -> None:
            if not ended.done():  # a cancelled close has stopped waiting
                ended.set_result(None)

        def wait() -> None:
            thread.join()
            loop.call_soon_threadsafe(end)

        threading.Thread(target=wait, name=f"{self._name}-close", daemon=True).start()
        await ended

    # -- the thread
    def _serve(self) -> None:
        """Groups in order, except that a transaction admitting new work (a task's creation)
        goes after those of work already admitted (its upstream marker, its finish). Why: in
        a burst of 2,000 requests, a FIFO made every request's second write wait behind the
        2,000 creations queued before it, so no upstream call went out before every request
        had been admitted, and they all came back together 2 s later. Admitted work first
        lets the first answers overlap the admission of the rest."""
        admitted: deque[_Job] = deque()
        new: deque[_Job] = deque()
        stopping = False  # aclose() was called: stop once everything queued before has run
        while True:
            if not admitted and not new:
                if stopping:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    return
                stopping = self._sort(self._jobs.get(), admitted, new)
            while True:  # everything queued by now, so the order above can apply
                try:
                    stopping = self._sort(self._jobs.get_nowait(), admitted, new) or stopping
                except queue.Empty:
                    break
            if not admitted and not new:
                continue
            source = admitted if admitted else new
            group = [source.popleft()]
            while not group[0].alone and len(group) < self._max_group:
                source = admitted if admitted else new
                if not source or source[0].alone:
                    break
                group.append(source.popleft())
            live = [j for j in group if not j.future.cancelled()]
            if live:
                self._run_group(live)
                self._answer(live)

    @staticmethod
    def _sort(job: _Job | None, admitted: deque[_Job], new: deque[_Job]) -> bool:
        """Queue `job` by kind; True for aclose()'s stop (None)."""
        if job is None:
            return True
        (new if job.new_work else admitted).append(job)
        return False

    def _connection(self) -> sa.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _run_group(self, group: list[_Job]) -> None:
        if len(group) == 1:
            self._run_alone(group[0])
            return
        conn = self._connection()
        try:
            self._run_together(conn, group)
            conn.commit()
        except BaseException:
            # The group as a whole failed (or its commit did): nothing of it was kept. Each
            # transaction again on its own, so one cannot take the others down.
            self._rollback(conn)
            for job in group:
                self._run_alone(job)

    def _run_together(self, conn: sa.Connection, group: list[_Job]) -> None:
        if not conn.in_transaction():
            conn.begin()
        driver = conn.connection.driver_connection
        assert driver is not None
        if not driver.in_transaction:
            # Explicitly: the stdlib driver begins one implicitly only before DML, and a
            # SAVEPOINT outside a transaction would start (and its RELEASE commit) its own.
            driver.execute("BEGIN")
        for job in group:
            driver.execute("SAVEPOINT grouped")
            try:
                job.value = job.fn(conn)
            except BaseException as exc:
                if not driver.in_transaction:
                    raise _GroupLost from exc
                driver.execute("ROLLBACK TO grouped")
                driver.execute("RELEASE grouped")
                job.ok, job.value = False, exc
            else:
                driver.execute("RELEASE grouped")
                job.ok = True

    def _run_alone(self, job: _Job) -> None:
        conn = self._connection()
        try:
            if not conn.in_transaction():
                # Begun explicitly, so commit() reaches the driver even when every
                # statement went around SQLAlchemy (the raw path).
                conn.begin()
            value = job.fn(conn)
            conn.commit()
            job.ok, job.value = True, value
        except BaseException as exc:
            self._rollback(conn)
            job.ok, job.value = False, exc

    def _rollback(self, conn: sa.Connection) -> None:
        """Roll back SQLAlchemy's transaction and the driver's: a COMMIT that failed (a
        deferred constraint) leaves the driver's open while SQLAlchemy's is already over,
        and the next transaction would otherwise run (and commit) inside it. A connection
        that cannot roll back is dropped; the next transaction opens a new one."""
        try:
            conn.rollback()
            driver = conn.connection.driver_connection
            if driver is not None and driver.in_transaction:
                driver.rollback()
        except Exception:
            self._conn = None
            with contextlib.suppress(Exception):
                conn.invalidate()

    def _answer(self, group: list[_Job]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, jobs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass


def _settle(jobs: list[_Job]) -> None:
    """On the loop: hand each caller its outcome (skipping those that stopped waiting)."""
    for job in jobs:
        if job.future.done():
            continue
        if job.ok:
            job.future.set_result(job.value)
        else:
            job.future.set_exception(job.value)
