"""WebhookStore on SQLite and PostgreSQL: exclusive claims, leases, outcomes, the log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from imagegate.db.database import Database
from imagegate.errors import InvalidRequestError, NotFoundError
from imagegate.webhooks.store import WebhookStore

pytestmark = pytest.mark.anyio

InsertKey = Callable[..., Awaitable[str]]  # fixtures of tests/webhooks/conftest.py
InsertDelivery = Callable[..., Awaitable[str]]


async def test_claim_is_exclusive_between_owners(
    wdb: Database, insert_key: InsertKey, insert_delivery: InsertDelivery
) -> None:
    key = await insert_key()
    ids = {await insert_delivery(key) for _ in range(20)}
    a, b = WebhookStore(wdb), WebhookStore(wdb)
    rounds = await asyncio.gather(*(s.claim_due(o, 30, 7) for _ in range(3)
                                    for s, o in ((a, "A"), (b, "B"))))
    claimed = [d.id for batch in rounds for d in batch]
    assert len(claimed) == len(set(claimed)) == 20  # every one exactly once
    assert set(claimed) == ids
    assert all(d.attempts == 1 and d.lease_owner in ("A", "B") for r in rounds for d in r)
    assert await a.claim_due("C", 30, 50) == []  # all leased


async def test_due_time_and_lease_expiry(
    wdb: Database, insert_key: InsertKey, insert_delivery: InsertDelivery
) -> None:
    store = WebhookStore(wdb)
    key = await insert_key()
    now = time.time()
    later = await insert_delivery(key, next_attempt_at=now + 100)
    due = await insert_delivery(key, created_at=now)
    assert [d.id for d in await store.claim_due("A", 10, 10, now=now)] == [due]
    assert await store.claim_due("B", 10, 10, now=now + 5) == []  # lease still held
    # A's lease lapsed (a dead dispatcher): B takes it over, and so does the later one.
    taken = await store.claim_due("B", 10, 10, now=now + 101)
    assert {d.id for d in taken} == {due, later}
    assert {d.id: d.attempts for d in taken}[due] == 2
    # A can no longer record anything for it
    assert not await store.mark_delivered(due, "A", 200)
    assert not await store.set_payload(due, "A", "{}")
    assert await store.set_payload(due, "B", '{"a":1}')
    assert not await store.set_payload(due, "B", '{"a":2}')  # the first body stays
    assert await store.mark_delivered(due, "B", 204)
    got = await store.get_for_key(due, key)
    assert got is not None and got.status == "delivered" and got.last_status_code == 204
    assert got.payload == '{"a":1}' and got.lease_owner is None and got.delivered_at


async def test_retry_failed_requeue_and_release(
    wdb: Database, insert_key: InsertKey, insert_delivery: InsertDelivery
) -> None:
    store = WebhookStore(wdb)
    key, other = await insert_key(), await insert_key()
    did = await insert_delivery(key)
    now = time.time()
    [d] = await store.claim_due("A", 30, 5, now=now)
    assert await store.mark_retry(did, "A", now + 50, 500, "HTTP 500")
    assert await store.claim_due("A", 30, 5, now=now + 10) == []
    [d] = await store.claim_due("A", 30, 5, now=now + 51)
    assert d.attempts == 2 and d.last_error == "HTTP 500"
    assert await store.mark_failed(did, "A", None, "timed out")
    assert await store.claim_due("A", 30, 5, now=now + 1000) == []
    assert not await store.requeue(did, other)  # not theirs
    assert await store.requeue(did, key, now=now + 60)
    assert not await store.requeue(did, key)  # pending now, not failed
    [d] = await store.claim_due("A", 30, 5, now=now + 61)
    assert d.attempts == 1 and d.status == "pending"
    assert await store.release([did], "A") == 1
    fresh = await store.get_for_key(did, key)
    assert fresh is not None and fresh.attempts == 0 and fresh.lease_owner is None


async def test_list_is_per_key_and_paginates(
    wdb: Database, insert_key: InsertKey, insert_delivery: InsertDelivery
) -> None:
    store = WebhookStore(wdb)
    key, other = await insert_key(), await insert_key()
    base = time.time()
    # Pairs with equal created_at: the id breaks ties, so pages neither skip nor repeat.
    ids = [await insert_delivery(key, created_at=base + i // 2, task_id=f"t{i % 3}")
           for i in range(9)]
    await insert_delivery(other)
    newest_first = [d.id for d in await store.list_for_key(key, 100)]
    assert set(newest_first) == set(ids) and len(newest_first) == 9
    pages: list[str] = []
    after: str | None = None
    while True:
        page = await store.list_for_key(key, 4, after=after)
        pages += [d.id for d in page]
        if len(page) < 4:
            break
        after = page[-1].id
    assert pages == newest_first
    back = await store.list_for_key(key, 3, before=newest_first[6])
    assert [d.id for d in back] == newest_first[3:6]
    assert {d.task_id for d in await store.list_for_key(key, 100, task_id="t1")} == {"t1"}
    assert len(await store.list_for_key(key, 100, task_id="t1")) == 3
    with pytest.raises(InvalidRequestError):
        await store.list_for_key(other, 5, after=ids[0])  # another key's id is no cursor
    assert await store.get_for_key(ids[0], other) is None


async def test_key_secret_is_created_once(wdb: Database, insert_key: InsertKey) -> None:
    store = WebhookStore(wdb)
    key = await insert_key(url="https://example.com/h")
    secrets = await asyncio.gather(*(WebhookStore(wdb).key_secret(key) for _ in range(5)))
    assert len(set(secrets)) == 1 and secrets[0].startswith("whsec_")
    assert await store.key_webhook(key) == ("https://example.com/h", secrets[0])
    preset = await insert_key(secret="whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert await store.key_secret(preset) == "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    with pytest.raises(NotFoundError):
        await store.key_secret("key_missing")
