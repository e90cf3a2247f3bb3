"""`GET /admin/webhooks/deliveries` and `POST /admin/webhooks/deliveries/{id}/retry`: every
key's delivery log for the admin console, on the real app (SQLite)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.tables import webhook_deliveries
from imagegate.wiring import Backends, build_backends

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer test-admin-token"}


class Env:
    def __init__(self, client: httpx.AsyncClient, backends: Backends) -> None:
        self.client = client
        self.backends = backends
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1

    async def stop(self) -> None:
        """Backends.aclose stops its dispatcher; this stand-in has nothing to stop."""

    async def key(self) -> tuple[str, dict[str, str]]:
        plaintext, key = await self.backends.keys.create("t")
        return key.id, {"Authorization": f"Bearer {plaintext}"}

    async def delivery(self, key_id: str, n: int, status: str = "pending", **extra: Any) -> str:
        msg_id = f"msg_{key_id[-6:]}_{n:03d}"
        values: dict[str, Any] = {
            "id": msg_id, "key_id": key_id, "task_id": f"task_{n}",
            "event": "image.task.succeeded", "url": "https://example.com/h", "payload": None,
            "status": status, "attempts": 0, "next_attempt_at": time.time(),
            "created_at": 1_700_000_000 + n,
        }
        await self.backends.db.write(webhook_deliveries.insert().values({**values, **extra}))
        return msg_id


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path, blob_store="memory", run_workers=False,
                        admin_token="test-admin-token")
    backends = await build_backends(settings)
    app = build_app(settings, backends)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        e = Env(client, backends)
        backends.dispatcher = e  # type: ignore[assignment]  # counts wake-ups
        try:
            yield e
        finally:
            await backends.aclose()


async def test_lists_every_keys_deliveries_newest_first(env: Env) -> None:
    a, _ = await env.key()
    b, _ = await env.key()
    ids = [await env.delivery(a, 1), await env.delivery(b, 2), await env.delivery(a, 3)]
    r = await env.client.get("/admin/webhooks/deliveries?limit=2", headers=ADMIN)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [d["id"] for d in page["data"]] == [ids[2], ids[1]] and page["has_more"] is True
    assert [d["key_id"] for d in page["data"]] == [a, b]
    rest = (await env.client.get(f"/admin/webhooks/deliveries?after={page['last_id']}",
                                 headers=ADMIN)).json()
    assert [d["id"] for d in rest["data"]] == [ids[0]] and rest["has_more"] is False
    only_b = (await env.client.get(f"/admin/webhooks/deliveries?key_id={b}",
                                   headers=ADMIN)).json()
    assert [d["id"] for d in only_b["data"]] == [ids[1]]
    by_task = (await env.client.get("/admin/webhooks/deliveries?task_id=task_3",
                                    headers=ADMIN)).json()
    assert [d["id"] for d in by_task["data"]] == [ids[2]]


async def test_bad_queries_are_400(env: Env) -> None:
    for bad in ("limit=0", "limit=101", "after=msg_nope", "after=x&before=y"):
        r = await env.client.get(f"/admin/webhooks/deliveries?{bad}", headers=ADMIN)
        assert r.status_code == 400, bad
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}


async def test_needs_the_admin_token(env: Env) -> None:
    key, auth = await env.key()
    failed = await env.delivery(key, 1, status="failed")
    assert (await env.client.get("/admin/webhooks/deliveries")).status_code == 401
    # An API key is not the admin token, even its owner's.
    assert (await env.client.get("/admin/webhooks/deliveries", headers=auth)).status_code == 403
    r = await env.client.post(f"/admin/webhooks/deliveries/{failed}/retry", headers=auth)
    assert r.status_code == 403
    rows = await env.backends.db.read(webhook_deliveries.select())
    assert rows[0]["status"] == "failed" and env.notified == 0


async def test_retry_any_keys_failed_delivery(env: Env) -> None:
    key, _ = await env.key()
    failed = await env.delivery(key, 1, status="failed", attempts=8, last_error="HTTP 500")
    delivered = await env.delivery(key, 2, status="delivered")
    r = await env.client.post(f"/admin/webhooks/deliveries/{failed}/retry", headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "pending" and body["attempts"] == 0 and body["key_id"] == key
    assert env.notified == 1
    r = await env.client.post(f"/admin/webhooks/deliveries/{delivered}/retry", headers=ADMIN)
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery_not_failed"
    r = await env.client.post("/admin/webhooks/deliveries/msg_nope/retry", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found"
    assert env.notified == 1
