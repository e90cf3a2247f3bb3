"""PostgreSQL's prebuilt statements run on asyncpg's own pool (`db/postgres_raw.py`): they
take that path, and a pooled connection the server dropped is replaced, not a failure."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from imagegate.db.database import PostgresDatabase, Step
from imagegate.db.postgres_raw import dsn_of
from imagegate.db.tables import idempotency_keys

pytestmark = pytest.mark.anyio

INSERT = idempotency_keys.insert()
BY_KEY = sa.select(idempotency_keys.c.task_id).where(
    idempotency_keys.c.idem_key == sa.bindparam("b_key"))


def row(idem_key: str) -> dict[str, Any]:
    now = time.time()
    return {"key_id": "key_a", "idem_key": idem_key, "request_hash": "h", "task_id": idem_key,
            "created_at": now, "expires_at": now + 60}


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[PostgresDatabase]:
    database = PostgresDatabase(postgres_url)
    await database.migrate()
    await database.write(sa.text("TRUNCATE idempotency_keys"))
    try:
        yield database
    finally:
        await database.aclose()


async def drop_other_connections(url: str) -> int:
    dsn = dsn_of(sa.make_url(url))
    assert dsn is not None
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    finally:
        await conn.close()


def test_a_url_with_options_is_left_to_sqlalchemy() -> None:
    assert dsn_of(sa.make_url("postgresql+asyncpg://u:p@h:5/d")) == "postgresql://u:p@h:5/d"
    assert dsn_of(sa.make_url("postgresql+asyncpg://u@h/d?ssl=require")) is None


async def test_prebuilt_statements_take_the_asyncpg_path(db: PostgresDatabase) -> None:
    raw = db._raw
    assert raw is not None
    await db.transaction([Step(INSERT, row("k1")), Step(INSERT, row("k2"))])
    assert [dict(r) for r in await db.read(BY_KEY, {"b_key": "k2"})] == [{"task_id": "k2"}]
    assert raw._pool is not None and raw._pool.get_size() >= 1


async def test_a_connection_the_server_dropped_is_replaced(db: PostgresDatabase,
                                                           postgres_url: str) -> None:
    await db.write(INSERT, row("k1"))
    assert await drop_other_connections(postgres_url) >= 1  # ours, idle in the pool
    await db.transaction([Step(INSERT, row("k2"))])  # BEGIN fails on the dead one: retried
    assert await drop_other_connections(postgres_url) >= 1
    assert [r["task_id"] for r in await db.read(BY_KEY, {"b_key": "k2"})] == ["k2"]
    with pytest.raises(sa.exc.IntegrityError):  # a constraint is still the caller's error
        await db.write(INSERT, row("k2"))
