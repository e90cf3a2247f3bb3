"""The real app served by uvicorn on a loopback port inside the test's own event loop, with
backends the test built (so it can make keys and look at the database on the same loop).
For streams a test reads as they arrive, and drops mid-way, which an ASGI transport that
buffers the whole response cannot show."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.wiring import Backends, build_backends


@dataclass
class Live:
    url: str
    backends: Backends
    key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}


@contextlib.asynccontextmanager
async def live_app(settings: Settings, *, with_worker: bool | None = None
                   ) -> AsyncIterator[Live]:
    backends = await build_backends(settings, with_worker=with_worker)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build_app(settings, backends), log_config=None,
                                           access_log=False, ws="none", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.01)
        key, _ = await backends.keys.create("live")
        yield Live(f"http://127.0.0.1:{sock.getsockname()[1]}", backends, key)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 10)
        sock.close()
        await backends.aclose()


@dataclass(frozen=True)
class Event:
    id: str | None
    name: str
    data: dict[str, Any]


async def read_events(response: httpx.Response) -> AsyncIterator[Event | str]:
    """The events of an SSE response as they arrive; comments as plain strings."""
    event_id: str | None = None
    name, data = "", ""
    async for line in response.aiter_lines():
        if line == "":
            if name:
                yield Event(event_id, name, json.loads(data))
            event_id, name, data = None, "", ""
        elif line.startswith(":"):
            yield line[1:].strip()
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data += line[6:]
