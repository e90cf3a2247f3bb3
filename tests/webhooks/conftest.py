"""Webhook test fixtures: a clean `webhook_deliveries` table per test, and helpers that write
rows the way the task service does (a plain insert in the transaction that finishes a task).
The database fixtures are the contract suite's: every test here runs on each backend.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from imagegate.db.database import Database
from imagegate.db.tables import api_keys, webhook_deliveries
from tests.contracts.conftest import database_url, db, postgres_url

__all__ = ["database_url", "db", "insert_delivery", "insert_key", "postgres_url", "wdb"]


@pytest.fixture
async def wdb(db: Database) -> AsyncIterator[Database]:
    # The PostgreSQL database lives for the whole session and the shared `db` fixture only
    # empties tasks and api_keys: start from an empty delivery table too.
    await db.write(sa.delete(webhook_deliveries))
    yield db


@pytest.fixture
def insert_key(wdb: Database) -> Callable[..., Awaitable[str]]:
    async def insert(*, url: str | None = None, secret: str | None = None) -> str:
        key_id = "key_" + uuid.uuid4().hex[:20]
        await wdb.write(api_keys.insert().values(
            id=key_id, name="t", prefix=key_id[:10], key_hash=uuid.uuid4().hex * 2,
            created_at=time.time(), revoked_at=None, webhook_url=url, webhook_secret=secret,
        ))
        return key_id

    return insert


@pytest.fixture
def insert_delivery(wdb: Database) -> Callable[..., Awaitable[str]]:
    async def insert(key_id: str, url: str = "https://example.com/hook", *,
                     task_id: str | None = None, event: str = "task.succeeded",
                     created_at: float | None = None, status: str = "pending",
                     next_attempt_at: float | None = None, **extra: Any) -> str:
        now = time.time() if created_at is None else created_at
        msg_id = "msg_" + uuid.uuid4().hex[:24]
        await wdb.write(webhook_deliveries.insert().values(
            id=msg_id, key_id=key_id, task_id=task_id or "task_" + uuid.uuid4().hex[:12],
            event=event, url=url, payload=None, status=status, attempts=0,
            next_attempt_at=now if next_attempt_at is None else next_attempt_at,
            created_at=now, **extra,
        ))
        return msg_id

    return insert
