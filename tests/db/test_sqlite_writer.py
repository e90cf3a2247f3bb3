"""`SqliteWriter`: transactions queued together commit together, and each is still its own
(its failure is its caller's alone, nothing of it kept; a failed group commit is retried
transaction by transaction)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.sqlite_writer import SqliteWriter

pytestmark = pytest.mark.anyio


class Commits:
    """Counts the COMMITs that reach the driver."""

    def __init__(self) -> None:
        self.n = 0


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[SqliteWriter, sa.Engine, Commits]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}",
                              connect_args={"check_same_thread": False},
                              poolclass=sa.pool.NullPool)

    @sa.event.listens_for(engine, "connect")
    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    commits = Commits()

    @sa.event.listens_for(engine, "commit")
    def count(_conn: Any) -> None:
        commits.n += 1

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO parent VALUES (1)")
        # Checked at COMMIT, not at the statement: a way to make one group's commit fail.
        conn.exec_driver_sql(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id)"
            " DEFERRABLE INITIALLY DEFERRED)")
    writer = SqliteWriter(engine.connect)
    try:
        yield writer, engine, commits
    finally:
        await writer.aclose()
        engine.dispose()


def insert(child: int, parent: int = 1) -> Callable[[sa.Connection], int]:
    def fn(conn: sa.Connection) -> int:
        conn.exec_driver_sql(f"INSERT INTO child VALUES ({child}, {parent})")
        return child
    return fn


def children(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT id FROM child ORDER BY id")]


async def hold(writer: SqliteWriter) -> tuple[asyncio.Future[None], threading.Event]:
    """Keep the writer thread busy until the event is set, so what is queued meanwhile
    forms one group."""
    release, started = threading.Event(), threading.Event()

    def block(_conn: sa.Connection) -> None:
        started.set()
        release.wait(10)

    job = asyncio.ensure_future(writer.run(block))
    await asyncio.to_thread(started.wait, 10)
    return job, release


async def in_one_group(writer: SqliteWriter, *fns: Callable[[sa.Connection], Any]
                       ) -> list[Any]:
    """Run `fns` queued together behind a busy writer (one group); their results or
    exceptions, in order."""
    busy, release = await hold(writer)
    jobs = [asyncio.ensure_future(writer.run(fn)) for fn in fns]
    await asyncio.sleep(0)  # every job queued before the thread is let go
    release.set()
    results = await asyncio.gather(*jobs, return_exceptions=True)
    await busy
    return results


async def test_transactions_queued_together_commit_once(setup: Any) -> None:
    writer, engine, commits = setup
    busy, release = await hold(writer)
    before = commits.n
    jobs = [asyncio.ensure_future(writer.run(insert(i))) for i in range(1, 21)]
    await asyncio.sleep(0)  # every job queued before the thread is let go
    release.set()
    assert await asyncio.gather(*jobs) == list(range(1, 21))
    await busy
    assert children(engine) == list(range(1, 21))
    assert commits.n - before == 2  # the blocker's, then one for all twenty


async def test_a_failing_transaction_is_its_callers_alone(setup: Any) -> None:
    writer, engine, _ = setup

    def two_then_fail(conn: sa.Connection) -> None:
        conn.exec_driver_sql("INSERT INTO child VALUES (100, 1)")
        conn.exec_driver_sql("INSERT INTO child VALUES (1, 1)")  # taken by the first job

    first, failed, last = await in_one_group(writer, insert(1), two_then_fail, insert(2))
    assert (first, last) == (1, 2)
    assert isinstance(failed, sa.exc.IntegrityError)
    assert children(engine) == [1, 2]  # nothing of the failed one, 100 included


async def test_a_failed_group_commit_is_retried_one_by_one(setup: Any) -> None:
    writer, engine, _ = setup
    # The middle one fails at COMMIT (no parent 99).
    first, orphan, last = await in_one_group(writer, insert(1), insert(2, parent=99), insert(3))
    assert (first, last) == (1, 3)
    assert isinstance(orphan, sa.exc.IntegrityError)
    assert "FOREIGN KEY" in str(orphan)
    assert children(engine) == [1, 3]


async def test_a_transaction_whose_group_was_rolled_back_runs_again_alone(setup: Any) -> None:
    """A job that ends the whole transaction (as SQLite does on a disk-full error) must not
    take the group's other transactions with it."""
    writer, engine, _ = setup

    def rolls_everything_back(conn: sa.Connection) -> None:
        driver = conn.connection.driver_connection
        assert driver is not None
        if driver.in_transaction and children_now(driver) == 1:  # in the group: lose it
            driver.rollback()
            raise sqlite3.OperationalError("database or disk is full")

    assert await in_one_group(writer, insert(1), rolls_everything_back, insert(2)) == [1, None, 2]
    assert children(engine) == [1, 2]


def children_now(driver: Any) -> int:
    return int(driver.execute("SELECT count(*) FROM child").fetchone()[0])


async def test_a_caller_cancelled_before_its_turn_is_skipped(setup: Any) -> None:
    writer, engine, _ = setup
    busy, release = await hold(writer)
    gone = asyncio.ensure_future(writer.run(insert(1)))
    kept = asyncio.ensure_future(writer.run(insert(2)))
    await asyncio.sleep(0)
    gone.cancel()
    release.set()
    assert await kept == 2
    await busy
    assert children(engine) == [2]


async def test_close_runs_what_was_queued_first(setup: Any) -> None:
    writer, engine, _ = setup
    jobs = [asyncio.ensure_future(writer.run(insert(i))) for i in range(1, 6)]
    await asyncio.sleep(0)
    await writer.aclose()
    assert await asyncio.gather(*jobs) == [1, 2, 3, 4, 5]
    assert children(engine) == [1, 2, 3, 4, 5]


async def test_close_needs_no_default_executor(setup: Any) -> None:
    """Two sets of backends on one loop (the tests' API + worker): the other's close may
    have shut down the loop's default executor, its CPU pool, before this one closes."""
    from concurrent.futures import ThreadPoolExecutor

    writer, engine, _ = setup
    assert await writer.run(insert(1)) == 1
    pool = ThreadPoolExecutor(1)
    asyncio.get_running_loop().set_default_executor(pool)
    pool.shutdown()
    try:
        await writer.aclose()
    finally:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(1))
    assert children(engine) == [1]


async def test_work_already_admitted_goes_before_new_work(setup: Any) -> None:
    """Queued together, the transactions of running work commit before those admitting new
    work, each kind in its own order; nothing is lost or run twice."""
    writer, engine, _ = setup
    order: list[str] = []

    def note(name: str, child: int) -> Callable[[sa.Connection], str]:
        def fn(conn: sa.Connection) -> str:
            insert(child)(conn)
            order.append(name)
            return name
        return fn

    busy, release = await hold(writer)
    jobs = [asyncio.ensure_future(writer.run(note("new1", 1), new_work=True)),
            asyncio.ensure_future(writer.run(note("old1", 2))),
            asyncio.ensure_future(writer.run(note("new2", 3), new_work=True)),
            asyncio.ensure_future(writer.run(note("old2", 4)))]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*jobs) == ["new1", "old1", "new2", "old2"]
    await busy
    assert order == ["old1", "old2", "new1", "new2"]
    assert children(engine) == [1, 2, 3, 4]
