"""Billing what was delivered (issue 14, item 9), through the real app against fake upstreams
on loopback: a 2k request answered at 1k is settled at the 1k price, `n: 4` answered with two
images is charged for two, and the upstream's `usage` passes through; the ledger checked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.tables import ledger, tasks
from imagegate.testing.upstreams.common import FakeUpstream
from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks
from imagegate.testing.upstreams.openai_api import FakeOpenAI
from tests.support.accounts import App, bearer, open_app

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def relay(tmp_path: Path, fake: FakeUpstream, adapter: str) -> AsyncIterator[App]:
    await fake.start()
    base = fake.url + "/v1" if adapter == "openai" else fake.url
    try:
        async with open_app(tmp_path, channels=[{
            "name": "up", "adapter": adapter, "base_url": base, "api_key": fake.api_key,
            "models": ["gpt-image-2"], "poll_interval": 0.02,
        }]) as app:
            yield app
    finally:
        await fake.stop()


async def settle_row(app: App, task_id: str) -> dict[str, Any]:
    rows = await app.backends.db.read(
        sa.select(ledger).where(ledger.c.task_id == task_id, ledger.c.kind == "settle"))
    assert len(rows) == 1
    return dict(rows[0])


async def charged(app: App, task_id: str) -> int:
    rows = await app.backends.db.read(sa.select(tasks.c.charged_amount)
                                      .where(tasks.c.id == task_id))
    return int(rows[0]["charged_amount"])


async def test_a_2k_request_answered_at_1k_is_settled_at_the_1k_price(tmp_path: Path) -> None:
    async with relay(tmp_path, FakeDimilinks(), "dimilinks") as app:
        price_1k, price_2k = app.price(tier="1k"), app.price(tier="2k")
        assert price_2k == 2 * price_1k
        plaintext, key = await app.key("k", balance=1_000_000)
        r = await app.submit(plaintext, {"prompt": "a fox [deliver-size:1024x1024]",
                                         "size": "2048x2048"})
        assert r.status_code == 202, r.text
        task_id = r.json()["task_id"]
        assert await app.balance(key.id) == 1_000_000 - price_2k  # the hold: 2k

        done = await app.wait_terminal(plaintext, task_id)

        assert done["status"] == "succeeded"
        assert done["result"]["size"] == "1024x1024"  # what was made, not what was asked
        assert done["result"]["usage"]["output_tokens"] > 0  # the upstream's, passed on
        assert await app.balance(key.id) == 1_000_000 - price_1k
        assert await app.ledger_sum(key.id) == 1_000_000 - price_1k
        assert await charged(app, task_id) == price_1k
        row = await settle_row(app, task_id)
        assert row["amount"] == price_2k - price_1k and row["tier"] == "1k"
        assert row["note"].startswith("delivered 1 of 1: 1024x1024 (1k); "
                                      "requested 2048x2048 (2k)")
        stored = await app.backends.store.get(task_id)
        assert stored is not None and stored.result is not None
        assert stored.result["delivered"]["sizes"] == ["1024x1024"]


async def test_n4_answered_with_two_images_is_charged_for_two(tmp_path: Path) -> None:
    async with relay(tmp_path, FakeOpenAI(), "openai") as app:
        price = app.price()
        plaintext, key = await app.key("k", balance=1_000_000)
        # Synchronous: the answer body itself shows what came and the upstream's usage.
        r = await app.submit(plaintext, {"prompt": "a fox [deliver-n:2]", "n": 4,
                                         "size": "1024x1024"}, path="/v1/images/generations")
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["data"]) == 2
        usage = body["usage"]  # OpenAI's usage object, as the upstream sent it
        assert set(usage) >= {"input_tokens", "output_tokens", "total_tokens",
                              "input_tokens_details"}
        assert usage["output_tokens"] == 1024 * 1024 * 2 // 4096

        assert await app.balance(key.id) == 1_000_000 - 2 * price
        assert await app.ledger_sum(key.id) == 1_000_000 - 2 * price
        row = await settle_row(app, body["task_id"])
        assert row["amount"] == 2 * price and row["images"] == -2
        assert row["note"].startswith("delivered 2 of 4: ")
        task = await app.task(plaintext, body["task_id"])
        assert task["result"]["usage"] == usage  # the task's result carries it too
        assert len(task["result"]["data"]) == 2


async def test_a_full_delivery_is_charged_the_held_price(tmp_path: Path) -> None:
    async with relay(tmp_path, FakeOpenAI(), "openai") as app:
        plaintext, key = await app.key("k", balance=1_000_000)
        r = await app.client.post("/v1/images/generations",
                                  json={"prompt": "a fox", "size": "2048x2048", "n": 2},
                                  headers=bearer(plaintext))
        assert r.status_code == 200, r.text
        assert r.json()["size"] == "2048x2048"
        assert await app.balance(key.id) == 1_000_000 - 2 * app.price(tier="2k")
