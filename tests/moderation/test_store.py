"""The moderation store on SQLite and PostgreSQL: the admin's global list, refusal rows,
their counts (also in usage reports) and their purge; and the key columns of migration 0003."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from imagegate.accounts.keys import KeyStore
from imagegate.accounts.usage import UsageReporter
from imagegate.db.database import Database
from imagegate.db.tables import moderation_refusals
from imagegate.moderation.store import ModerationStore

pytestmark = pytest.mark.anyio


async def test_the_global_list_is_replaced_whole(db: Database) -> None:
    store = ModerationStore(db, 3600)
    assert await store.global_entries() == []
    await store.replace_global(["[brand]", "acme", "炸弹"])
    await store.replace_global(["one", "炸弹"])
    assert await store.global_entries() == ["one", "炸弹"]


async def test_refusals_are_counted_per_key_source_and_category(db: Database) -> None:
    keys = KeyStore(db)
    _, alice = await keys.create("alice")
    _, bob = await keys.create("bob")
    store = ModerationStore(db, 3600)
    for key, source, category in [(alice, "blocklist", "weapons"), (alice, "blocklist",
                                  "weapons"), (alice, "model", "violence"),
                                  (bob, "upstream", "upstream")]:
        await store.record_refusal(key.id, source, category, "gpt-image-2")
    counts = await store.refusal_counts(0, time.time() + 1)
    assert [(c.key_name, c.source, c.category, c.refused) for c in counts] == [
        ("alice", "blocklist", "weapons", 2), ("alice", "model", "violence", 1),
        ("bob", "upstream", "upstream", 1)]
    only_bob = await store.refusal_counts(0, time.time() + 1, bob.id)
    assert [c.refused for c in only_bob] == [1]
    report = await UsageReporter(db).for_key(alice.id)
    assert report["refused"] == 3 and report["tasks"] == 0
    assert report["models"] == [{"model": "gpt-image-2", "tasks": 0, "images": 0,
                                 "spend": "0.00", "refunds": "0.00",
                                 "holds_outstanding": "0.00", "refused": 3}]


async def test_old_refusals_are_purged(db: Database) -> None:
    store = ModerationStore(db, 60)
    await store.record_refusal("key_a", "blocklist", "x", None)
    await db.write(moderation_refusals.update().values(created_at=time.time() - 120))
    await store.record_refusal("key_a", "blocklist", "y", None)
    assert await store.purge() == 1
    rows = await db.read(sa.select(moderation_refusals.c.category))
    assert [r["category"] for r in rows] == ["y"]


async def test_key_moderation_settings_round_trip(db: Database) -> None:
    keys = KeyStore(db)
    _, key = await keys.create("k", moderation_blocklist=["  炸弹 ", "", "re:x+"],
                               allow_low_moderation=True)
    assert key.moderation_blocklist == ("炸弹", "re:x+") and key.allow_low_moderation
    stored = await keys.require(key.id)
    assert stored.moderation_blocklist == ("炸弹", "re:x+") and stored.allow_low_moderation
    cleared = await keys.update(key.id, moderation_blocklist=None, allow_low_moderation=False)
    assert cleared.moderation_blocklist is None and not cleared.allow_low_moderation
