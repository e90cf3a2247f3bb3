"""KeyStore against both databases: options, ledger rows, rotation, revocation, expiry and the
conditional balance moves (top-up, adjust) that keep SUM(ledger) == balance."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from imagegate.accounts import keys as keys_module
from imagegate.accounts.key_fields import UNSET
from imagegate.accounts.keys import KeyStore, hash_key
from imagegate.db.database import Database, read_scalar
from imagegate.db.tables import api_keys, ledger
from imagegate.errors import InvalidRequestError, NotFoundError

pytestmark = pytest.mark.anyio


async def ledger_sum(db: Database, key_id: str) -> int:
    value = await read_scalar(db, sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0))
                              .where(ledger.c.key_id == key_id))
    return int(value)


async def ledger_rows(db: Database, key_id: str) -> list[tuple[str, int]]:
    rows = await db.read(sa.select(ledger.c.kind, ledger.c.amount)
                         .where(ledger.c.key_id == key_id).order_by(ledger.c.id))
    return [(r["kind"], int(r["amount"])) for r in rows]


async def test_create_with_options_writes_a_topup(db: Database) -> None:
    store = KeyStore(db)
    expires = time.time() + 3600
    plaintext, key = await store.create(
        "app", models=["gpt-image-2", "gpt-image-2", " nano "], rpm=60, concurrency=2,
        balance=10_500_000, expires_at=expires, webhook_url="https://example.com/hook")
    assert plaintext.startswith("ig_") and key.prefix == plaintext[:10]
    assert key.allowed_models == ("gpt-image-2", "nano")
    got = await store.get(key.id)
    assert got == key
    assert got.rpm == 60 and got.concurrency == 2 and got.balance == 10_500_000
    assert got.expires_at == pytest.approx(expires) and not got.expired
    assert await ledger_rows(db, key.id) == [("topup", 10_500_000)]
    secret = await store.webhook_secret(key.id)
    assert secret is not None and secret.startswith("whsec_")
    stored = await db.read(sa.select(api_keys.c.key_hash).where(api_keys.c.id == key.id))
    assert stored[0]["key_hash"] == hash_key(plaintext)
    assert await store.authenticate(plaintext) == key
    assert key.allows("nano") and not key.allows("other")


async def test_postpaid_key_has_no_ledger_rows(db: Database) -> None:
    store = KeyStore(db)
    _, key = await store.create("postpaid")
    assert key.balance is None and key.allowed_models is None and key.allows("anything")
    assert await ledger_rows(db, key.id) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("rpm", 0), ("concurrency", -1), ("models", []), ("expires_at", float("nan")),
     ("name", "")],
)
async def test_create_rejects_bad_options(db: Database, field: str, value: object) -> None:
    store = KeyStore(db)
    args: dict[str, object] = {field: value}
    name = args.pop("name", "x")
    with pytest.raises(InvalidRequestError) as err:
        await store.create(name, **args)  # type: ignore[arg-type]
    assert err.value.param == field
    assert await store.count() == 0


async def test_rotate_keeps_id_and_balance(db: Database) -> None:
    store = KeyStore(db)
    old, key = await store.create("r", balance=5_000_000, rpm=3)
    new, rotated = await store.rotate(key.id)
    assert new != old and rotated.id == key.id and rotated.prefix == new[:10]
    assert rotated.balance == 5_000_000 and rotated.rpm == 3
    assert await store.authenticate(old) is None
    assert (await store.authenticate(new)) == rotated
    with pytest.raises(NotFoundError):
        await store.rotate("key_nope")


async def test_revoke_and_unknown_ids(db: Database) -> None:
    store = KeyStore(db)
    plaintext, key = await store.create("x", balance=1)
    assert await store.authenticate(plaintext) is not None  # now cached
    revoked = await store.revoke(key.id)
    assert revoked.revoked_at is not None and not revoked.active
    assert await store.authenticate(plaintext) is None
    assert (await store.revoke(key.id)).revoked_at == revoked.revoked_at  # first time kept
    for call in (store.revoke("key_nope"), store.topup("key_nope", 1),
                 store.topup(key.id, 1), store.update(key.id, rpm=5),
                 store.update("key_nope", rpm=5), store.rotate(key.id)):
        with pytest.raises(NotFoundError):
            await call
    assert await ledger_rows(db, key.id) == [("topup", 1)]


async def test_expired_key_does_not_authenticate_even_from_cache(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(db, cache_seconds=3600)
    plaintext, key = await store.create("soon", expires_at=time.time() + 60)
    assert await store.authenticate(plaintext) is not None  # cached for an hour

    class Later:  # the keys module's clock, 61 s on; the cache's monotonic clock unchanged
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def time() -> float:
            return real() + 61

    real = time.time
    monkeypatch.setattr(keys_module, "time", Later)
    assert await store.authenticate(plaintext) is None
    found = await store.find(plaintext)
    assert found is not None and found.id == key.id and found.expired  # find() still knows
    monkeypatch.undo()
    _, past = await store.create("past", expires_at=time.time() - 1)
    assert past.expired


async def test_update_sets_and_clears(db: Database) -> None:
    store = KeyStore(db)
    plaintext, key = await store.create("u", models=["a"], rpm=5)
    assert (await store.authenticate(plaintext)) is not None
    updated = await store.update(key.id, name="renamed", models=None, rpm=UNSET,
                                 concurrency=4, webhook_url="https://h.example/x")
    assert updated.name == "renamed" and updated.allowed_models is None
    assert updated.rpm == 5 and updated.concurrency == 4
    assert updated.webhook_url == "https://h.example/x"
    cleared = await store.update(key.id, rpm=None, webhook_url=None)
    assert cleared.rpm is None and cleared.webhook_url is None
    assert (await store.authenticate(plaintext)) == cleared  # the cache was dropped
    assert await store.update(key.id) == cleared  # nothing given: nothing changed
    with pytest.raises(InvalidRequestError):
        await store.update(key.id, rpm=0)


async def test_topup_and_adjust_are_conditional(db: Database) -> None:
    store = KeyStore(db)
    _, key = await store.create("m", balance=2_000_000)
    for bad in (0, -5):
        with pytest.raises(InvalidRequestError):
            await store.topup(key.id, bad)
    assert (await store.topup(key.id, 1_500_000, note="invoice 7")).balance == 3_500_000
    assert (await store.adjust(key.id, -500_000, "correction")).balance == 3_000_000
    with pytest.raises(InvalidRequestError) as err:
        await store.adjust(key.id, -3_000_001, "too much")
    assert err.value.param == "amount"
    with pytest.raises(InvalidRequestError):
        await store.adjust(key.id, 0, "nothing")
    assert (await store.adjust(key.id, -3_000_000, "to zero")).balance == 0
    assert await ledger_rows(db, key.id) == [
        ("topup", 2_000_000), ("topup", 1_500_000), ("adjust", -500_000),
        ("adjust", -3_000_000)]
    assert await ledger_sum(db, key.id) == 0
    notes = await db.read(sa.select(ledger.c.note).where(ledger.c.key_id == key.id,
                                                         ledger.c.kind == "topup"))
    assert {r["note"] for r in notes} == {"initial balance", "invoice 7"}


async def test_postpaid_topup_becomes_prepaid_and_ledger_matches(db: Database) -> None:
    store = KeyStore(db)
    _, key = await store.create("pp")
    # Usage while postpaid (what billing writes for a NULL balance): a settled task.
    await db.write(ledger.insert().values(key_id=key.id, task_id="img_1", kind="hold",
                                          amount=-300_000, images=1, created_at=time.time()))
    with pytest.raises(InvalidRequestError):
        await store.adjust(key.id, -1, "below zero on a postpaid key")
    topped = await store.topup(key.id, 1_000_000)
    assert topped.balance == 1_000_000
    assert await ledger_sum(db, key.id) == 1_000_000
    kinds = [k for k, _ in await ledger_rows(db, key.id)]
    assert kinds == ["hold", "adjust", "topup"]
    await store.topup(key.id, 1)  # already prepaid: no second opening row
    assert [k for k, _ in await ledger_rows(db, key.id)] == [*kinds, "topup"]
    assert await ledger_sum(db, key.id) == 1_000_001


async def test_ledger_sum_equals_balance_after_concurrent_moves(db: Database) -> None:
    store = KeyStore(db)
    _, key = await store.create("c", balance=1_000_000)
    moves = [store.topup(key.id, 250_000) for _ in range(8)]
    moves += [store.adjust(key.id, -400_000, "take") for _ in range(12)]
    results = await asyncio.gather(*moves, return_exceptions=True)
    assert all(isinstance(r, InvalidRequestError) for r in results if isinstance(r, Exception))
    final = await store.get(key.id)
    assert final is not None and final.balance is not None and final.balance >= 0
    assert final.balance == await ledger_sum(db, key.id)
    assert final.balance == 3_000_000 - 400_000 * sum(
        1 for r in results[8:] if not isinstance(r, Exception))
