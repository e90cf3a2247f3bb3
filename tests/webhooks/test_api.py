"""The owner's webhook routes, mounted on the real app (SQLite)."""

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
from imagegate.webhooks.store import WebhookStore
from imagegate.wiring import Backends, build_backends

pytestmark = pytest.mark.anyio


class Env:
    def __init__(self, client: httpx.AsyncClient, backends: Backends) -> None:
        self.client = client
        self.backends = backends
        self.store = WebhookStore(backends.db)
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
            "id": msg_id, "key_id": key_id, "task_id": f"task_{n % 2}",
            "event": "task.succeeded", "url": "https://example.com/h", "payload": None,
            "status": status, "attempts": 0, "next_attempt_at": time.time(),
            "created_at": 1_700_000_000 + n,
        }
        await self.backends.db.write(webhook_deliveries.insert().values({**values, **extra}))
        return msg_id


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path, blob_store="memory", run_workers=False)
    backends = await build_backends(settings)
    app = build_app(settings, backends)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        e = Env(client, backends)
        # A stand-in dispatcher that counts wake-ups (no worker runs here).
        backends.dispatcher = e  # type: ignore[assignment]
        try:
            yield e
        finally:
            await backends.aclose()


async def test_settings_show_the_secret(env: Env) -> None:
    _, auth = await env.key()
    r = await env.client.get("/v1/webhooks", headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] is None and body["secret"].startswith("whsec_")
    again = (await env.client.get("/v1/webhooks", headers=auth)).json()
    assert again["secret"] == body["secret"]
    assert (await env.client.get("/v1/webhooks")).status_code == 401


async def test_log_pages_and_is_private(env: Env) -> None:
    key, auth = await env.key()
    other, other_auth = await env.key()
    ids = [await env.delivery(key, n) for n in range(5)]
    foreign = await env.delivery(other, 9)
    r = await env.client.get("/v1/webhooks/deliveries?limit=2", headers=auth)
    page = r.json()
    assert r.status_code == 200 and page["object"] == "list" and page["has_more"] is True
    assert [d["id"] for d in page["data"]] == [ids[4], ids[3]]
    entry = page["data"][0]
    assert set(entry) >= {"id", "task_id", "event", "url", "status", "attempts",
                          "last_status_code", "last_error", "created_at", "delivered_at",
                          "next_attempt_at"}
    seen = [d["id"] for d in page["data"]]
    while page["has_more"]:
        page = (await env.client.get(
            f"/v1/webhooks/deliveries?limit=2&after={page['last_id']}", headers=auth)).json()
        seen += [d["id"] for d in page["data"]]
    assert seen == ids[::-1]
    back = (await env.client.get(f"/v1/webhooks/deliveries?limit=2&before={ids[1]}",
                                 headers=auth)).json()
    assert [d["id"] for d in back["data"]] == [ids[3], ids[2]] and back["has_more"] is True
    by_task = (await env.client.get("/v1/webhooks/deliveries?task_id=task_1",
                                    headers=auth)).json()
    assert {d["id"] for d in by_task["data"]} == {ids[1], ids[3]}
    one = await env.client.get(f"/v1/webhooks/deliveries/{ids[0]}", headers=auth)
    assert one.status_code == 200 and one.json()["id"] == ids[0]
    for path in (f"/v1/webhooks/deliveries/{foreign}", "/v1/webhooks/deliveries/msg_nope"):
        r = await env.client.get(path, headers=auth)
        assert r.status_code == 404 and r.json()["error"]["code"] == "delivery_not_found"
    assert (await env.client.get(f"/v1/webhooks/deliveries/{foreign}",
                                 headers=other_auth)).status_code == 200
    for bad in ("limit=0", "limit=101", "limit=x", f"after={foreign}"):
        r = await env.client.get(f"/v1/webhooks/deliveries?{bad}", headers=auth)
        assert r.status_code == 400, bad


@pytest.mark.parametrize("limit", ["+2", "02", "%202", "2%20", "1_0", "%EF%BC%92", "2.0"])
async def test_limit_only_in_canonical_form(env: Env, limit: str) -> None:
    _, auth = await env.key()
    assert (await env.client.get("/v1/webhooks/deliveries?limit=2", headers=auth)
            ).status_code == 200
    r = await env.client.get(f"/v1/webhooks/deliveries?limit={limit}", headers=auth)
    assert r.status_code == 400, limit
    assert r.json()["error"]["param"] == "limit"


async def test_retry_requeues_only_failed(env: Env) -> None:
    key, auth = await env.key()
    _, other_auth = await env.key()
    failed = await env.delivery(key, 1, status="failed", attempts=8, last_error="HTTP 500")
    delivered = await env.delivery(key, 2, status="delivered")
    r = await env.client.post(f"/v1/webhooks/deliveries/{failed}/retry", headers=other_auth)
    assert r.status_code == 404
    r = await env.client.post(f"/v1/webhooks/deliveries/{failed}/retry", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
    assert env.notified == 1
    r = await env.client.post(f"/v1/webhooks/deliveries/{delivered}/retry", headers=auth)
    assert r.status_code == 409 and r.json()["error"]["code"] == "delivery_not_failed"
    r = await env.client.post(f"/v1/webhooks/deliveries/{failed}/retry", headers=auth)
    assert r.status_code == 409  # pending again
