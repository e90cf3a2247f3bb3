"""The dispatcher against real receivers on 127.0.0.1, on SQLite and PostgreSQL.

Receivers verify every request with the independent `standardwebhooks` package and count
TCP connections, so "nothing was sent" is observed, not assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from imagegate.db.database import Database
from imagegate.net.guard import AddressPolicy
from imagegate.webhooks.sender import DispatchConfig, WebhookDispatcher
from imagegate.webhooks.store import Delivery, WebhookStore

pytestmark = pytest.mark.anyio

InsertKey = Callable[..., Awaitable[str]]  # fixtures of tests/webhooks/conftest.py
InsertDelivery = Callable[..., Awaitable[str]]

LOOPBACK_ALLOWED = AddressPolicy.from_config([], ["127.0.0.1/32"])
FAST = DispatchConfig(max_attempts=3, backoff_seconds=0.01, timeout_seconds=2.0,
                      poll_interval=0.05)


class Receiver:
    """Answers each request by the next behaviour ("200", "500", "302", "hang"); the last
    behaviour repeats."""

    def __init__(self, behaviours: list[str], secret: str | None = None) -> None:
        self.behaviours = behaviours
        self.secret = secret
        self.connections = 0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.verified: list[Any] = []
        self._release = asyncio.Event()
        self._server = web.Server(self._handle)
        self._listener: asyncio.Server | None = None
        self.port = 0

    def _protocol(self) -> Any:
        self.connections += 1
        return self._server()

    async def __aenter__(self) -> Receiver:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, "127.0.0.1", 0)
        self.port = self._listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._release.set()
        assert self._listener is not None
        self._listener.close()
        await self._server.shutdown(0.2)  # keep-alive connections: no need to wait
        await self._listener.wait_closed()

    def url(self, host: str = "127.0.0.1", path: str = "/hook") -> str:
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        headers = dict(request.headers)
        self.requests.append((headers, body))
        if self.secret is not None:
            self.verified.append(Webhook(self.secret).verify(body, headers))
        action = self.behaviours[min(len(self.requests), len(self.behaviours)) - 1]
        if action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), 10)
            return web.Response(status=200)
        if action == "302":
            return web.Response(status=302, headers={"Location": self.url(path="/elsewhere")})
        return web.Response(status=int(action))


class Harness:
    def __init__(self, db: Database, insert_key: InsertKey,
                 insert_delivery: InsertDelivery) -> None:
        self.store = WebhookStore(db)
        self.insert_key = insert_key
        self.insert_delivery = insert_delivery
        self.dispatchers: list[WebhookDispatcher] = []
        self.rendered: list[str] = []
        self.render_none = False

    async def render(self, task_id: str) -> dict[str, Any] | None:
        self.rendered.append(task_id)
        if self.render_none:
            return None
        return {"id": task_id, "object": "image.task", "status": "succeeded"}

    async def start(self, policy: AddressPolicy = LOOPBACK_ALLOWED,
                    config: DispatchConfig = FAST) -> WebhookDispatcher:
        dispatcher = WebhookDispatcher(self.store, self.render, policy, config)
        self.dispatchers.append(dispatcher)
        await dispatcher.start()
        return dispatcher

    async def key(self) -> tuple[str, str]:
        key_id = await self.insert_key()
        return key_id, await self.store.key_secret(key_id)  # created lazily, as for old keys

    async def settled(self, delivery_id: str, key_id: str) -> Delivery:
        for _ in range(400):
            d = await self.store.get_for_key(delivery_id, key_id)
            assert d is not None
            if d.status != "pending":
                return d
            await asyncio.sleep(0.025)
        raise AssertionError(f"delivery {delivery_id} still pending: {d}")


@pytest.fixture
async def h(wdb: Database, insert_key: InsertKey,
            insert_delivery: InsertDelivery) -> AsyncIterator[Harness]:
    harness = Harness(wdb, insert_key, insert_delivery)
    try:
        yield harness
    finally:
        for dispatcher in harness.dispatchers:
            await dispatcher.stop()


async def test_delivered_once_with_signed_headers(h: Harness) -> None:
    key, secret = await h.key()
    async with Receiver(["200"], secret) as rx:
        did = await h.insert_delivery(key, rx.url(), task_id="task_1")
        await h.start()
        d = await h.settled(did, key)
    assert d.status == "delivered" and d.attempts == 1 and d.last_status_code == 200
    assert d.last_error is None and d.delivered_at is not None
    assert len(rx.requests) == 1 and rx.connections == 1
    headers, body = rx.requests[0]
    assert headers["webhook-id"] == did
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    payload = rx.verified[0]
    assert payload["type"] == "task.succeeded"
    assert payload["data"] == {"id": "task_1", "object": "image.task", "status": "succeeded"}
    assert payload["timestamp"].endswith("Z")
    assert body == (d.payload or "").encode() and json.loads(body) == payload


async def test_retries_on_500_with_the_same_id_and_body(h: Harness) -> None:
    key, secret = await h.key()
    async with Receiver(["500", "500", "200"], secret) as rx:
        did = await h.insert_delivery(key, rx.url())
        await h.start()
        d = await h.settled(did, key)
    assert d.status == "delivered" and d.attempts == 3 and d.last_status_code == 200
    assert len(rx.requests) == 3 and len(rx.verified) == 3  # every attempt verified
    assert {r[0]["webhook-id"] for r in rx.requests} == {did}
    assert len({r[1] for r in rx.requests}) == 1  # byte-identical bodies
    assert h.rendered == [d.task_id]  # rendered once, at the first attempt


async def test_a_hanging_receiver_is_retried(h: Harness) -> None:
    key, secret = await h.key()
    config = DispatchConfig(max_attempts=3, backoff_seconds=0.01, timeout_seconds=0.3,
                            poll_interval=0.05)
    async with Receiver(["hang", "200"], secret) as rx:
        did = await h.insert_delivery(key, rx.url())
        await h.start(config=config)
        d = await h.settled(did, key)
    assert d.status == "delivered" and d.attempts == 2
    assert len(rx.requests) == 2


async def test_gives_up_after_max_attempts(h: Harness) -> None:
    key, _ = await h.key()
    async with Receiver(["500"]) as rx:
        did = await h.insert_delivery(key, rx.url())
        await h.start()
        d = await h.settled(did, key)
    assert d.status == "failed" and d.attempts == 3
    assert d.last_status_code == 500 and d.last_error == "HTTP 500"
    assert len(rx.requests) == 3


async def test_redirects_are_not_followed(h: Harness) -> None:
    key, _ = await h.key()
    async with Receiver(["302"]) as rx:
        did = await h.insert_delivery(key, rx.url())
        await h.start(config=DispatchConfig(max_attempts=2, backoff_seconds=0.01,
                                            poll_interval=0.05))
        d = await h.settled(did, key)
    assert d.status == "failed" and d.last_status_code == 302
    assert "redirect" in (d.last_error or "")
    assert [r[0].get("webhook-id") for r in rx.requests] == [did, did]  # never /elsewhere


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_private_addresses_are_never_contacted(h: Harness, host: str) -> None:
    key, _ = await h.key()
    async with Receiver(["200"]) as rx:
        did = await h.insert_delivery(key, rx.url(host))
        await h.start(policy=AddressPolicy())  # the default: nothing private allowed
        d = await h.settled(did, key)
    assert rx.connections == 0 and rx.requests == []
    assert d.status == "failed" and d.attempts == 1  # permanent: no retries
    assert d.last_status_code is None
    assert "refused" in (d.last_error or "") and "loopback" in (d.last_error or "")


async def test_notify_wakes_the_dispatcher(h: Harness) -> None:
    key, _ = await h.key()
    async with Receiver(["200"]) as rx:
        dispatcher = await h.start(config=DispatchConfig(poll_interval=60))
        await asyncio.sleep(0.1)  # the first (empty) poll is done; next one is a minute off
        did = await h.insert_delivery(key, rx.url())
        dispatcher.notify()
        d = await h.settled(did, key)
    assert d.status == "delivered"


async def test_a_vanished_task_fails_the_delivery(h: Harness) -> None:
    key, _ = await h.key()
    h.render_none = True
    async with Receiver(["200"]) as rx:
        did = await h.insert_delivery(key, rx.url())
        await h.start()
        d = await h.settled(did, key)
    assert d.status == "failed" and "no longer exists" in (d.last_error or "")
    assert rx.connections == 0


async def test_stop_hands_leases_back(h: Harness) -> None:
    key, _ = await h.key()
    async with Receiver(["hang"]) as rx:
        did = await h.insert_delivery(key, rx.url())
        dispatcher = await h.start()
        for _ in range(200):
            if rx.requests:
                break
            await asyncio.sleep(0.025)
        assert rx.requests
        await dispatcher.stop()
        h.dispatchers.remove(dispatcher)
    d = await h.store.get_for_key(did, key)
    assert d is not None and d.status == "pending" and d.lease_owner is None
    assert d.attempts == 0  # the interrupted attempt does not count
