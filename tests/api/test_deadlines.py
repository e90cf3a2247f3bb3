"""Deadlines through the real app (issue 14, item 5): `Cancel-After` and `deadline_seconds`
cancel an unfinished task with `deadline_exceeded` and refund it (ledger checked), on the
sandbox and on an async upstream (whose task is abandoned: no seed documents a cancel);
bad values are a 400 that creates and charges nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.tables import tasks
from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks
from tests.support.accounts import App, Receiver, bearer, eventually, open_app

pytestmark = pytest.mark.anyio

BALANCE = 1_000_000
LOOPBACK = {"fetch_allow_networks": ["127.0.0.0/8"], "webhook_backoff_seconds": 0.05}


async def assert_refunded(app: App, key_id: str, task_id: str) -> None:
    assert await app.ledger_kinds(key_id, task_id) == ["hold", "refund"]
    assert await app.balance(key_id) == BALANCE == await app.ledger_sum(key_id)


@pytest.mark.parametrize(("header", "seconds"), [
    ("90s", 90), ("5m", 300), ("1h", 3600), ("120", 120)])
async def test_cancel_after_sets_the_deadline(tmp_path: Path, header: str,
                                              seconds: int) -> None:
    async with open_app(tmp_path, sandbox_latency=30) as app:
        plaintext, _ = await app.key("k", balance=BALANCE)
        r = await app.submit(plaintext, headers={"Cancel-After": header})
        assert r.status_code == 202, r.text
        task = await app.task(plaintext, r.json()["task_id"])
        assert abs(task["deadline_at"] - (task["created_at"] + seconds)) <= 1
        # The body field too, and the earlier of the two when both are sent.
        both = await app.submit(plaintext, {"deadline_seconds": 60},
                                headers={"Cancel-After": header})
        task = await app.task(plaintext, both.json()["task_id"])
        assert abs(task["deadline_at"] - (task["created_at"] + min(60, seconds))) <= 1
        plain = await app.submit(plaintext)
        assert (await app.task(plaintext, plain.json()["task_id"]))["deadline_at"] is None


@pytest.mark.parametrize(("headers", "body", "param"), [
    ({"Cancel-After": "1500ms"}, {}, "Cancel-After"),
    ({"Cancel-After": "-5"}, {}, "Cancel-After"),
    ({"Cancel-After": "0s"}, {}, "Cancel-After"),
    ({"Cancel-After": "soon"}, {}, "Cancel-After"),
    ({"Cancel-After": "25h"}, {}, "Cancel-After"),  # over max_deadline_seconds
    ({}, {"deadline_seconds": 0}, "deadline_seconds"),
    ({}, {"deadline_seconds": -1}, "deadline_seconds"),
    ({}, {"deadline_seconds": "90s"}, "deadline_seconds"),
    ({}, {"deadline_seconds": True}, "deadline_seconds"),
    ({}, {"deadline_seconds": 86401}, "deadline_seconds"),
])
async def test_bad_deadlines_are_400s_that_change_nothing(
        tmp_path: Path, headers: dict[str, str], body: dict[str, Any], param: str) -> None:
    async with open_app(tmp_path) as app:
        plaintext, key = await app.key("k", balance=BALANCE)
        for path in ("/v1/images/generations?async=true", "/v1/images/generations",
                     "/openai/v1/images/generations", "/apimart/v1/images/generations"):
            if path.startswith("/openai") and param == "deadline_seconds":
                continue  # OpenAI's body has no such field: the header only there
            r = await app.submit(plaintext, body, headers=headers, path=path)
            assert r.status_code == 400, (path, r.text)
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error"
            if not path.startswith("/apimart"):  # apimart's error shape has no param
                assert error["param"] == param
        assert await app.task_count(key.id) == 0
        assert await app.balance(key.id) == BALANCE == await app.ledger_sum(key.id)


async def test_an_async_task_past_its_deadline_is_cancelled_and_refunded(
        tmp_path: Path) -> None:
    async with Receiver() as rx, open_app(tmp_path, sandbox_latency=30, **LOOPBACK) as app:
        plaintext, key = await app.key("k", balance=BALANCE, webhook_url=rx.url)
        r = await app.submit(plaintext, headers={"Cancel-After": "1s"})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        assert await app.balance(key.id) == BALANCE - app.price()

        done = await app.wait_terminal(plaintext, task_id)

        assert done["status"] == "cancelled" and done["result"] is None
        assert done["error"]["code"] == "deadline_exceeded"
        await assert_refunded(app, key.id, task_id)
        delivery = await app.settled_delivery(plaintext, task_id)  # as any cancellation
        assert delivery["event"] == "task.cancelled"
        assert delivery["status"] == "delivered"
        await eventually(lambda: _idle(app), "the worker to let the run go")


async def _idle(app: App) -> bool:
    worker = app.backends.worker
    return worker is not None and worker.in_flight == 0


async def test_a_sync_request_gets_the_cancellation_at_its_deadline(tmp_path: Path) -> None:
    async with open_app(tmp_path, sandbox_latency=30) as app:
        plaintext, key = await app.key("k", balance=BALANCE)
        r = await app.client.post("/v1/images/generations", json={"prompt": "a red fox",
                                                                  "deadline_seconds": 1},
                                  headers=bearer(plaintext))
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "deadline_exceeded"
        assert r.headers["x-should-retry"] == "false"
        [task_id] = await _task_ids(app, key.id)
        assert (await app.task(plaintext, task_id))["status"] == "cancelled"
        await assert_refunded(app, key.id, task_id)


async def _task_ids(app: App, key_id: str) -> list[str]:
    rows = await app.backends.db.read(sa.select(tasks.c.id).where(tasks.c.key_id == key_id))
    return [r["id"] for r in rows]


async def test_a_deadline_on_an_async_upstream_abandons_its_task(tmp_path: Path) -> None:
    fake = FakeDimilinks(latency=60)
    await fake.start()
    try:
        async with open_app(tmp_path, channels=[{
            "name": "dimi", "adapter": "dimilinks", "base_url": fake.url,
            "api_key": fake.api_key, "models": ["gpt-image-2"], "poll_interval": 0.05,
        }]) as app:
            plaintext, key = await app.key("k", balance=BALANCE)
            r = await app.submit(plaintext, {"deadline_seconds": 1.5})
            task_id = r.json()["task_id"]

            done = await app.wait_terminal(plaintext, task_id)

            assert done["status"] == "cancelled"
            assert done["error"]["code"] == "deadline_exceeded"
            await assert_refunded(app, key.id, task_id)
            assert fake.submissions == 1  # it was upstream, and was left there
            await eventually(lambda: _idle(app), "the worker to stop polling")
            stored = await app.backends.store.get(task_id)
            assert stored is not None and stored.upstream_task_id in fake.tasks
            # Later sweeps change nothing: the task stays cancelled, refunded once.
            assert await app.backends.store.expire_overdue() == []
            await assert_refunded(app, key.id, task_id)
    finally:
        await fake.stop()


async def test_a_queued_task_past_its_deadline_is_swept(tmp_path: Path) -> None:
    # One worker slot, held by a slow task: the second waits in the queue, where only the
    # sweeper (the reaper's pass over the rows' deadlines) can see its deadline pass.
    async with open_app(tmp_path, sandbox_latency=30, worker_concurrency=1,
                        reaper_interval_seconds=0.1) as app:
        plaintext, key = await app.key("k", balance=BALANCE)
        busy = (await app.submit(plaintext)).json()["task_id"]
        await eventually(lambda: _running(app, plaintext, busy), "the first task to start")
        r = await app.submit(plaintext, headers={"Cancel-After": "1"})
        task_id = r.json()["task_id"]
        assert (await app.task(plaintext, task_id))["status"] == "queued"

        done = await app.wait_terminal(plaintext, task_id)

        assert done["status"] == "cancelled"
        assert done["error"]["code"] == "deadline_exceeded"
        assert await app.ledger_kinds(key.id, task_id) == ["hold", "refund"]
        assert (await app.task(plaintext, busy))["status"] == "in_progress"


async def _running(app: App, plaintext: str, task_id: str) -> bool:
    return bool((await app.task(plaintext, task_id))["status"] == "in_progress")
