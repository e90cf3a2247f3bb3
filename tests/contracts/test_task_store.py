"""The task store contract: every database backend passes the same suite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from imagegate.db.database import Database
from imagegate.domain.task import Task, TaskStatus, new_id
from imagegate.tasks.store import TaskStore

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
async def _keys(make_key: Callable[..., Awaitable[str]]) -> None:
    # A task's hold is placed on its key's row, so the keys must exist.
    await make_key("key_a")
    await make_key("key_b")


async def _task(store: TaskStore, tid: str) -> Task:
    task = await store.get(tid)
    assert task is not None
    return task


async def _create(store: TaskStore, key: str = "key_a", **kw: Any) -> str:
    tid = new_id("img_")
    await store.create(task_id=tid, key_id=key, operation="generate", model="gpt-image-2",
                       request={"prompt": "x"}, retention_seconds=kw.get("retention", 3600),
                       now=kw.get("now"))
    return tid


async def test_create_and_read(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    task = await store.get(tid)
    assert task is not None
    assert task.status is TaskStatus.QUEUED and task.progress == 0 and task.attempts == 0
    assert task.request == {"prompt": "x"}
    assert await store.get_for_key(tid, "key_a") is not None
    assert await store.get_for_key(tid, "key_b") is None
    assert await store.get("img_missing") is None


async def test_claim_takes_oldest_and_sets_lease(db: Database) -> None:
    store = TaskStore(db)
    first = await _create(store, now=time.time() - 10)
    await _create(store)
    claimed = await store.claim("w1", 30)
    assert claimed is not None and claimed.id == first
    assert claimed.status is TaskStatus.IN_PROGRESS
    assert claimed.lease_owner == "w1" and claimed.attempts == 1
    assert claimed.lease_expires_at is not None and claimed.lease_expires_at > time.time()


async def test_claim_empty_queue(db: Database) -> None:
    assert await TaskStore(db).claim("w1", 30) is None


async def test_concurrent_claims_never_share_a_task(db: Database) -> None:
    store = TaskStore(db)
    ids = {await _create(store) for _ in range(20)}
    # Separate stores act like separate worker processes (no shared in-process lock).
    stores = [TaskStore(db) for _ in range(5)]

    async def drain(s: TaskStore, owner: str) -> list[str]:
        got = []
        while (t := await s.claim(owner, 30)) is not None:
            got.append(t.id)
        return got

    results = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate(stores)))
    claimed = [tid for r in results for tid in r]
    assert sorted(claimed) == sorted(ids)  # each task exactly once


async def test_succeed_returns_the_task_as_a_read_finds_it(db: Database) -> None:
    """A sync caller answers from what `succeed` returns instead of reading the row back:
    every column must match, the charge settled included."""
    store = TaskStore(db)
    tid = new_id("img_")
    await store.create(task_id=tid, key_id="key_a", operation="generate", model="gpt-image-2",
                       request={"prompt": "x", "n": 2}, retention_seconds=3600, unit_price=5)
    claimed = await store.claim("w1", 30)
    assert claimed is not None and claimed.id == tid
    result = {"images": [{"key": "a", "width": 1, "height": 1}], "usage": {"t": [1, 2.5]},
              "delivered": {"n": 1}}
    written = await store.succeed(claimed, "w1", result, "ch-1", charged=3)
    assert written is not None and written == await store.get(tid)
    assert (written.charged_amount, written.charge_state) == (3, "settled")


async def test_only_the_lease_owner_can_finish(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    await store.claim("w1", 30)
    assert not await store.succeed(await _task(store, tid), "w2", {"images": []}, "sandbox")
    assert not await store.set_progress(tid, "w2", 50)
    assert await store.set_progress(tid, "w1", 50)
    assert (await store.get(tid)).progress == 50  # type: ignore[union-attr]
    assert await store.succeed(await _task(store, tid), "w1", {"images": [], "usage": {}},
                               "sandbox")
    task = await store.get(tid)
    assert task is not None and task.status is TaskStatus.SUCCEEDED and task.progress == 100
    assert task.completed_at is not None and task.provider == "sandbox"
    # A finished task cannot be finished again.
    assert not await store.fail(await _task(store, tid), "w1", {"message": "late"})


async def test_fail_records_error(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    await store.claim("w1", 30)
    err = {"message": "boom", "type": "upstream_error", "param": None, "code": "x"}
    assert await store.fail(await _task(store, tid), "w1", err)
    task = await store.get(tid)
    assert task is not None and task.status is TaskStatus.FAILED and task.error == err


async def test_renew_returns_only_held_leases(db: Database) -> None:
    store = TaskStore(db)
    a, b = await _create(store), await _create(store)
    await store.claim("w1", 1)
    await store.claim("w1", 1)
    await store.cancel(b, "key_a")
    held = await store.renew([a, b], "w1", 60)
    assert held == {a}
    task = await store.get(a)
    assert task is not None and task.lease_expires_at is not None
    assert task.lease_expires_at > time.time() + 30


async def test_cancel_queued_running_and_finished(db: Database) -> None:
    store = TaskStore(db)
    queued = await _create(store)
    cancelled = await store.cancel(queued, "key_a")
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert cancelled.error is not None and cancelled.error["code"] == "task_cancelled"
    # Idempotent, and invisible to other keys.
    again = await store.cancel(queued, "key_a")
    assert again is not None and again.status is TaskStatus.CANCELLED
    assert await store.cancel(queued, "key_b") is None

    running = await _create(store)
    await store.claim("w1", 30)
    assert (await store.cancel(running, "key_a")).status is TaskStatus.CANCELLED  # type: ignore[union-attr]
    # The worker's late success is refused.
    assert not await store.succeed(await _task(store, running), "w1", {"images": []}, "sandbox")

    done = await _create(store)
    await store.claim("w1", 30)
    await store.succeed(await _task(store, done), "w1", {"images": []}, "sandbox")
    assert (await store.cancel(done, "key_a")).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]


async def test_reaper_requeues_then_gives_up(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    for attempt in (1, 2):
        claimed = await store.claim(f"dead{attempt}", 0.01)
        assert claimed is not None and claimed.attempts == attempt
        await asyncio.sleep(0.05)
        requeued, failed = await store.requeue_expired(max_attempts=3)
        assert (requeued, failed) == (1, 0)
        task = await store.get(tid)
        assert task is not None and task.status is TaskStatus.QUEUED and task.lease_owner is None
    await store.claim("dead3", 0.01)
    await asyncio.sleep(0.05)
    assert await store.requeue_expired(max_attempts=3) == (0, 1)
    task = await store.get(tid)
    assert task is not None and task.status is TaskStatus.FAILED
    assert task.error is not None and task.error["code"] == "worker_lost"


async def test_reaper_leaves_live_leases(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    await store.claim("w1", 60)
    assert await store.requeue_expired(max_attempts=3) == (0, 0)
    assert (await store.get(tid)).status is TaskStatus.IN_PROGRESS  # type: ignore[union-attr]


async def test_release_hands_back_without_counting(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    await store.claim("w1", 60)
    assert await store.release([tid], "w1") == 1
    task = await store.get(tid)
    assert task is not None and task.status is TaskStatus.QUEUED and task.attempts == 0


async def test_upstream_id_is_recorded(db: Database) -> None:
    store = TaskStore(db)
    tid = await _create(store)
    await store.claim("w1", 60)
    assert await store.set_upstream(tid, "w1", "apimart", "task_123")
    task = await store.get(tid)
    assert task is not None and task.upstream_task_id == "task_123"


async def test_expired_tasks_are_taken_and_deleted(db: Database) -> None:
    store = TaskStore(db)
    old = await _create(store, retention=1, now=time.time() - 100)
    await store.claim("w1", 60)
    await store.succeed(await _task(store, old), "w1", {"images": []}, "sandbox")
    active_old = await _create(store, retention=1, now=time.time() - 100)
    fresh = await _create(store)
    expired = await store.take_expired()
    assert [t.id for t in expired] == [old]  # running/queued tasks are never cleaned
    assert await store.delete([old]) == 1
    assert await store.get(old) is None
    assert await store.get(active_old) is not None and await store.get(fresh) is not None


async def test_count_by_status(db: Database) -> None:
    store = TaskStore(db)
    for _ in range(3):
        await _create(store)
    await store.claim("w1", 60)
    assert await store.count_by_status() == {"queued": 2, "in_progress": 1}


async def test_queue_position_follows_the_claim_order(db: Database) -> None:
    store = TaskStore(db)
    now = time.time()
    ids = [await _create(store, now=now - 10 + i // 2) for i in range(4)]  # ties in pairs
    tasks_ = [await _task(store, t) for t in ids]
    order = sorted(tasks_, key=lambda t: (t.created_at, t.id))
    assert [await store.queue_position(t) for t in order] == [0, 1, 2, 3]
    claimed = await store.claim("w1", 30)
    assert claimed is not None and claimed.id == order[0].id
    assert [await store.queue_position(t) for t in order[1:]] == [0, 1, 2]


async def test_recent_durations_of_a_model_and_tier(db: Database) -> None:
    store = TaskStore(db)
    for tier in ("1k", "2k", "1k"):
        tid = new_id("img_")
        await store.create(task_id=tid, key_id="key_a", operation="generate",
                           model="gpt-image-2", request={"prompt": "x", "tier": tier},
                           retention_seconds=3600)
        task = await store.claim("w1", 30)
        assert task is not None and task.id == tid
        assert await store.succeed(task, "w1", {"images": []}, "sandbox")
    durations = await store.recent_durations("gpt-image-2", "1k", 10)
    assert len(durations) == 2 and all(0 <= d < 60 for d in durations)
    assert len(await store.recent_durations("gpt-image-2", "2k", 10)) == 1
    assert await store.recent_durations("dall-e-3", "1k", 10) == []
    assert len(await store.recent_durations("gpt-image-2", "1k", 1)) == 1
