"""The backend fixtures, parametrized over every implementation: each contract test (and
each test elsewhere that imports these fixtures into its own conftest.py) runs once per
backend.

- `database_url` / `db` / `make_key`: SQLite and PostgreSQL. PostgreSQL is
  $IMAGEGATE_TEST_POSTGRES_URL (default: postgres on 127.0.0.1:5432, trust auth); each test
  session gets its own throw-away database. Outside CI an unreachable server skips the
  PostgreSQL variants with the reason printed; in CI (CI=true) it fails them instead, so a
  missing service can never turn the contract suite silently green.
- `blobs`: every `blob_store` the wiring knows (local files, memory).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate import plugins
from imagegate.config import Settings
from imagegate.db.database import Database, open_database
from imagegate.storage.base import BlobStore
from imagegate.wiring import BLOB_STORES

PG_ADMIN_URL = os.environ.get(
    "IMAGEGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped afterwards."""
    name = f"imagegate_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI requires it)")
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every contract test runs once per database backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    import sqlalchemy as sa

    database = open_database(database_url)
    await database.migrate()
    if database.dialect == "postgresql":  # one database per session: start each test empty
        await database.write(sa.text(
            "TRUNCATE tasks, api_keys, ledger, idempotency_keys, webhook_deliveries, "
            "moderation_lists, moderation_refusals"
        ))
    try:
        yield database
    finally:
        await database.aclose()


MakeKey = Callable[..., Awaitable[str]]


async def insert_key(database: Database, key_id: str, **columns: Any) -> str:
    """An api_keys row with this id (no usable secret): what stores need a task's key to be."""
    from imagegate.db.tables import api_keys

    values = {"id": key_id, "name": key_id, "prefix": key_id[:10],
              "key_hash": uuid.uuid4().hex * 2, "created_at": 0.0, **columns}
    await database.write(api_keys.insert().values(**values))
    return key_id


@pytest.fixture
def make_key(db: Database) -> MakeKey:
    """`await make_key("key_a", balance=1_000_000, concurrency=2)` inserts a key row."""

    async def make(key_id: str, **columns: Any) -> str:
        return await insert_key(db, key_id, **columns)

    return make


@pytest.fixture(params=["local", "memory"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """Every blob store backend, built the way the server builds it: by its `blob_store`
    name through the wiring's table."""
    settings = Settings(data_dir=tmp_path, blob_store=request.param)
    store: BlobStore = plugins.choose(BLOB_STORES, request.param, "blob_store")(settings)
    try:
        yield store
    finally:
        await store.aclose()
