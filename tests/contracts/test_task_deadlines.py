"""Task deadlines in the store, on every database backend: an overdue task is cancelled with
`deadline_exceeded` and refunded exactly once, whoever sees the deadline pass first (the
worker's timer, a sweeper, a sync waiter), and a success at the same moment either wins whole
or changes nothing — never charged and refunded both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.database import Database, read_scalar
from imagegate.db.tables import api_keys, ledger, webhook_deliveries
from imagegate.domain.task import Task, TaskStatus, new_id
from imagegate.tasks.store import TaskStore

pytestmark = pytest.mark.anyio

PRICE = 40_000
BALANCE = 1_000_000


@pytest.fixture(autouse=True)
async def _key(make_key: Callable[..., Awaitable[str]]) -> None:
    await make_key("key_d", balance=BALANCE, webhook_url="https://hooks.example/h")


async def _create(store: TaskStore, deadline: float | None, *, now: float | None = None,
                  **kw: Any) -> Task:
    return await store.create(
        task_id=new_id("img_"), key_id="key_d", operation="generate", model="gpt-image-2",
        request={"prompt": "x", "n": 1, "tier": "1k", "deadline_seconds": deadline},
        retention_seconds=3600, unit_price=PRICE, now=now, **kw)


async def _balance(db: Database) -> int:
    return int(await read_scalar(db, sa.select(api_keys.c.balance)
                                 .where(api_keys.c.id == "key_d")))


async def _kinds(db: Database, task_id: str) -> list[str]:
    rows = await db.read(sa.select(ledger.c.kind, ledger.c.note)
                         .where(ledger.c.task_id == task_id).order_by(ledger.c.id))
    return [r["kind"] for r in rows]


async def test_deadline_is_stored_from_the_request(db: Database) -> None:
    store = TaskStore(db)
    now = time.time()
    task = await _create(store, 90, now=now)
    assert task.deadline_at == pytest.approx(now + 90)
    read = await store.get(task.id)
    assert read is not None and read.deadline_at == pytest.approx(now + 90)
    none = await _create(store, None)
    assert none.deadline_at is None


async def test_the_sweeper_cancels_overdue_tasks_and_refunds_them(db: Database) -> None:
    store = TaskStore(db)
    now = time.time()
    queued = await _create(store, 5, now=now - 10)  # overdue, never claimed
    running = await _create(store, 5, now=now - 10, lease=("w1", 30))  # overdue, running
    later = await _create(store, 3600, now=now)  # not yet
    free = await _create(store, None, now=now - 10)  # no deadline at all
    assert await _balance(db) == BALANCE - 4 * PRICE

    assert sorted(await store.expire_overdue()) == sorted([queued.id, running.id])
    assert await store.expire_overdue() == []  # a second pass finds nothing

    for task in (queued, running):
        got = await store.get(task.id)
        assert got is not None and got.status is TaskStatus.CANCELLED
        assert got.error is not None and got.error["code"] == "deadline_exceeded"
        assert got.charge_state == "refunded" and got.lease_owner is None
        assert await _kinds(db, task.id) == ["hold", "refund"]
    for task in (later, free):
        got = await store.get(task.id)
        assert got is not None and got.status is TaskStatus.QUEUED
    assert await _balance(db) == BALANCE - 2 * PRICE
    events = await db.read(sa.select(webhook_deliveries.c.event, webhook_deliveries.c.task_id))
    assert sorted(r["task_id"] for r in events if r["event"] == "task.cancelled") \
        == sorted([queued.id, running.id])
    # Nor can the worker that was running it record anything any more.
    assert not await store.succeed(running, "w1", {"images": []}, "sandbox")


async def test_expire_only_after_the_deadline_and_only_once(db: Database) -> None:
    store = TaskStore(db)
    task = await _create(store, 60)
    assert not await store.expire(task.id)  # not yet
    assert await store.expire(task.id, now=time.time() + 61)
    assert not await store.expire(task.id, now=time.time() + 62)  # already cancelled
    assert await _kinds(db, task.id) == ["hold", "refund"]
    assert await _balance(db) == BALANCE


async def test_a_finished_task_is_never_expired(db: Database) -> None:
    store = TaskStore(db)
    task = await _create(store, 1, lease=("w1", 30))
    assert await store.succeed(task, "w1", {"images": [{}]}, "sandbox")
    assert not await store.expire(task.id, now=time.time() + 5)
    assert await store.expire_overdue(now=time.time() + 5) == []
    got = await store.get(task.id)
    assert got is not None and got.status is TaskStatus.SUCCEEDED
    assert await _kinds(db, task.id) == ["hold", "settle"]


async def test_success_racing_the_deadline_charges_or_refunds_never_both(db: Database) -> None:
    store = TaskStore(db)
    tasks = [await _create(store, 0.001, lease=("w1", 30)) for _ in range(20)]
    await asyncio.sleep(0.01)  # every deadline has passed; each success races its expiry

    async def race(task: Task) -> tuple[bool, bool]:
        won = await asyncio.gather(store.succeed(task, "w1", {"images": [{}]}, "sandbox"),
                                   TaskStore(db).expire(task.id))
        return won[0], won[1]

    outcomes = await asyncio.gather(*(race(t) for t in tasks))
    assert all(succeeded != expired for succeeded, expired in outcomes), outcomes
    charged = 0
    for task, (succeeded, _) in zip(tasks, outcomes, strict=True):
        got = await store.get(task.id)
        assert got is not None
        kinds = await _kinds(db, task.id)
        if succeeded:
            assert got.status is TaskStatus.SUCCEEDED and kinds == ["hold", "settle"]
            charged += PRICE
        else:
            assert got.status is TaskStatus.CANCELLED and kinds == ["hold", "refund"]
    assert await _balance(db) == BALANCE - charged
