"""`Database`, on every backend: what callers rely on whichever path a statement takes
(SQLite runs prebuilt statements on its driver directly)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.database import ConditionFailed, Database, Step
from imagegate.db.tables import idempotency_keys

pytestmark = pytest.mark.anyio

INSERT = idempotency_keys.insert()  # built once, as the stores build theirs
COUNT = sa.select(sa.func.count()).select_from(idempotency_keys)


def row(idem_key: str) -> dict[str, Any]:
    now = time.time()
    return {"key_id": "key_a", "idem_key": idem_key, "request_hash": "h", "task_id": "img_1",
            "created_at": now, "expires_at": now + 60}


async def test_a_lost_insert_race_is_sqlalchemys_integrity_error(db: Database) -> None:
    """The intake catches `sqlalchemy.exc.IntegrityError` when two identical requests race
    for one idempotency key; a driver's own exception would be a 500."""
    await db.write(INSERT, row("k1"))
    with pytest.raises(sa.exc.IntegrityError):
        await db.write(INSERT, row("k1"))


async def test_a_failed_transaction_changes_nothing(db: Database) -> None:
    await db.write(INSERT, row("k1"))
    with pytest.raises(sa.exc.IntegrityError):
        await db.transaction([Step(INSERT, row("k2")), Step(INSERT, row("k1"))])
    assert (await db.read(COUNT))[0]["count_1"] == 1  # k2 was rolled back with it
    await db.write(INSERT, row("k2"))  # and the connection is usable afterwards
    assert (await db.read(COUNT))[0]["count_1"] == 2


async def test_concurrent_transactions_each_stand_alone(db: Database) -> None:
    """Many transactions at once (SQLite commits those queued together in one group): each
    caller learns its own outcome, and a failed one keeps nothing, whatever else commits."""
    await db.write(INSERT, row("taken"))
    missing = idempotency_keys.update().where(idempotency_keys.c.idem_key == "nobody").values(
        task_id="x")

    def steps(i: int) -> list[Step]:
        if i == 3:  # its first insert is kept in no case: the second one clashes
            return [Step(INSERT, row(f"a{i}")), Step(INSERT, row("taken"))]
        if i == 7:  # a failed condition after a write
            return [Step(INSERT, row(f"a{i}")), Step(missing, require="missing")]
        return [Step(INSERT, row(f"a{i}")), Step(INSERT, row(f"b{i}"))]

    results = await asyncio.gather(*(db.transaction(steps(i)) for i in range(12)),
                                   return_exceptions=True)
    assert isinstance(results[3], sa.exc.IntegrityError)
    assert isinstance(results[7], ConditionFailed) and results[7].label == "missing"
    assert all(isinstance(r, list) and [x.rowcount for x in r] == [1, 1]
               for i, r in enumerate(results) if i not in (3, 7))
    keys = {r["idem_key"] for r in await db.read(sa.select(idempotency_keys.c.idem_key))}
    assert keys == {"taken"} | {f"{p}{i}" for i in range(12) if i not in (3, 7) for p in "ab"}


async def _kill_other_connections(db: Database) -> int:
    """Terminate every other server connection of this database (as a restart would)."""
    rows = await db.read(sa.text(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    return int(rows[0]["n"])


@pytest.mark.parametrize("settle", [0.0, 0.3])
async def test_connections_the_server_closed_are_replaced(db: Database, settle: float) -> None:
    """PostgreSQL has no pool pre-ping (three round trips per checkout): a dead pooled
    connection is dropped at checkout once asyncpg has seen it close, and a read that meets
    one before that runs again on a fresh connection."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has no server that could close the pooled connections under it")
    await db.write(INSERT, row("k1"))
    # Several connections in the pool at once, so the one doing the killing has company.
    await asyncio.gather(*(db.read(COUNT) for _ in range(6)))
    assert await _kill_other_connections(db) >= 1
    await asyncio.sleep(settle)
    counts = await asyncio.gather(*(db.read(COUNT) for _ in range(6)))
    assert [c[0]["count_1"] for c in counts] == [1] * 6
    if settle:  # writes are not run twice (a commit may have landed): they rely on checkout
        await db.write(INSERT, row("k2"))
        assert (await db.read(COUNT))[0]["count_1"] == 2
