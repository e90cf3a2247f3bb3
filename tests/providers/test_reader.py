"""The upstream reader (`providers/reader.py`): exchanges handed to an event loop in a thread
of its own and their outcomes handed back, the answer budget shared by two loops, and the
upstream client reading a run's answers there over a real loopback server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import pytest
from aiohttp import web

from imagegate.errors import ProviderError
from imagegate.providers.holding import Holding, HoldingClosed, ResultBudget, holding
from imagegate.providers.reader import AnswerReader
from imagegate.providers.spool import AnswerSpool
from imagegate.providers.upstream import UpstreamClient
from tests.providers.test_upstream_client import channel, serve_get

pytestmark = pytest.mark.anyio
T = TypeVar("T")


async def via(reader: AnswerReader, coro: Coroutine[Any, Any, T]) -> T:
    """A caller's task awaiting `reader.run(coro)`, as a run awaits its upstream call."""
    return await reader.run(coro)


@pytest.fixture
async def reader() -> AsyncIterator[AnswerReader]:
    r = AnswerReader()
    r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_a_coroutine_runs_on_the_readers_thread_and_its_result_comes_back(
        reader: AnswerReader) -> None:
    async def where() -> int:
        await asyncio.sleep(0)
        return threading.get_ident()

    assert await reader.run(where()) != threading.get_ident()
    assert reader.loop is not None and reader.loop is not asyncio.get_running_loop()


async def test_its_exception_comes_back_as_raised(reader: AnswerReader) -> None:
    async def fail() -> None:
        raise ProviderError("the upstream said no", code="upstream_error")

    with pytest.raises(ProviderError, match="said no"):
        await reader.run(fail())


async def test_cancelling_the_caller_cancels_the_coroutine_there(reader: AnswerReader) -> None:
    started, ended = threading.Event(), threading.Event()

    async def held() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            ended.set()

    call = asyncio.create_task(via(reader, held()))
    assert await asyncio.to_thread(started.wait, 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await asyncio.to_thread(ended.wait, 5)


async def test_without_a_running_reader_it_runs_here() -> None:
    async def where() -> int:
        return threading.get_ident()

    idle = AnswerReader()
    assert await idle.run(where()) == threading.get_ident()  # never started
    idle.start()
    await idle.stop()
    assert idle.loop is None
    assert await idle.run(where()) == threading.get_ident()  # stopped


async def test_stop_ends_the_thread_and_cancels_what_was_left(reader: AnswerReader) -> None:
    started = threading.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    call = asyncio.create_task(via(reader, forever()))
    assert await asyncio.to_thread(started.wait, 5)
    names = {t.name for t in threading.enumerate()}
    assert "imagegate-upstream" in names
    await reader.stop()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 5)  # its caller hears of it instead of waiting forever
    assert "imagegate-upstream" not in {t.name for t in threading.enumerate()}


# -- the budget across two loops


async def test_a_give_from_another_thread_wakes_a_waiter_on_its_own_loop(
        reader: AnswerReader) -> None:
    budget = ResultBudget(100)
    mine = Holding(budget)
    await mine.take(100)

    async def wait_for_room() -> int:
        theirs = Holding(budget)
        await theirs.take(60)
        held = theirs.held
        theirs.release()
        return held

    waiting = asyncio.create_task(via(reader, wait_for_room()))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    mine.release()  # on this loop; the waiter is on the reader's
    assert await asyncio.wait_for(waiting, 5) == 60
    assert budget.used == 0


