"""Answers drained from the connection as they arrive (`providers/draining.py`): the pieces
reach the answer's body from the protocol's callbacks, whole and in order, with the cap, the
deadline and a dropped connection seen as before, and a piece that can only wait hands the
rest back to the reader."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from imagegate.errors import ProviderError
from imagegate.providers.draining import (
    AnswerTooLarge,
    DrainingConnector,
    DrainingHandler,
    read_body,
)
from imagegate.providers.holding import Holding, ResultBudget, holding
from imagegate.providers.spool import AnswerBody, AnswerSpool
from imagegate.providers.upstream import UpstreamClient
from tests.providers.test_upstream_client import channel, serve_get

pytestmark = pytest.mark.anyio

IMAGE = b"QUJD" * 250_000  # a million base64 characters
ANSWER = b'{"data": [{"b64_json": "' + IMAGE + b'"}]}'


async def pieces(request: web.Request, data: bytes, size: int, pause: float = 0.0,
                 encoding: str | None = None) -> web.StreamResponse:
    """`data` chunked, `size` bytes per piece (no Content-Length)."""
    headers = {"Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    response = web.StreamResponse(headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(data), size):
        await response.write(data[start:start + size])
        if pause:
            await asyncio.sleep(pause)
    await response.write_eof()
    return response


async def failure_code(url: str, max_response_bytes: int = 10**9, **channel_kw: float) -> str:
    """The code of the ProviderError an UpstreamClient's GET of `/result` raises."""
    client = UpstreamClient(channel(url, **channel_kw), max_response_bytes=max_response_bytes)
    try:
        with pytest.raises(ProviderError) as info:
            await asyncio.wait_for(client.get_json("/result"), 10)
    finally:
        await client.aclose()
    return info.value.code


class Counted(AnswerBody):
    """An AnswerBody that counts the pieces taken without waiting and with."""

    __slots__ = ("now", "waited")

    def __init__(self, held: Holding | None) -> None:
        super().__init__(held)
        self.now = self.waited = 0

    def add_now(self, chunk: bytes) -> bool:
        added = super().add_now(chunk)
        self.now += added
        return added

    async def add(self, chunk: bytes) -> None:
        self.waited += 1
        await super().add(chunk)


async def test_upstream_connections_hand_their_pieces_over_in_the_callback() -> None:
    """The connector's connections speak through DrainingHandler (this fails if aiohttp
    stops building protocols from the factory DrainingConnector sets), and every piece of
    the body reaches it without the reader waiting for one."""
    async def answer(request: web.Request) -> web.StreamResponse:
        return await pieces(request, ANSWER, 64 * 1024, pause=0.001)

    async with serve_get(answer, "/v1/result") as url, \
            aiohttp.ClientSession(connector=DrainingConnector(),
                                  read_bufsize=16 * 1024) as session, \
            session.get(url + "/v1/result") as response:
        assert response.connection is not None
        assert isinstance(response.connection.protocol, DrainingHandler)
        body = Counted(None)
        await read_body(response, body, len(ANSWER), None)
        assert await body.finish() == ANSWER
    assert body.waited == 0 and body.now > 1


async def test_many_small_compressed_pieces_arrive_whole_and_in_order() -> None:
    """Taking a piece out resumes aiohttp's parser inside the callback (here: gzip, and more
    pieces than aiohttp lets wait): the pieces it parses then must not jump the queue."""
    packed = gzip.compress(ANSWER, compresslevel=1)

    async def answer(request: web.Request) -> web.StreamResponse:
        return await pieces(request, packed, 97, encoding="gzip")

    async with serve_get(answer, "/v1/result") as url:
        client = UpstreamClient(channel(url))
        try:
            result = await client.get_json("/result")
        finally:
            await client.aclose()
    assert result["data"][0]["b64_json"] == IMAGE.decode()


async def test_a_piece_that_can_only_wait_hands_the_rest_to_the_reader(
        tmp_path: Path) -> None:
    """No room in memory and no spool file: the drain stops and the reader waits for room
    with the rest in the socket; once room comes the answer is whole."""
    budget = ResultBudget(100_000, spool=AnswerSpool(10**9, tmp_path / "missing"))
    other = Holding(budget)
    await other.take(100_000)

    async def answer(request: web.Request) -> web.StreamResponse:
        return await pieces(request, ANSWER, 64 * 1024)

    async with serve_get(answer, "/v1/result") as url, \
            aiohttp.ClientSession(connector=DrainingConnector(),
                                  read_bufsize=16 * 1024) as session, \
            session.get(url + "/v1/result") as response:
        with holding(budget) as held:
            body = Counted(held)
            reading = asyncio.create_task(read_body(response, body, len(ANSWER), None))
            await asyncio.sleep(0.3)
            assert not reading.done() and held.held == 0 and body.waited == 1
            other.release()
            await asyncio.wait_for(reading, 10)
            assert await body.finish() == ANSWER
    assert budget.used == 0


async def test_a_body_past_the_cap_is_refused_mid_way() -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return await pieces(request, ANSWER, 64 * 1024)

    async with serve_get(answer, "/v1/result") as url:
        async with aiohttp.ClientSession(connector=DrainingConnector()) as session, \
                session.get(url + "/v1/result") as response:
            body = AnswerBody(None)
            with pytest.raises(AnswerTooLarge):
                await read_body(response, body, 300_000, None)
            assert body.size <= 300_000
        assert await failure_code(url, max_response_bytes=300_000) == "upstream_bad_response"


async def test_a_body_that_stalls_past_the_channel_timeout_times_out() -> None:
    """Headers at once, then the body stops: the channel's `timeout` still ends the call
    (aiohttp's own `total` timeout interrupts only its own reads)."""
    release = asyncio.Event()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(ANSWER[:100_000])
        await release.wait()
        return response

    async with serve_get(answer, "/v1/result") as url:
        try:
            assert await failure_code(url, timeout=0.5) == "upstream_timeout"
        finally:
            release.set()


async def test_a_connection_dropped_mid_body_is_unavailable() -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Content-Length": str(len(ANSWER))})
        await response.prepare(request)
        await response.write(ANSWER[:200_000])
        assert request.transport is not None
        request.transport.close()
        return response

    async with serve_get(answer, "/v1/result") as url:
        assert await failure_code(url) == "upstream_unavailable"
