"""Issue 6 through HTTP against the real app: balances and holds under concurrency, refunds,
Idempotency-Key, per-key limits, webhooks to a real receiver, and the admin API's refusals.

The app runs in process (httpx over ASGI) with its worker, the sandbox provider and the
webhook dispatcher; SQLite everywhere, PostgreSQL too where the point is concurrency.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from imagegate.db.tables import api_keys, idempotency_keys, ledger, tasks
from tests.support.accounts import ADMIN, HANG, App, Receiver, bearer, eventually, open_app

pytestmark = pytest.mark.anyio

ONE = {"model": "gpt-image-2", "size": "1:1", "resolution": "1k", "n": 1}


def error_code(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


async def assert_books_balance(app: App, key_id: str) -> None:
    """The invariant of the billing core: a prepaid key's balance is its ledger's sum."""
    balance = await app.balance(key_id)
    assert balance is not None and balance >= 0
    assert balance == await app.ledger_sum(key_id)


# -- 1. concurrent submits against a balance that covers 50 images


async def test_200_concurrent_submits_accept_exactly_what_the_balance_covers(
        tmp_path: Path, database_url: str) -> None:
    async with open_app(tmp_path, database_url=database_url) as app:
        price = app.price()
        assert price == 40_000  # the catalog's gpt-image-2 1k: 0.04
        plaintext, key = await app.key("burst", balance=50 * price)

        responses = await asyncio.gather(*(app.submit(plaintext, {**ONE, "prompt": f"p{i}"})
                                           for i in range(200)))

        statuses = [r.status_code for r in responses]
        assert statuses.count(202) == 50 and statuses.count(402) == 150, sorted(set(statuses))
        assert {error_code(r) for r in responses if r.status_code == 402} \
            == {"insufficient_balance"}
        accepted = {r.json()["task_id"] for r in responses if r.status_code == 202}
        assert len(accepted) == 50 and await app.task_count(key.id) == 50

        await app.wait_idle()
        await assert_books_balance(app, key.id)
        assert await app.balance(key.id) == 0  # all 50 succeeded: each charged its price
        usage = await app.usage(plaintext)
        assert usage["balance"] == "0.00"
        assert (usage["tasks"], usage["images"]) == (50, 50)
        assert (usage["spend"], usage["holds_outstanding"]) == ("2.00", "0.00")
        assert usage["topups"] == "2.00"


# -- 2. refunds


async def test_a_failed_task_is_refunded(tmp_path: Path) -> None:
    async with open_app(tmp_path, sandbox_failure_rate=1.0) as app:
        plaintext, key = await app.key(balance=1_000_000)
        r = await app.submit(plaintext, ONE)
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        done = await app.wait_terminal(plaintext, task_id)
        assert done["status"] == "failed"
        assert await app.balance(key.id) == 1_000_000
        assert await app.ledger_kinds(key.id, task_id) == ["hold", "refund"]
        await assert_books_balance(app, key.id)
        usage = await app.usage(plaintext)
        assert (usage["spend"], usage["refunds"], usage["images"]) == ("0.00", "0.04", 0)
        # A failed task costs nothing in the apimart profile either.
        r = await app.client.get(f"/apimart/v1/tasks/{task_id}", headers=bearer(plaintext))
        assert r.json()["data"]["cost"] == 0


async def test_cancelling_a_queued_task_refunds_it(tmp_path: Path) -> None:
    # One worker slot and a slow sandbox: the second task waits in the queue.
    async with open_app(tmp_path, worker_concurrency=1, sandbox_latency=3.0) as app:
        price = app.price()
        plaintext, key = await app.key(balance=10 * price)
        ids = [(await app.submit(plaintext, ONE)).json()["task_id"] for _ in range(2)]
        assert await app.balance(key.id) == 8 * price  # two holds

        states: dict[str, str] = {}

        async def one_running() -> bool:
            states.update({t: (await app.task(plaintext, t))["status"] for t in ids})
            return sorted(states.values()) == ["in_progress", "queued"]

        await eventually(one_running, "one task running, one queued")
        queued = next(t for t, status in states.items() if status == "queued")
        r = await app.client.post(f"/v1/tasks/{queued}/cancel", headers=bearer(plaintext))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert await app.balance(key.id) == 9 * price  # the queued one's hold came back
        assert await app.ledger_kinds(key.id, queued) == ["hold", "refund"]
        # Cancelling again refunds nothing more.
        await app.client.post(f"/v1/tasks/{queued}/cancel", headers=bearer(plaintext))
        assert await app.balance(key.id) == 9 * price
        running = next(t for t in ids if t != queued)
        await app.client.post(f"/v1/tasks/{running}/cancel", headers=bearer(plaintext))
        assert await app.balance(key.id) == 10 * price
        await assert_books_balance(app, key.id)


async def test_apimart_cost_is_the_settled_charge(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        price = app.price("gpt-image-2", "2k")
        plaintext, key = await app.key(balance=1_000_000)
        r = await app.client.post("/apimart/v1/images/generations", headers=bearer(plaintext),
                                  json={"prompt": "a kite", "model": "gpt-image-2",
                                        "size": "16:9", "resolution": "2k", "n": 2})
        assert r.status_code == 200, r.text
        task_id = r.json()["data"][0]["task_id"]

        async def completed() -> bool:
            got = await app.client.get(f"/apimart/v1/tasks/{task_id}",
                                       headers=bearer(plaintext))
            return bool(got.json()["data"]["status"] == "completed")

        await eventually(completed, "the apimart task to complete")
        data = (await app.client.get(f"/apimart/v1/tasks/{task_id}",
                                     headers=bearer(plaintext))).json()["data"]
        charged = await app.backends.db.read(
            sa.select(tasks.c.charged_amount, tasks.c.charge_state).where(tasks.c.id == task_id))
        assert charged[0]["charge_state"] == "settled"
        assert charged[0]["charged_amount"] == 2 * price
        net = await app.backends.db.read(
            sa.select(sa.func.sum(ledger.c.amount).label("net"))
            .where(ledger.c.task_id == task_id))
        assert -int(net[0]["net"]) == 2 * price
        assert data["cost"] == pytest.approx(2 * price / 1_000_000)
        assert await app.balance(key.id) == 1_000_000 - 2 * price
        await assert_books_balance(app, key.id)


# -- 3. Idempotency-Key


async def test_idempotency_same_body_different_body_and_expiry(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        price = app.price()
        plaintext, key = await app.key(balance=1_000_000)
        idem = {"Idempotency-Key": "order-42"}
        first = await app.submit(plaintext, ONE, idem)
        assert first.status_code == 202, first.text
        task_id = first.json()["task_id"]
        # The same request again (fields in another order): the same task, no new charge.
        again = await app.client.post(
            "/v1/images/generations?async=true", headers={**bearer(plaintext), **idem},
            json={"n": 1, "resolution": "1k", "size": "1:1", "model": "gpt-image-2",
                  "prompt": "a red fox"})
        assert again.status_code == 202 and again.json()["task_id"] == task_id
        assert await app.task_count(key.id) == 1
        assert (await app.ledger_kinds(key.id)).count("hold") == 1
        await app.wait_idle()
        assert await app.balance(key.id) == 1_000_000 - price

        # Another body under the same key: 409, nothing created or charged.
        ledger_before = await app.ledger_kinds(key.id)
        other = await app.submit(plaintext, {**ONE, "prompt": "a blue fox"}, idem)
        assert other.status_code == 409 and error_code(other) == "idempotency_key_reused"
        assert await app.task_count(key.id) == 1
        assert await app.ledger_kinds(key.id) == ledger_before
        assert await app.balance(key.id) == 1_000_000 - price

        # Once the record has expired the key names a new request.
        await app.backends.db.write(idempotency_keys.update()
                                    .where(idempotency_keys.c.idem_key == "order-42")
                                    .values(expires_at=time.time() - 1))
        later = await app.submit(plaintext, ONE, idem)
        assert later.status_code == 202 and later.json()["task_id"] != task_id
        await app.wait_idle()
        assert await app.task_count(key.id) == 2
        assert await app.balance(key.id) == 1_000_000 - 2 * price
        await assert_books_balance(app, key.id)
        # ...and the new record is the one remembered now.
        replay = await app.submit(plaintext, ONE, idem)
        assert replay.json()["task_id"] == later.json()["task_id"]


async def test_a_refused_request_leaves_its_idempotency_key_unused(tmp_path: Path) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        plaintext, key = await app.key(balance=0)
        idem = {"Idempotency-Key": "after-topup"}
        r = await app.submit(plaintext, ONE, idem)
        assert r.status_code == 402 and error_code(r) == "insufficient_balance"
        r = await app.client.post(f"/admin/keys/{key.id}/topup", json={"amount": "1"},
                                  headers=ADMIN)
        assert r.status_code == 200
        r = await app.submit(plaintext, ONE, idem)
        assert r.status_code == 202, r.text
        assert await app.balance(key.id) == 1_000_000 - app.price()
        await assert_books_balance(app, key.id)


async def test_idempotency_keys_belong_to_one_api_key(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        a, _ = await app.key("a")
        b, _ = await app.key("b")
        idem = {"Idempotency-Key": "shared-name"}
        ra = await app.submit(a, ONE, idem)
        rb = await app.submit(b, ONE, idem)
        assert ra.status_code == rb.status_code == 202
        assert ra.json()["task_id"] != rb.json()["task_id"]


async def test_concurrent_identical_requests_make_one_task_and_one_charge(
        tmp_path: Path, database_url: str) -> None:
    async with open_app(tmp_path, database_url=database_url) as app:
        price = app.price()
        plaintext, key = await app.key(balance=1_000_000)
        idem = {"Idempotency-Key": "retry-storm"}
        responses = await asyncio.gather(*(app.submit(plaintext, ONE, idem) for _ in range(10)))
        assert [r.status_code for r in responses] == [202] * 10, [r.text for r in responses]
        assert len({r.json()["task_id"] for r in responses}) == 1
        assert await app.task_count(key.id) == 1
        await app.wait_idle()
        assert (await app.ledger_kinds(key.id)).count("hold") == 1
        assert await app.balance(key.id) == 1_000_000 - price
        await assert_books_balance(app, key.id)


# -- 4. limits and key states


async def test_allowed_models(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        plaintext, key = await app.key(models=["gpt-image-2"], balance=1_000_000)
        r = await app.submit(plaintext, {**ONE, "model": "gpt-image-1", "size": "1024x1024"})
        assert r.status_code == 403 and error_code(r) == "model_not_allowed"
        assert r.json()["error"]["param"] == "model"
        assert await app.task_count() == 0 and await app.balance(key.id) == 1_000_000
        listed = (await app.client.get("/v1/models", headers=bearer(plaintext))).json()
        assert [m["id"] for m in listed["data"]] == ["gpt-image-2"]
        assert (await app.submit(plaintext, ONE)).status_code == 202


async def test_requests_per_minute(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        plaintext, key = await app.key(rpm=3, balance=1_000_000)
        for _ in range(3):
            assert (await app.submit(plaintext, ONE)).status_code == 202
        balance = await app.balance(key.id)
        r = await app.submit(plaintext, ONE)
        assert r.status_code == 429 and error_code(r) == "rate_limit_exceeded"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert await app.task_count(key.id) == 3
        assert await app.balance(key.id) == balance
        # Another key has its own window.
        other, _ = await app.key("other", rpm=3)
        assert (await app.submit(other, ONE)).status_code == 202


async def test_concurrent_task_limit(tmp_path: Path) -> None:
    async with open_app(tmp_path, sandbox_latency=5.0) as app:
        price = app.price()
        plaintext, key = await app.key(concurrency=1, balance=1_000_000)
        first = await app.submit(plaintext, ONE)
        assert first.status_code == 202
        second = await app.submit(plaintext, ONE)
        assert second.status_code == 429 and error_code(second) == "concurrency_limit_exceeded"
        assert "retry-after" in second.headers
        assert await app.task_count(key.id) == 1
        assert await app.balance(key.id) == 1_000_000 - price
        # Finishing the first (here: cancelling it) frees the slot.
        await app.client.post(f"/v1/tasks/{first.json()['task_id']}/cancel",
                              headers=bearer(plaintext))
        third = await app.submit(plaintext, ONE)
        assert third.status_code == 202, third.text
        await app.client.post(f"/v1/tasks/{third.json()['task_id']}/cancel",
                              headers=bearer(plaintext))
        assert await app.balance(key.id) == 1_000_000
        await assert_books_balance(app, key.id)


async def test_expired_and_revoked_keys_get_401(tmp_path: Path) -> None:
    async with open_app(tmp_path) as app:
        expired, _ = await app.key("old", expires_at=time.time() - 10, balance=1_000_000)
        r = await app.submit(expired, ONE)
        assert r.status_code == 401 and error_code(r) == "expired_api_key"
        assert (await app.client.get("/v1/usage", headers=bearer(expired))).status_code == 401

        revoked, key = await app.key("gone", balance=1_000_000)
        assert (await app.submit(revoked, ONE)).status_code == 202
        r = await app.client.post(f"/admin/keys/{key.id}/revoke", headers=ADMIN)
        assert r.status_code == 200 and r.json()["status"] == "revoked"
        r = await app.submit(revoked, ONE)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert await app.task_count(key.id) == 1


# -- 5. webhooks end to end


LOOPBACK = {"fetch_allow_networks": ["127.0.0.0/8"], "webhook_backoff_seconds": 0.05}


async def test_key_webhook_is_delivered_signed(tmp_path: Path) -> None:
    # public_base_url: a webhook has no request to take an origin from, so with it the
    # payload's result URLs are the same absolute URLs a poll shows.
    async with Receiver() as rx, open_app(tmp_path, public_base_url="http://testserver",
                                          **LOOPBACK) as app:
        created = await app.client.post("/admin/keys", headers=ADMIN, json={
            "name": "hooked", "balance": "1", "webhook_url": rx.url})
        assert created.status_code == 201, created.text
        plaintext = created.json()["key"]
        settings = (await app.client.get("/v1/webhooks", headers=bearer(plaintext))).json()
        assert settings["url"] == rx.url
        assert settings["secret"] == created.json()["webhook_secret"]

        r = await app.submit(plaintext, ONE)
        task_id = r.json()["task_id"]
        delivery = await app.settled_delivery(plaintext, task_id)
        assert delivery["status"] == "delivered" and delivery["attempts"] == 1
        assert delivery["event"] == "task.succeeded" and delivery["url"] == rx.url
        assert len(rx.requests) == 1
        [payload] = rx.verified(settings["secret"])
        assert payload["type"] == "task.succeeded"
        task = await app.task(plaintext, task_id)
        assert payload["data"]["id"] == task_id and payload["data"]["status"] == "succeeded"
        assert payload["data"]["result"] == task["result"]
        assert task["result"]["data"][0]["url"].startswith("http://testserver/p/img/")
        assert rx.requests[0][0]["webhook-id"] == delivery["id"]


async def test_request_webhook_url_overrides_the_keys(tmp_path: Path) -> None:
    async with Receiver() as key_rx, Receiver() as request_rx, \
            open_app(tmp_path, **LOOPBACK) as app:
        plaintext, _ = await app.key(webhook_url=key_rx.url)
        secret = (await app.client.get("/v1/webhooks", headers=bearer(plaintext))).json()["secret"]
        r = await app.submit(plaintext, {**ONE, "webhook_url": request_rx.url})
        task_id = r.json()["task_id"]
        delivery = await app.settled_delivery(plaintext, task_id)
        assert delivery["status"] == "delivered" and delivery["url"] == request_rx.url
        [payload] = request_rx.verified(secret)
        assert payload["data"]["id"] == task_id
        assert key_rx.connections == 0


async def test_a_500_is_retried_until_delivered(tmp_path: Path) -> None:
    async with Receiver((500, 200)) as rx, open_app(tmp_path, **LOOPBACK) as app:
        plaintext, _ = await app.key(webhook_url=rx.url)
        secret = (await app.client.get("/v1/webhooks", headers=bearer(plaintext))).json()["secret"]
        task_id = (await app.submit(plaintext, ONE)).json()["task_id"]
        delivery = await app.settled_delivery(plaintext, task_id)
        assert delivery["status"] == "delivered" and delivery["attempts"] == 2
        assert delivery["last_status_code"] == 200
        payloads = rx.verified(secret)  # both attempts carry a valid signature
        assert len(payloads) == 2 and payloads[0] == payloads[1]
        assert rx.requests[0][1] == rx.requests[1][1]  # the same bytes
        assert {h["webhook-id"] for h, _ in rx.requests} == {delivery["id"]}


async def test_a_timeout_is_retried_until_delivered(tmp_path: Path) -> None:
    async with Receiver((HANG, 200)) as rx, \
            open_app(tmp_path, webhook_timeout_seconds=0.3, **LOOPBACK) as app:
        plaintext, _ = await app.key(webhook_url=rx.url)
        secret = (await app.client.get("/v1/webhooks", headers=bearer(plaintext))).json()["secret"]
        task_id = (await app.submit(plaintext, ONE)).json()["task_id"]
        delivery = await app.settled_delivery(plaintext, task_id)
        assert delivery["status"] == "delivered" and delivery["attempts"] == 2
        assert len(rx.verified(secret)) == 2


async def test_a_cancelled_task_is_announced(tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, run_workers=False, **LOOPBACK) as app:
        plaintext, _ = await app.key(webhook_url=rx.url)
        task_id = (await app.submit(plaintext, ONE)).json()["task_id"]
        await app.client.post(f"/v1/tasks/{task_id}/cancel", headers=bearer(plaintext))
        [delivery] = await app.deliveries(plaintext)
        # No worker runs here, so no dispatcher: the event is queued, not yet sent.
        assert (delivery["task_id"], delivery["event"], delivery["status"]) \
            == (task_id, "task.cancelled", "pending")
        assert rx.requests == []


async def test_loopback_receiver_is_never_contacted_without_the_allow_setting(
        tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, webhook_backoff_seconds=0.05) as app:
        plaintext, key = await app.key(balance=1_000_000)
        r = await app.submit(plaintext, {**ONE, "webhook_url": rx.url})
        assert r.status_code == 202, r.text  # an IP literal is judged at delivery time
        task_id = r.json()["task_id"]
        delivery = await app.settled_delivery(plaintext, task_id)
        assert delivery["status"] == "failed" and delivery["attempts"] == 1
        assert delivery["last_status_code"] is None
        assert "refused" in delivery["last_error"]
        assert rx.connections == 0 and rx.requests == []
        # The task itself is unaffected: it succeeded and was charged once.
        assert (await app.task(plaintext, task_id))["status"] == "succeeded"
        await assert_books_balance(app, key.id)


@pytest.mark.parametrize("url", ["ftp://x", "file:///etc/passwd", "http://user:pw@h.example/",
                                 "not a url", ""])
async def test_a_bad_webhook_url_is_400_and_costs_nothing(tmp_path: Path, url: str) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        plaintext, key = await app.key(balance=1_000_000)
        r = await app.submit(plaintext, {**ONE, "webhook_url": url})
        assert r.status_code == 400 and error_code(r) == "invalid_webhook_url", r.text
        assert r.json()["error"]["param"] == "webhook_url"
        assert await app.task_count() == 0
        assert await app.balance(key.id) == 1_000_000
        assert await app.ledger_kinds(key.id) == ["topup"]


# -- 6. the admin API's refusals change nothing


async def _snapshot(app: App) -> tuple[list[Any], list[Any]]:
    db = app.backends.db
    keys = [tuple(r.values()) for r in await db.read(sa.select(api_keys).order_by(api_keys.c.id))]
    rows = [tuple(r.values()) for r in await db.read(sa.select(ledger).order_by(ledger.c.id))]
    return keys, rows


async def test_admin_token_is_required(tmp_path: Path) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        _, key = await app.key(balance=1_000_000)
        before = await _snapshot(app)
        body = {"name": "sneaky", "balance": "100"}
        for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 403),
                                ({"Authorization": "Basic " + "x" * 20}, 401)):
            r = await app.client.post("/admin/keys", json=body, headers=headers)
            assert r.status_code == status, r.text
            r = await app.client.post(f"/admin/keys/{key.id}/topup", json={"amount": "5"},
                                      headers=headers)
            assert r.status_code == status, r.text
        assert await _snapshot(app) == before
        # An API key is not an admin token either.
        plaintext, _ = await app.key("user")
        before = await _snapshot(app)
        r = await app.client.post("/admin/keys", json=body, headers=bearer(plaintext))
        assert r.status_code == 403
        assert await _snapshot(app) == before


@pytest.mark.parametrize("amount", ["-5", -5, "abc", "", None, True, "1e3", "NaN",
                                    "0.0000001", [], {"v": 1}])
async def test_bad_topups_are_400_and_change_nothing(tmp_path: Path, amount: Any) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        _, key = await app.key(balance=1_000_000)
        before = await _snapshot(app)
        r = await app.client.post(f"/admin/keys/{key.id}/topup", json={"amount": amount},
                                  headers=ADMIN)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == "amount"
        assert await _snapshot(app) == before
        assert await app.balance(key.id) == 1_000_000


@pytest.mark.parametrize("balance", ["-1", "lots", 1e300])
async def test_a_key_with_a_bad_balance_is_not_created(tmp_path: Path, balance: Any) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        r = await app.client.post("/admin/keys", json={"name": "k", "balance": balance},
                                  headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == "balance", r.text
        assert await _snapshot(app) == ([], [])


async def test_unknown_key_ids_are_404(tmp_path: Path) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        before = await _snapshot(app)
        for method, path, body in (
                ("GET", "/admin/keys/key_nope", None),
                ("POST", "/admin/keys/key_nope/topup", {"amount": "5"}),
                ("POST", "/admin/keys/key_nope/adjust", {"amount": "-1", "note": "x"}),
                ("POST", "/admin/keys/key_nope/revoke", None),
                ("POST", "/admin/keys/key_nope/rotate", None),
                ("PATCH", "/admin/keys/key_nope", {"rpm": 5})):
            r = await app.client.request(method, path, json=body, headers=ADMIN)
            assert r.status_code == 404, (method, path, r.text)
        assert await _snapshot(app) == before


async def test_a_good_topup_moves_balance_and_ledger_together(tmp_path: Path) -> None:
    async with open_app(tmp_path, run_workers=False) as app:
        plaintext, key = await app.key(balance=1_000_000)
        r = await app.client.post(f"/admin/keys/{key.id}/topup", json={"amount": "2.5"},
                                  headers=ADMIN)
        assert r.status_code == 200 and r.json()["balance"] == "3.50"
        await assert_books_balance(app, key.id)
        assert (await app.usage(plaintext))["balance"] == "3.50"
