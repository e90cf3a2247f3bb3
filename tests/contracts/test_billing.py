"""Billing contract: holds, settlements and refunds on every database backend.

Money moves only by conditional updates inside the task's own transactions, so these hold
under concurrency: no overdraft, no double refund, balance == sum of the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.database import Database
from imagegate.db.tables import api_keys, ledger, webhook_deliveries
from imagegate.domain.task import Task, TaskStatus, new_id
from imagegate.errors import InsufficientBalanceError, RateLimitError
from imagegate.tasks.store import TaskStore

pytestmark = pytest.mark.anyio

PRICE = 40_000  # 0.04 per image, in micro-units
MakeKey = Callable[..., Awaitable[str]]


async def _funded(db: Database, make_key: MakeKey, key_id: str, balance: int | None,
                  **columns: Any) -> str:
    await make_key(key_id, balance=balance, **columns)
    if balance is not None:  # what KeyStore.create writes with an opening balance
        await db.write(ledger.insert().values(key_id=key_id, kind="topup", amount=balance,
                                              images=0, created_at=time.time()))
    return key_id


async def _submit(store: TaskStore, key_id: str, n: int = 1,
                  webhook_url: str | None = None) -> Task:
    request = {"prompt": "p", "n": n, "tier": "1k", "webhook_url": webhook_url}
    return await store.create(task_id=new_id("img_"), key_id=key_id, operation="generate",
                              model="gpt-image-2", request=request, retention_seconds=600,
                              unit_price=PRICE)


async def _balance(db: Database, key_id: str) -> tuple[int | None, int, int]:
    """(balance, active_tasks, sum of the key's ledger)."""
    key = (await db.read(sa.select(api_keys.c.balance, api_keys.c.active_tasks)
                         .where(api_keys.c.id == key_id)))[0]
    total = (await db.read(sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
                           .where(ledger.c.key_id == key_id)))[0]
    return key["balance"], key["active_tasks"], int(next(iter(total.values())))


async def _claimed(store: TaskStore, task_id: str) -> Task:
    task = await store.claim("w1", 60)
    assert task is not None and task.id == task_id
    return task


async def test_concurrent_submits_never_overdraw(db: Database, make_key: MakeKey) -> None:
    """200 submits at once against a balance that covers 50 images: exactly 50 accepted."""
    key = await _funded(db, make_key, "key_rich", 50 * PRICE)
    stores = [TaskStore(db) for _ in range(8)]  # like several API processes

    async def one(i: int) -> bool:
        try:
            await _submit(stores[i % len(stores)], key)
        except InsufficientBalanceError:
            return False
        return True

    results = await asyncio.gather(*(one(i) for i in range(200)))
    assert sum(results) == 50
    balance, active, total = await _balance(db, key)
    assert balance == 0 == total
    assert active == 50
    counts = await stores[0].count_by_status()
    assert counts == {"queued": 50}


async def test_refused_submit_changes_nothing(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_poor", PRICE)
    store = TaskStore(db)
    with pytest.raises(InsufficientBalanceError) as err:
        await _submit(store, key, n=2)
    assert err.value.status_code == 402 and err.value.code == "insufficient_balance"
    assert await _balance(db, key) == (PRICE, 0, PRICE)
    assert await store.count_by_status() == {}


async def test_success_settles_the_images_produced(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", 10 * PRICE)
    store = TaskStore(db)
    task = await _submit(store, key, n=4)
    assert await _balance(db, key) == (6 * PRICE, 1, 6 * PRICE)
    claimed = await _claimed(store, task.id)
    # Two of four images came back: two are charged, two given back.
    assert await store.succeed(claimed, "w1", {"images": [{}, {}]}, "sandbox")
    assert await _balance(db, key) == (8 * PRICE, 0, 8 * PRICE)
    done = await store.get(task.id)
    assert done is not None and done.charge_state == "settled"
    assert done.charged_amount == 2 * PRICE
    images = await db.read(sa.select(sa.func.sum(ledger.c.images))
                           .where(ledger.c.task_id == task.id))
    assert next(iter(images[0].values())) == 2


async def test_failure_refunds_once(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", 5 * PRICE)
    store = TaskStore(db)
    task = await _submit(store, key, n=2)
    claimed = await _claimed(store, task.id)
    assert await store.fail(claimed, "w1", {"message": "boom"})
    assert await _balance(db, key) == (5 * PRICE, 0, 5 * PRICE)
    # A second finish (a late duplicate) neither changes the task nor refunds again.
    assert not await store.fail(claimed, "w1", {"message": "again"})
    assert await _balance(db, key) == (5 * PRICE, 0, 5 * PRICE)


async def test_cancel_refunds_once(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", 5 * PRICE)
    store = TaskStore(db)
    queued = await _submit(store, key, n=3)
    await store.cancel(queued.id, key)
    await store.cancel(queued.id, key)
    assert await _balance(db, key) == (5 * PRICE, 0, 5 * PRICE)
    cancelled = await store.get(queued.id)
    assert cancelled is not None and cancelled.charge_state == "refunded"


async def test_cancel_racing_success_charges_exactly_once(db: Database,
                                                          make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", 100 * PRICE)
    store = TaskStore(db)
    for _ in range(10):
        task = await _submit(store, key)
        claimed = await _claimed(store, task.id)
        await asyncio.gather(store.cancel(task.id, key),
                             store.succeed(claimed, "w1", {"images": [{}]}, "sandbox"))
        done = await store.get(task.id)
        assert done is not None
        assert (done.status, done.charge_state) in (
            (TaskStatus.CANCELLED, "refunded"), (TaskStatus.SUCCEEDED, "settled"))
    balance, active, total = await _balance(db, key)
    assert balance == total and active == 0
    charged = await db.read(sa.select(sa.func.count()).select_from(ledger)
                            .where(ledger.c.kind == "settle"))
    assert balance == 100 * PRICE - PRICE * next(iter(charged[0].values()))


async def test_reaper_give_up_refunds(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", 5 * PRICE)
    store = TaskStore(db)
    task = await _submit(store, key)
    await store.claim("w1", 0.001)
    await asyncio.sleep(0.01)
    assert await store.requeue_expired(max_attempts=1) == (0, 1)
    done = await store.get(task.id)
    assert done is not None and done.status is TaskStatus.FAILED
    assert await _balance(db, key) == (5 * PRICE, 0, 5 * PRICE)


async def test_concurrency_limit_is_a_conditional_slot(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", None, concurrency=2)
    store = TaskStore(db)
    first = await _submit(store, key)
    await _submit(store, key)
    with pytest.raises(RateLimitError) as err:
        await _submit(store, key)
    assert err.value.code == "concurrency_limit_exceeded" and "Retry-After" in err.value.headers
    await store.cancel(first.id, key)
    await _submit(store, key)  # a slot came free
    assert (await _balance(db, key))[1] == 2


async def test_postpaid_keys_are_never_refused_but_recorded(db: Database,
                                                            make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_a", None)
    store = TaskStore(db)
    task = await _submit(store, key, n=3)
    claimed = await _claimed(store, task.id)
    await store.succeed(claimed, "w1", {"images": [{}, {}, {}]}, "sandbox")
    balance, active, total = await _balance(db, key)
    assert balance is None and active == 0 and total == -3 * PRICE


async def test_finishing_queues_a_webhook(db: Database, make_key: MakeKey) -> None:
    key = await _funded(db, make_key, "key_hook", None, webhook_url="https://hooks.test/k")
    plain = await _funded(db, make_key, "key_plain", None)
    store = TaskStore(db)
    by_key = await _submit(store, key)
    by_request = await _submit(store, plain, webhook_url="https://hooks.test/r")
    silent = await _submit(store, plain)
    for task in (by_key, by_request, silent):
        claimed = await _claimed(store, task.id)
        await store.succeed(claimed, "w1", {"images": [{}]}, "sandbox")
    rows = await db.read(sa.select(webhook_deliveries.c.task_id, webhook_deliveries.c.url,
                                   webhook_deliveries.c.event, webhook_deliveries.c.status))
    assert sorted((r["task_id"], r["url"]) for r in rows) == sorted(
        [(by_key.id, "https://hooks.test/k"), (by_request.id, "https://hooks.test/r")])
    assert {(r["event"], r["status"]) for r in rows} == {("task.succeeded", "pending")}