async def test_a_waiter_cancelled_as_its_bytes_were_counted_hands_them_on(
        reader: AnswerReader) -> None:
    """The give counts the waiter's bytes and queues its wake-up on the reader's loop; a
    cancel queued right behind it lands before the waiter runs. It must give them back."""
    budget = ResultBudget(100)
    mine = Holding(budget)
    await mine.take(100)
    loop = reader.loop
    assert loop is not None
    tasks: list[asyncio.Task[None]] = []

    async def start_waiter() -> None:
        tasks.append(asyncio.create_task(Holding(budget).take(50)))

    await reader.run(start_waiter())
    await asyncio.sleep(0.05)
    mine.release()  # counts the waiter's 50 and queues its wake-up...
    loop.call_soon_threadsafe(tasks[0].cancel)  # ...and the cancel right behind it

    async def outcome() -> bool:
        await asyncio.wait(tasks)
        return tasks[0].cancelled()

    assert await reader.run(outcome())
    assert budget.used == 0
    late = Holding(budget)
    await asyncio.wait_for(late.take(100), 5)  # nothing left counted, nobody in line
    late.release()


async def test_a_released_holding_takes_nothing_more() -> None:
    budget = ResultBudget(100)
    run = Holding(budget)
    await run.take(10)
    run.release()
    with pytest.raises(HoldingClosed):
        run.try_take(10)
    with pytest.raises(HoldingClosed):
        await run.take(10)
    assert budget.used == 0 and run.held == 0


async def test_a_holding_released_while_it_waits_gives_the_bytes_back() -> None:
    budget = ResultBudget(100)
    other = Holding(budget)
    await other.take(100)
    run = Holding(budget)
    waiting = asyncio.create_task(run.take(50))
    await asyncio.sleep(0.01)
    run.release()  # the run ended (cancelled) while its exchange still waited
    other.release()
    with pytest.raises(HoldingClosed):
        await asyncio.wait_for(waiting, 5)
    assert budget.used == 0


# -- the upstream client on the reader's loop

ANSWER = b'{"data": [{"b64_json": "' + b"A" * 300_000 + b'"}]}'


async def test_a_runs_exchange_is_read_on_the_reader_and_counted_for_the_run(
        reader: AnswerReader) -> None:
    seen: list[int] = []

    async def answer(_request: web.Request) -> web.Response:
        return web.Response(body=ANSWER, content_type="application/json")

    budget = ResultBudget(100_000, spool=AnswerSpool(10**8), reader=reader)
    async with serve_get(answer, "/v1/result") as url:
        client = UpstreamClient(channel(url))
        original = client._parsed

        def parsed(status: int, headers: object, body: bytes) -> object:
            seen.append(threading.get_ident())
            return original(status, headers, body)  # type: ignore[arg-type]

        client._parsed = parsed  # type: ignore[method-assign]
        try:
            with holding(budget) as run:
                assert run is not None
                got = await client.get_json("/result")
                assert len(got["data"][0]["b64_json"]) == 300_000
                # Larger than the budget: it went through a spool file on the reader's
                # loop, and the run holds it now.
                assert run.held == len(ANSWER) and budget.used == len(ANSWER)
            assert budget.used == 0 and budget.spool is not None
            assert budget.spool.room.used == 0
            await client.get_json("/result")  # outside a run: read here
        finally:
            await client.aclose()
    assert seen[0] != threading.get_ident() and seen[1] == threading.get_ident()


async def test_a_cancelled_run_closes_its_upstream_connection(reader: AnswerReader) -> None:
    arrived, gone = asyncio.Event(), asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        for _ in range(1000):  # until the client hangs up (10 s at most)
            transport = request.transport
            if transport is None or transport.is_closing():
                gone.set()
                break
            await asyncio.sleep(0.01)
        return web.Response(body=b"{}")

    budget = ResultBudget(10**6, reader=reader)
    async with serve_get(slow, "/v1/slow") as url:
        client = UpstreamClient(channel(url))
        try:
            async def run() -> None:
                with holding(budget):
                    await client.get_json("/slow")

            call = asyncio.create_task(run())
            await asyncio.wait_for(arrived.wait(), 5)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await asyncio.wait_for(gone.wait(), 5)
        finally:
            await client.aclose()  # closes the session on the reader's loop too
    assert budget.used == 0
