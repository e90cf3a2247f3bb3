"""Helpers for the accounts flow tests: the real app in process (httpx over ASGI, the sandbox
provider, a real database) with an admin token, and a webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from imagegate.accounts.keys import ApiKey
from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.database import read_scalar
from imagegate.db.tables import api_keys, ledger, tasks
from imagegate.wiring import Backends, build_backends

ADMIN_TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SUBMIT = "/v1/images/generations?async=true"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# The PostgreSQL test database lives for the whole session: each app starts it empty.
_TABLES = ("tasks, api_keys, ledger, idempotency_keys, webhook_deliveries, moderation_lists, "
           "moderation_refusals")


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout: float = 15.0, step: float = 0.02) -> None:
    """Poll `check` until it holds; fail naming `what` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


class App:
    def __init__(self, client: httpx.AsyncClient, backends: Backends) -> None:
        self.client = client
        self.backends = backends

    # -- keys and money, read straight from the database (the source of truth)
    async def key(self, name: str = "k", **options: Any) -> tuple[str, ApiKey]:
        return await self.backends.keys.create(name, **options)

    async def balance(self, key_id: str) -> int | None:
        value = await read_scalar(self.backends.db, sa.select(api_keys.c.balance)
                                  .where(api_keys.c.id == key_id))
        return None if value is None else int(value)

    async def ledger_sum(self, key_id: str) -> int:
        return int(await read_scalar(
            self.backends.db,
            sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
            .where(ledger.c.key_id == key_id)))

    async def ledger_kinds(self, key_id: str, task_id: str | None = None) -> list[str]:
        stmt = sa.select(ledger.c.kind).where(ledger.c.key_id == key_id).order_by(ledger.c.id)
        if task_id is not None:
            stmt = stmt.where(ledger.c.task_id == task_id)
        return [r["kind"] for r in await self.backends.db.read(stmt)]

    async def task_count(self, key_id: str | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(tasks)
        if key_id is not None:
            stmt = stmt.where(tasks.c.key_id == key_id)
        return int(await read_scalar(self.backends.db, stmt))

    def price(self, model: str = "gpt-image-2", tier: str = "1k", quality: str = "auto") -> int:
        return self.backends.catalog.models[model].price(tier, quality)

    # -- HTTP
    async def submit(self, plaintext: str, body: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None, path: str = SUBMIT
                     ) -> httpx.Response:
        return await self.client.post(path, json={"prompt": "a red fox", **(body or {})},
                                      headers={**bearer(plaintext), **(headers or {})})

    async def task(self, plaintext: str, task_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/v1/tasks/{task_id}", headers=bearer(plaintext))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def wait_terminal(self, plaintext: str, task_id: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def done() -> bool:
            seen.update(await self.task(plaintext, task_id))
            return seen["status"] in TERMINAL

        await eventually(done, f"task {task_id} to finish")
        return seen

    async def wait_idle(self) -> None:
        """Every task finished (no queued or running one left)."""
        async def idle() -> bool:
            counts = await self.backends.store.count_by_status()
            return not counts.get("queued") and not counts.get("in_progress")

        await eventually(idle, "all tasks to finish", timeout=30.0, step=0.05)

    async def usage(self, plaintext: str) -> dict[str, Any]:
        r = await self.client.get("/v1/usage", headers=bearer(plaintext))
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def deliveries(self, plaintext: str) -> list[dict[str, Any]]:
        r = await self.client.get("/v1/webhooks/deliveries", headers=bearer(plaintext))
        assert r.status_code == 200, r.text
        data: list[dict[str, Any]] = r.json()["data"]
        return data

    async def settled_delivery(self, plaintext: str, task_id: str) -> dict[str, Any]:
        """The task's one delivery once it is no longer pending."""
        found: dict[str, Any] = {}

        async def settled() -> bool:
            mine = [d for d in await self.deliveries(plaintext) if d["task_id"] == task_id]
            assert len(mine) <= 1, mine
            if mine and mine[0]["status"] != "pending":
                found.update(mine[0])
                return True
            return False

        await eventually(settled, f"the webhook delivery of {task_id}", step=0.05)
        return found


@asynccontextmanager
async def open_app(tmp_path: Path, **overrides: Any) -> AsyncIterator[App]:
    """The app with its worker and webhook dispatcher running; fast polling by default."""
    values: dict[str, Any] = {"data_dir": tmp_path, "blob_store": "memory",
                              "admin_token": ADMIN_TOKEN, "poll_interval_seconds": 0.05,
                              "upstream_backoff_seconds": 0.01, **overrides}
    backends = await build_backends(Settings(**values))
    try:
        if backends.db.dialect == "postgresql":
            await backends.db.write(sa.text(f"TRUNCATE {_TABLES}"))
        app = build_app(backends.settings, backends)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=60) as client:
            yield App(client, backends)
    finally:
        await backends.aclose()


HANG = 0  # a Receiver "status": answer nothing until the receiver closes


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers each request with the next status of
    `statuses` (the last repeats; HANG never answers) and counts TCP connections, so
    "nothing was sent" is observed rather than assumed."""

    def __init__(self, statuses: tuple[int, ...] = (200,)) -> None:
        self.statuses = statuses
        self.connections = 0
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._server = web.Server(self._handle)
        self._listener: asyncio.Server | None = None
        self._closing = asyncio.Event()
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
        assert self._listener is not None
        self._closing.set()
        self._listener.close()
        await self._server.shutdown(0.2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listener.wait_closed(), 2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if status == HANG:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), 10)
            status = 200
        return web.Response(status=status)

    def verified(self, secret: str) -> list[Any]:
        """Every request's payload, verified by the independent `standardwebhooks` package
        (raises WebhookVerificationError on a bad signature)."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.requests]
