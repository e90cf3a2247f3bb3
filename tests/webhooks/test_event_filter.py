"""The webhook event filter (`webhook_events`, per request or per key) end to end: the real
app with its worker and dispatcher, the sandbox, and a receiver on 127.0.0.1 that counts
what it is sent."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from imagegate.domain import webhook_events
from imagegate.errors import InvalidRequestError
from tests.support.accounts import ADMIN, App, Receiver, bearer, eventually, open_app

pytestmark = pytest.mark.anyio

LOOPBACK = {"fetch_allow_networks": ["127.0.0.0/8"], "webhook_backoff_seconds": 0.05}
# 3 s with a progress report every 0.25 s: 12 reports, of which at most 2 s apart are sent.
SLOW = {"sandbox_latency": 3.0, "sandbox_progress_steps": 12}


def types(rx: Receiver) -> Counter[str]:
    return Counter(json.loads(body)["type"] for _, body in rx.requests)


async def finish(app: App, rx: Receiver, plaintext: str, task_id: str) -> None:
    await app.wait_terminal(plaintext, task_id)

    async def sent_the_end() -> bool:
        return any(t in types(rx) for t in ("task.succeeded", "task.failed"))

    await eventually(sent_the_end, f"the end of {task_id} at the receiver", timeout=30)


async def submit(app: App, plaintext: str, **body: Any) -> str:
    r = await app.client.post("/v1/images/generations?async=true", headers=bearer(plaintext),
                              json={"prompt": "hooks", **body})
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    return task_id


async def test_request_filter_sends_started_throttled_progress_and_the_end(
        tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, **LOOPBACK, **SLOW) as app:
        plaintext, _ = await app.key("hooked")
        task_id = await submit(app, plaintext, webhook_url=rx.url,
                               webhook_events=["started", "progress"])
        await finish(app, rx, plaintext, task_id)
        seen = types(rx)
        assert seen["task.started"] == 1 and seen["task.succeeded"] == 1
        # 12 progress reports over 3 s, one webhook per 2 s at most: 1 or 2, never 12.
        assert 1 <= seen["task.progress"] <= 2
        assert set(seen) == {"task.started", "task.progress", "task.succeeded"}
        payloads = [json.loads(body) for _, body in rx.requests]
        for p in payloads:
            assert p["data"]["id"] == task_id
        deliveries = await app.deliveries(plaintext)
        assert {d["event"] for d in deliveries} == set(seen)


async def test_default_is_the_end_only(tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, **LOOPBACK, sandbox_latency=1.0) as app:
        plaintext, _ = await app.key("hooked")
        task_id = await submit(app, plaintext, webhook_url=rx.url)
        await finish(app, rx, plaintext, task_id)
        assert types(rx) == Counter({"task.succeeded": 1})


async def test_key_setting_applies_and_the_request_wins(tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, **LOOPBACK, sandbox_latency=1.0) as app:
        created = await app.client.post("/admin/keys", headers=ADMIN, json={
            "name": "hooked", "webhook_url": rx.url, "webhook_events": ["started"]})
        assert created.status_code == 201, created.text
        assert created.json()["webhook_events"] == ["started", "completed"]
        plaintext = created.json()["key"]
        first = await submit(app, plaintext)
        await finish(app, rx, plaintext, first)
        assert types(rx) == Counter({"task.started": 1, "task.succeeded": 1})
        rx.requests.clear()
        second = await submit(app, plaintext, webhook_events=["completed"])
        await finish(app, rx, plaintext, second)
        assert types(rx) == Counter({"task.succeeded": 1})

        key_id = created.json()["id"]
        patched = await app.client.patch(f"/admin/keys/{key_id}", headers=ADMIN,
                                         json={"webhook_events": None})
        assert patched.status_code == 200 and patched.json()["webhook_events"] == ["completed"]


@pytest.mark.parametrize("value", [["finished"], "started,nope", "", 3, [1]])
async def test_unknown_events_are_a_400_that_changes_nothing(tmp_path: Path,
                                                            value: Any) -> None:
    async with open_app(tmp_path) as app:
        plaintext, key = await app.key("k")
        r = await app.client.post("/v1/images/generations?async=true",
                                  headers=bearer(plaintext),
                                  json={"prompt": "x", "webhook_events": value})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == "webhook_events"
        assert await app.task_count(key.id) == 0
        bad_key = await app.client.post("/admin/keys", headers=ADMIN,
                                        json={"name": "k2", "webhook_events": value})
        assert bad_key.status_code == 400


def test_parse_orders_and_always_adds_completed() -> None:
    assert webhook_events.parse(["progress", "started"]) == ("started", "progress", "completed")
    assert webhook_events.parse("progress, completed") == ("progress", "completed")
    assert webhook_events.parse([]) == ("completed",)
    assert webhook_events.parse(None) is None
    with pytest.raises(InvalidRequestError):
        webhook_events.parse(["done"])
