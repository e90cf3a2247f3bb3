"""`Database`, on every backend: what callers rely on whichever path a statement takes
(SQLite runs prebuilt statements on its driver directly)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.database import Database, Step
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
