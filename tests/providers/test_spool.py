"""Spool files for answers that do not fit the memory budget (`providers/spool.py`): read off
the socket at once, kept out of memory until the run's holding has room, bounded, nameless,
and never the reason an answer is lost."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from imagegate.providers.holding import Holding, ResultBudget, holding
from imagegate.providers.spool import AnswerBody, AnswerSpool
from imagegate.providers.upstream import UpstreamClient
from tests.providers.test_upstream_client import channel, serve_get

pytestmark = pytest.mark.anyio

IMAGE = b"QUJD" * 175_000  # 700,000 base64 characters
ANSWER = b'{"data": [{"b64_json": "' + IMAGE + b'"}]}'


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.StreamResponse:
        if request.query.get("chunked"):  # no Content-Length: the size is learnt as it comes
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(ANSWER), 100_000):
                await response.write(ANSWER[start:start + 100_000])
            await response.write_eof()
            return response
        return web.Response(body=ANSWER, content_type="application/json")

    async with serve_get(answer, "/v1/result") as url:
        yield url


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def spooled_budget(tmp_path: Path, limit: int = 1_000_000,
                   spool_limit: int = 100_000_000) -> ResultBudget:
    return ResultBudget(limit, spool=AnswerSpool(spool_limit, tmp_path))


async def runs_while_one_holds(client: UpstreamClient, budget: ResultBudget, path: str,
                               check: Callable[[], Any]) -> None:
    """A first run holds the budget while a second one's answer arrives; `check()` runs
    while the second waits; then the first ends and both answers must be whole."""
    first_read, first_may_end = asyncio.Event(), asyncio.Event()

    async def run(read: asyncio.Event | None = None) -> bytes:
        with holding(budget):
            answer = await client.get_json(path)
            if read is not None:
                read.set()
                await first_may_end.wait()
            text = answer["data"][0]["b64_json"]
            return text.encode() if isinstance(text, str) else bytes(text)

    first = asyncio.create_task(run(first_read))
    await asyncio.wait_for(first_read.wait(), 10)
    second = asyncio.create_task(run())
    try:
        await asyncio.sleep(0.3)
        assert not second.done()
        check()
    finally:
        first_may_end.set()
    assert await asyncio.wait_for(first, 10) == IMAGE
    assert await asyncio.wait_for(second, 10) == IMAGE


@pytest.mark.parametrize("path", ["/result", "/result?chunked=1"])
async def test_an_answer_that_does_not_fit_waits_in_a_spool_file_not_its_socket(
        upstream_url: str, tmp_path: Path, path: str) -> None:
    budget = spooled_budget(tmp_path)
    assert budget.spool is not None
    spool = budget.spool
    client = UpstreamClient(channel(upstream_url))

    def read_off_the_socket() -> None:
        # The whole answer is read: what did not fit the budget is in the spool (all of it
        # when its length was known up front), and the file has no name in the directory.
        assert spool.room.used > 0
        assert budget.used + spool.room.used == 2 * len(ANSWER)
        if "chunked" not in path:
            assert spool.room.used == len(ANSWER)
        assert names(tmp_path) == []

    try:
        await runs_while_one_holds(client, budget, path, read_off_the_socket)
    finally:
        await client.aclose()
    assert budget.used == 0 and spool.room.used == 0
    assert names(tmp_path) == []


async def test_without_a_spool_an_answer_that_does_not_fit_waits_unread(
        upstream_url: str, tmp_path: Path) -> None:
    budget = ResultBudget(1_000_000, spool=AnswerSpool(100_000_000, tmp_path / "missing"))
    assert budget.spool is not None
    spool = budget.spool
    client = UpstreamClient(channel(upstream_url))
    try:  # no spool file can be opened there: the answer waits for room in its socket
        await runs_while_one_holds(client, budget, "/result",
                                   lambda: (spool.room.used == 0) or pytest.fail("spooled"))
    finally:
        await client.aclose()
    assert budget.used == 0


def test_a_missing_spool_directory_is_said_once_and_its_return_too(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    spool = AnswerSpool(1000, directory)
    with caplog.at_level(logging.WARNING, logger="imagegate.providers.spool"):
        assert spool.open() is None and spool.open() is None
        directory.mkdir()
        for _ in range(2):
            opened = spool.open()
            assert opened is not None
            opened.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "cannot open a spool file" in messages[0] and "opened again" in messages[1]


async def test_the_spools_bound_holds_later_answers_in_their_sockets(tmp_path: Path) -> None:
    spool = AnswerSpool(1000, tmp_path)
    first, second = spool.open(), spool.open()
    assert first is not None and second is not None
    try:
        await first.write(b"x" * 1000)
        waiting = asyncio.create_task(second.write(b"y" * 10))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the bound is full: the writer (its reader) waits
        assert await first.take_out() == b"x" * 1000  # read back: its bytes are given back
        await asyncio.wait_for(waiting, 5)
        assert spool.room.used == 10
        assert await second.take_out() == b"y" * 10
    finally:
        first.close()
        second.close()
    assert spool.room.used == 0


async def test_a_spool_that_cannot_be_written_goes_on_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = spooled_budget(tmp_path, limit=100)
    assert budget.spool is not None
    other, held = Holding(budget), Holding(budget)
    await other.take(100)
    body = AnswerBody(held)
    await body.add(b"a" * 50)  # does not fit: spooled
    real_write = os.pwrite

    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    adding = asyncio.create_task(body.add(b"b" * 50))  # read back, then waits for room
    await asyncio.sleep(0.05)
    assert not adding.done() and budget.spool.room.used == 0
    monkeypatch.setattr(os, "pwrite", real_write)
    other.release()
    await asyncio.wait_for(adding, 5)
    assert await body.finish() == b"a" * 50 + b"b" * 50
    assert held.held == 100
    held.release()
    assert budget.used == 0


async def test_a_run_cancelled_while_its_answer_is_spooled_leaves_nothing(
        tmp_path: Path) -> None:
    budget = spooled_budget(tmp_path, limit=100)
    assert budget.spool is not None
    other, held = Holding(budget), Holding(budget)
    await other.take(100)
    body = AnswerBody(held)
    await body.add(b"z" * 1000)
    assert budget.spool.room.used == 1000
    finishing = asyncio.create_task(body.finish())
    await asyncio.sleep(0.05)
    finishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await finishing
    body.close()
    other.release()
    held.release()
    assert budget.used == 0 and budget.spool.room.used == 0
