"""The admin API and `GET /v1/usage`, in process: real SQLite, the default catalog."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from imagegate.api import admin, usage
from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.tables import api_keys, ledger
from imagegate.wiring import Backends, build_backends

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer test-admin-token"}


class Admin:
    def __init__(self, client: httpx.AsyncClient, backends: Backends) -> None:
        self.client = client
        self.backends = backends

    async def call(self, method: str, path: str, body: Any = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.request(method, path, json=body,
                                         headers=ADMIN if headers is None else headers)

    async def create(self, **body: Any) -> dict[str, Any]:
        r = await self.call("POST", "/admin/keys", {"name": "k", **body})
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    async def snapshot(self) -> tuple[list[Any], list[Any]]:
        """Everything a refused request must leave as it was."""
        db = self.backends.db
        keys = [tuple(r.values()) for r in await db.read(
            sa.select(api_keys).order_by(api_keys.c.id))]
        rows = [tuple(r.values()) for r in await db.read(sa.select(ledger).order_by(ledger.c.id))]
        return keys, rows


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Admin]:
    settings = Settings(data_dir=tmp_path, blob_store="memory", run_workers=False,
                        admin_token="test-admin-token")
    backends = await build_backends(settings)
    app = build_app(settings, backends)
    paths = {getattr(r, "path", None) for r in app.routes}
    for router, path in ((admin.router, "/admin/keys"), (usage.router, "/v1/usage")):
        if path not in paths:  # until the app wires them itself
            app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield Admin(client, backends)
        finally:
            await backends.aclose()


async def test_create_get_list(env: Admin) -> None:
    created = await env.create(name="shop", models=["gpt-image-2"], rpm=30, concurrency=2,
                               balance="12.5", expires_at="2099-01-01",
                               webhook_url="https://hooks.example.com/ig")
    assert created["key"].startswith("ig_") and created["prefix"] == created["key"][:10]
    assert created["webhook_secret"].startswith("whsec_")
    assert created["balance"] == "12.50" and created["models"] == ["gpt-image-2"]
    assert created["rpm"] == 30 and created["concurrency"] == 2
    assert created["status"] == "active" and created["expires_at"] == 4070908800.0
    assert "key_hash" not in created
    got = (await env.call("GET", f"/admin/keys/{created['id']}")).json()
    assert got["webhook_secret"] == created["webhook_secret"] and "key" not in got
    listed = (await env.call("GET", "/admin/keys")).json()
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert created["key"] not in str(listed) and "key_hash" not in str(listed)
    # The key works on /v1 and its balance shows in its own usage.
    mine = await env.client.get("/v1/usage", headers={"Authorization": f"Bearer {created['key']}"})
    assert mine.status_code == 200 and mine.json()["balance"] == "12.50"
    assert mine.json()["topups"] == "12.50"
    postpaid = await env.create(balance=None)
    assert postpaid["balance"] is None


async def test_patch_rotate_revoke(env: Admin) -> None:
    created = await env.create(rpm=5, models=["gpt-image-2"])
    kid = created["id"]
    r = await env.call("PATCH", f"/admin/keys/{kid}", {"rpm": None, "concurrency": 3,
                                                       "name": "renamed"})
    assert r.status_code == 200, r.text
    assert (r.json()["rpm"], r.json()["concurrency"], r.json()["name"]) == (None, 3, "renamed")
    assert r.json()["models"] == ["gpt-image-2"]  # absent: kept
    rotated = (await env.call("POST", f"/admin/keys/{kid}/rotate")).json()
    assert rotated["id"] == kid and rotated["key"] != created["key"]
    old = {"Authorization": f"Bearer {created['key']}"}
    new = {"Authorization": f"Bearer {rotated['key']}"}
    assert (await env.client.get("/v1/models", headers=old)).status_code == 401
    assert (await env.client.get("/v1/models", headers=new)).status_code == 200
    revoked = (await env.call("POST", f"/admin/keys/{kid}/revoke")).json()
    assert revoked["status"] == "revoked"
    r = await env.client.get("/v1/models", headers=new)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


async def test_expired_key_is_401_with_its_own_message(env: Admin) -> None:
    created = await env.create(expires_at=time.time() + 3600)
    hdr = {"Authorization": f"Bearer {created['key']}"}
    assert (await env.client.get("/v1/usage", headers=hdr)).status_code == 200
    await env.call("PATCH", f"/admin/keys/{created['id']}", {"expires_at": 1_000_000})
    r = await env.client.get("/v1/usage", headers=hdr)
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"
    assert "expired at 1970-01-12" in r.json()["error"]["message"]
    listed = (await env.call("GET", "/admin/keys")).json()["data"]
    assert listed[0]["status"] == "expired"


async def test_topup_and_adjust(env: Admin) -> None:
    kid = (await env.create(balance="1"))["id"]
    r = await env.call("POST", f"/admin/keys/{kid}/topup", {"amount": "2.25", "note": "inv 1"})
    assert r.status_code == 200 and r.json()["balance"] == "3.25"
    r = await env.call("POST", f"/admin/keys/{kid}/topup", {"amount": 0.75})
    assert r.json()["balance"] == "4.00"
    r = await env.call("POST", f"/admin/keys/{kid}/adjust", {"amount": "-1.5", "note": "fix"})
    assert r.status_code == 200 and r.json()["balance"] == "2.50"
    rows = await env.backends.db.read(sa.select(ledger.c.kind, ledger.c.amount, ledger.c.note)
                                      .where(ledger.c.key_id == kid).order_by(ledger.c.id))
    assert [(x["kind"], x["amount"], x["note"]) for x in rows] == [
        ("topup", 1_000_000, "initial balance"), ("topup", 2_250_000, "inv 1"),
        ("topup", 750_000, None), ("adjust", -1_500_000, "fix")]


async def test_usage_report(env: Admin) -> None:
    kid = (await env.create(name="alice", balance="5"))["id"]
    now = time.time() - 10
    for kind, amount, images in (("hold", -200_000, 2), ("settle", 100_000, -1)):
        await env.backends.db.write(ledger.insert().values(
            key_id=kid, task_id="img_1", kind=kind, amount=amount, model="gpt-image-2",
            images=images, created_at=now))
    r = await env.call("GET", "/admin/usage", headers=ADMIN)
    body = r.json()
    assert r.status_code == 200 and body["currency"] == "USD"
    assert body["data"] == [{"key_id": kid, "key_name": "alice", "model": "gpt-image-2",
                             "tasks": 1, "images": 1, "spend": "0.10", "refunds": "0.00",
                             "holds_outstanding": "0.00", "refused": 0}]
    since = time.strftime("%Y-%m-%d", time.gmtime(now + 86_400 * 2))
    r = await env.call("GET", f"/admin/usage?since={since}&until=4102444800")
    assert r.json()["data"] == []
    r = await env.call("GET", f"/admin/usage?key_id={kid}&model=dall-e-3")
    assert r.json()["data"] == []
    r = await env.call("GET", "/admin/usage?since=soon")
    assert r.status_code == 400 and r.json()["error"]["param"] == "since"


BAD_INPUT = [
    ("POST", "/admin/keys/{id}/topup", {"amount": "-5"}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": "ten"}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": "0"}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": "1.0000001"}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": None}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": "1", "extra": 1}, 400, "extra"),
    ("POST", "/admin/keys/{id}/adjust", {"amount": "-99", "note": "x"}, 400, "amount"),
    ("POST", "/admin/keys/{id}/adjust", {"amount": "-1"}, 400, "note"),
    ("POST", "/admin/keys/key_nope/topup", {"amount": "1"}, 404, "key_id"),
    ("POST", "/admin/keys/key_nope/rotate", None, 404, "key_id"),
    ("POST", "/admin/keys/key_nope/revoke", None, 404, "key_id"),
    ("GET", "/admin/keys/key_nope", None, 404, "key_id"),
    ("PATCH", "/admin/keys/key_nope", {"rpm": 3}, 404, "key_id"),
    ("PATCH", "/admin/keys/{id}", {"models": ["no-such-model"]}, 400, "models"),
    ("PATCH", "/admin/keys/{id}", {"rpm": 0}, 400, "rpm"),
    ("PATCH", "/admin/keys/{id}", {"balance": "100"}, 400, "balance"),
    ("PATCH", "/admin/keys/{id}", {"webhook_url": "ftp://example.com/x"}, 400, "webhook_url"),
    ("PATCH", "/admin/keys/{id}", {"webhook_url": "http://10.0.0.1/x"}, 400, "webhook_url"),
    ("PATCH", "/admin/keys/{id}", {"expires_at": "next week"}, 400, "expires_at"),
    ("PATCH", "/admin/keys/{id}", {"expires_at": [2030]}, 400, "expires_at"),
    ("PATCH", "/admin/keys/{id}", {"name": {"a": 1}}, 400, "name"),
    ("PATCH", "/admin/keys/{id}", {"webhook_url": 7}, 400, "webhook_url"),
    ("POST", "/admin/keys/{id}/topup", {"amount": [1]}, 400, "amount"),
    ("POST", "/admin/keys/{id}/topup", {"amount": "1", "note": 5}, 400, "note"),
    ("POST", "/admin/keys", {"name": "x", "balance": "-1"}, 400, "balance"),
    ("POST", "/admin/keys", {"name": "x", "balance": "lots"}, 400, "balance"),
    ("POST", "/admin/keys", {"name": "x", "models": "gpt-image-2"}, 400, "models"),
    ("POST", "/admin/keys", {"name": "x", "models": ["dall-e-3", "nope"]}, 400, "models"),
    ("POST", "/admin/keys", {"name": "x", "webhook_url": "javascript:alert(1)"}, 400,
     "webhook_url"),
    ("POST", "/admin/keys", {"name": "x", "concurrency": "2"}, 400, "concurrency"),
    ("POST", "/admin/keys", {"rpm": 2}, 400, "name"),
    ("POST", "/admin/keys", [1, 2], 400, "body"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "param"), BAD_INPUT)
async def test_bad_input_changes_nothing(env: Admin, method: str, path: str, body: Any,
                                         status: int, param: str) -> None:
    kid = (await env.create(balance="2"))["id"]
    before = await env.snapshot()
    r = await env.call(method, path.replace("{id}", kid), body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
    assert await env.snapshot() == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/admin/keys", {"name": "x"}), ("GET", "/admin/keys", None),
     ("GET", "/admin/keys/{id}", None), ("PATCH", "/admin/keys/{id}", {"rpm": 1}),
     ("POST", "/admin/keys/{id}/revoke", None), ("POST", "/admin/keys/{id}/rotate", None),
     ("POST", "/admin/keys/{id}/topup", {"amount": "5"}),
     ("POST", "/admin/keys/{id}/adjust", {"amount": "-1", "note": "x"}),
     ("GET", "/admin/usage", None)],
)
async def test_admin_token_required(env: Admin, method: str, path: str, body: Any) -> None:
    created = await env.create(balance="2")
    path = path.replace("{id}", created["id"])
    before = await env.snapshot()
    user_key = {"Authorization": f"Bearer {created['key']}"}
    for headers, status, code in (({}, 401, "missing_admin_token"),
                                  ({"Authorization": "Bearer wrong"}, 403, "invalid_admin_token"),
                                  (user_key, 403, "invalid_admin_token")):
        r = await env.call(method, path, body, headers=headers)
        assert r.status_code == status and r.json()["error"]["code"] == code
        assert created["key"] not in r.text
    assert await env.snapshot() == before


async def test_own_usage_bad_range(env: Admin) -> None:
    created = await env.create()
    hdr = {"Authorization": f"Bearer {created['key']}"}
    for query, param in (("since=tomorrow", "since"), ("until=x", "until"),
                         ("since=2030-01-01&until=2029-01-01", "until")):
        r = await env.client.get(f"/v1/usage?{query}", headers=hdr)
        assert r.status_code == 400 and r.json()["error"]["param"] == param
    assert (await env.client.get("/v1/usage")).status_code == 401
    r = await env.client.get("/v1/usage?since=2020-01-01T00:00:00Z&until=1900000000",
                             headers=hdr)
    assert r.status_code == 200 and r.json()["since"] == "2020-01-01T00:00:00Z"
    assert r.json()["balance"] is None and r.json()["spend"] == "0.00"
