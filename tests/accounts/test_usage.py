"""Usage reports from ledger rows written the way the billing core writes them."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from imagegate.accounts.keys import KeyStore
from imagegate.accounts.usage import UsageReporter
from imagegate.accounts.when import parse_when
from imagegate.db.database import Database
from imagegate.db.tables import ledger
from imagegate.errors import InvalidRequestError, NotFoundError

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0  # the rows' own times: fixed, so ranges are exact


async def row(db: Database, key_id: str, task_id: str | None, kind: str, amount: int,
              images: int = 0, model: str | None = "gpt-image-2", at: float = T0) -> None:
    await db.write(ledger.insert().values(key_id=key_id, task_id=task_id, kind=kind,
                                          amount=amount, model=model, tier="1k",
                                          images=images, created_at=at))


async def task(db: Database, key_id: str, task_id: str, *, price: int, n: int,
               produced: int | None, model: str = "gpt-image-2", at: float = T0) -> None:
    """hold, then settle (produced) / refund (produced=-1) / nothing (None: still running)."""
    await row(db, key_id, task_id, "hold", -price * n, n, model, at)
    if produced is None:
        return
    if produced < 0:
        await row(db, key_id, task_id, "refund", price * n, -n, model, at + 1)
    else:
        await row(db, key_id, task_id, "settle", price * (n - produced), produced - n, model,
                  at + 1)


@pytest.fixture
async def clean(db: Database) -> Database:
    # The PostgreSQL fixture empties tasks and api_keys only; reports span all keys.
    await db.write(sa.delete(ledger))
    return db


async def test_report_per_key_and_model(clean: Database) -> None:
    db = clean
    keys = KeyStore(db)
    _, a = await keys.create("alice", balance=10_000_000)
    _, b = await keys.create("bob")
    await task(db, a.id, "t1", price=40_000, n=4, produced=3)  # 3 images, 0.12
    await task(db, a.id, "t2", price=40_000, n=2, produced=-1)  # failed: refunded
    await task(db, a.id, "t3", price=40_000, n=1, produced=None)  # still running: held
    await task(db, a.id, "t4", price=100_000, n=1, produced=1, model="nano")
    await task(db, b.id, "t5", price=40_000, n=1, produced=1)
    await task(db, a.id, "old", price=1, n=1, produced=1, at=T0 - 10_000)

    rows = await UsageReporter(db).report(T0 - 1, T0 + 100)
    got = {(r.key_name, r.model): r for r in rows}
    assert list(got) == [("alice", "gpt-image-2"), ("alice", "nano"), ("bob", "gpt-image-2")]
    ag = got[("alice", "gpt-image-2")]
    assert (ag.tasks, ag.images, ag.spend, ag.refunds, ag.held) == (
        3, 3, 120_000 + 40_000, 80_000, 40_000)
    assert ag.to_json()["spend"] == "0.16" and ag.to_json()["holds_outstanding"] == "0.04"
    assert got[("alice", "nano")].spend == 100_000
    assert got[("bob", "gpt-image-2")].images == 1

    only = await UsageReporter(db).report(T0 - 1, T0 + 100, key_id=a.id, model="nano")
    assert [(r.model, r.images) for r in only] == [("nano", 1)]
    everything = await UsageReporter(db).report(None, T0 + 100, key_id=a.id)
    assert sum(r.tasks for r in everything) == 5
    assert await UsageReporter(db).report(T0 + 1000, T0 + 2000) == []


async def test_for_key(clean: Database) -> None:
    db = clean
    keys = KeyStore(db)
    _, a = await keys.create("alice", balance=5_000_000)
    await keys.topup(a.id, 1_000_000)
    await task(db, a.id, "t1", price=250_000, n=2, produced=2, at=time.time() - 5)
    await task(db, a.id, "t2", price=250_000, n=1, produced=-1, at=time.time() - 5)
    report = await UsageReporter(db, currency="EUR").for_key(a.id)
    assert report["currency"] == "EUR" and report["key_id"] == a.id
    assert report["balance"] == "6.00"  # the key row itself (billing moves it, not us)
    assert report["topups"] == "6.00" and report["adjustments"] == "0.00"
    assert (report["tasks"], report["images"], report["spend"], report["refunds"]) == (
        2, 2, "0.50", "0.25")
    assert report["models"] == [{"model": "gpt-image-2", "tasks": 2, "images": 2,
                                 "spend": "0.50", "refunds": "0.25",
                                 "holds_outstanding": "0.00", "refused": 0}]
    _, post = await keys.create("postpaid")
    assert (await UsageReporter(db).for_key(post.id))["balance"] is None
    with pytest.raises(NotFoundError):
        await UsageReporter(db).for_key("key_nope")
    with pytest.raises(InvalidRequestError) as err:
        await UsageReporter(db).for_key(a.id, since=T0, until=T0)
    assert err.value.param == "until"


async def test_task_cost(clean: Database) -> None:
    db = clean
    await task(db, "key_x", "img_a", price=30_000, n=3, produced=2)
    await task(db, "key_x", "img_b", price=30_000, n=3, produced=-1)
    await task(db, "key_x", "img_c", price=30_000, n=3, produced=None)
    reporter = UsageReporter(db)
    assert await reporter.task_cost("img_a") == 60_000
    assert await reporter.task_cost("img_b") == 0
    assert await reporter.task_cost("img_c") == 90_000
    assert await reporter.task_cost("img_unknown") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1800000000", 1_800_000_000.0), ("2027-01-15", 1_800_000_000.0 - 28_800),
     ("2027-01-15T08:00:00Z", 1_800_000_000.0), ("2027-01-15T09:00:00+01:00", 1_800_000_000.0),
     (1_800_000_000, 1_800_000_000.0)],
)
def test_parse_when(text: str, expected: float) -> None:
    assert parse_when(text, param="since") == expected


def test_parse_when_spans_and_refusals() -> None:
    assert parse_when("7d", param="since", now=T0, span=-1) == T0 - 7 * 86_400
    assert parse_when("12h", param="expires", now=T0, span=1) == T0 + 12 * 3600
    for bad in ("7d", "yesterday", "", "-5", "nan", "1e20", True,
                # Epoch seconds only as canonical ASCII (domain/numbers.py).
                "+1800000000", "01800000000", "1_800_000_000", " 1800000000",
                "１８００００００００", "1e9", "２０２７-01-15"):
        with pytest.raises(InvalidRequestError) as err:
            parse_when(bad, param="since")  # type: ignore[arg-type]
        assert err.value.param == "since"
