"""Reading an upstream answer's body in the callback that delivers it from the socket.

aiohttp keeps a body's pieces in the response's `StreamReader` and stops reading the socket
once twice `read_bufsize` waits there; a reader takes them out one `await` at a time. When
2,000 answers arrive at once, every socket is read in the same turn of the event loop (up to
256 KB each, uvloop's read size) before any reader runs: in a burst of 2 MiB results that
was most of a 1.2 GB peak, and each piece cost a coroutine wake-up besides.

`DrainingConnector` builds connections whose protocol (`DrainingHandler`) hands the pieces
to the answer's `Drain` as soon as aiohttp's parser has them, in the same callback: each is
counted against the cap, then kept (the run's holding has room) or written to the spool
file (`providers/spool.py`), and let go before the next socket is read. The reading
coroutine wakes once, at the end of the body. A piece that could only wait (no room in
memory, no spool file to take it) stops the drain, and the reader goes on piece by piece with
waits, as before: the socket then holds the rest.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from imagegate.providers.spool import AnswerBody


class AnswerTooLarge(Exception):
    """The body grew past the cap it was read within."""


class Drain:
    """Moves what a response's `StreamReader` holds into an `AnswerBody`, without waiting."""

    __slots__ = ("_body", "_cap", "_content", "_pulling", "error", "pending", "stopped")

    def __init__(self, body: AnswerBody, content: aiohttp.StreamReader, cap: int) -> None:
        self._body, self._content, self._cap = body, content, cap
        # Done when the drain can go no further: a piece must wait for room (it is left in
        # `pending`), or the body cannot be read (`error`).
        self.stopped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending = b""
        self.error: Exception | None = None
        self._pulling = False

    def pull(self) -> None:
        """Everything the response holds now into the body, or stop (see `stopped`). Runs in
        the protocol's callbacks, so it raises nothing."""
        stopped = self.stopped
        # Taking a piece out can resume aiohttp's parser, which parses what it had held
        # back and calls `data_received` again, inside this loop: that call must leave the
        # new pieces to this loop, or they would be added before the one in hand.
        if stopped.done() or self._pulling:
            return
        self._pulling = True
        try:
            while True:
                chunk = self._content.read_nowait()  # everything; raises the body's error
                if not chunk:
                    return
                if self._body.size + len(chunk) > self._cap:
                    raise AnswerTooLarge
                if not self._body.add_now(chunk):
                    self.pending = chunk
                    stopped.set_result(None)
                    return
        except Exception as exc:
            self.error = exc
            stopped.set_result(None)
        finally:
            self._pulling = False


class DrainingHandler(ResponseHandler):
    """aiohttp's response protocol, which also hands each piece of a body to the drain set
    on it (by `read_body`, for that response only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.drain: Drain | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        drain = self.drain
        if drain is not None:
            drain.pull()


class DrainingConnector(aiohttp.TCPConnector):
    """A `TCPConnector` whose connections speak through `DrainingHandler`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # aiohttp makes each connection's protocol with this factory. It is not public API:
        # the version is pinned (uv.lock), and tests/providers/test_draining.py fails if a
        # new one stops using it.
        self._factory = functools.partial(DrainingHandler, loop=self._loop)  # type: ignore[assignment]


async def read_body(response: aiohttp.ClientResponse, body: AnswerBody, cap: int,
                    deadline: float | None) -> None:
    """Read `response`'s body into `body`: drained as it arrives where the connection has a
    `DrainingHandler`, else (and once a drain stopped) piece by piece. Raises AnswerTooLarge
    past `cap` bytes, TimeoutError at `deadline` (the loop's clock; aiohttp's own `total`
    timeout only interrupts its own reads), and aiohttp's errors as they come."""
    content = response.content
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    if isinstance(protocol, DrainingHandler) and not content.at_eof():
        drain = Drain(body, content, cap)
        protocol.drain = drain
        try:
            drain.pull()  # what came with the headers
            if not drain.stopped.done() and not content.is_eof():
                await _until_end(content, drain.stopped, deadline)
        finally:
            protocol.drain = None
        if drain.error is not None:
            raise drain.error
        if drain.pending:
            await body.add(drain.pending)
    async for chunk in content.iter_any():
        if body.size + len(chunk) > cap:
            raise AnswerTooLarge
        await body.add(chunk)


async def _until_end(content: aiohttp.StreamReader, stopped: asyncio.Future[None],
                     deadline: float | None) -> None:
    """Wait for the body's end (or its error) or for the drain to stop, by `deadline`."""
    end = asyncio.ensure_future(content.wait_eof())
    try:
        async with asyncio.timeout_at(deadline):
            await asyncio.wait((end, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not end.done():
            end.cancel()
            await asyncio.wait((end,))  # its `finally` clears the reader's eof waiter
    if not end.cancelled():
        end.result()  # the connection's error (a payload error, a read timeout)
