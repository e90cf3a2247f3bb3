"""The backend fixtures, parametrized over every implementation: each contract test (and
each test elsewhere that imports these fixtures into its own conftest.py) runs once per
backend.

- `database_url` / `db` / `make_key`: SQLite and PostgreSQL. PostgreSQL is
  $IMAGEGATE_TEST_POSTGRES_URL (default: postgres on 127.0.0.1:5432, trust auth); each test
  session gets its own throw-away database. Outside CI an unreachable server skips the
  PostgreSQL variants with the reason printed; in CI (CI=true) it fails them instead, so a
  missing service can never turn the contract suite silently green.
- `blobs`: every `blob_store` the wiring knows (local files, memory, S3). S3 is moto's
  ThreadedMotoServer on a free loopback port (`s3_server`, one per session), a fresh prefix
  per test.
- `redis_url`: the machine's Redis ($IMAGEGATE_TEST_REDIS_URL, default 127.0.0.1:6379),
  skipped outside CI and failed in CI when it does not answer, like PostgreSQL.
- `bus_pair`: every event bus (memory, Redis), as (publisher, subscriber): two separate
  buses for Redis, as two processes would hold; the same one for memory.
- `limiter`: every rate limiter (memory, Redis).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from imagegate import plugins
from imagegate.accounts.limits import RateLimiter
from imagegate.config import Settings
from imagegate.db.database import Database, open_database
from imagegate.storage.base import BlobStore
from imagegate.tasks.events import EventBus
from imagegate.wiring import BLOB_STORES, EVENT_BUSES
from tests.support.redis import REDIS_URL, require_redis
from tests.support.s3 import REGION, S3Server, aws_credentials

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


@contextmanager
def fresh_postgres() -> Iterator[str]:
    """A new PostgreSQL database (asyncpg URL), dropped afterwards; skipped outside CI and
    failed in CI when the server does not answer."""
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session, dropped afterwards."""
    with fresh_postgres() as url:
        yield url


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server for the session, with the test credentials in the
    environment (obstore reads them there, as it would AWS's)."""
    with aws_credentials():
        server = S3Server().start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


def s3_settings(tmp_path: Path, server: S3Server, bucket: str, **more: Any) -> Settings:
    """Settings of a process on `bucket`, under a prefix of its own."""
    values: dict[str, Any] = {
        "data_dir": tmp_path, "blob_store": "s3", "s3_bucket": bucket,
        "s3_endpoint": server.endpoint, "s3_region": REGION, "s3_allow_http": True,
        "s3_prefix": f"t-{uuid.uuid4().hex[:10]}/", **more}
    return Settings(**values)


@pytest.fixture(params=["local", "memory", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """Every blob store backend, built the way the server builds it: by its `blob_store`
    name through the wiring's table."""
    if request.param == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        settings = s3_settings(tmp_path, server, request.getfixturevalue("s3_bucket"))
    else:
        settings = Settings(data_dir=tmp_path, blob_store=request.param)
    store: BlobStore = plugins.choose(BLOB_STORES, request.param, "blob_store")(settings)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def redis_url() -> str:
    return await redis_url_or_skip()


def unique_prefix() -> str:
    # Every test its own keys: others' suites use the same Redis at the same time, and rate
    # windows outlive a test by a minute.
    return f"igtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
async def bus_pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[EventBus, EventBus]]:
    """(publisher, subscriber) of every event bus the wiring knows."""
    if request.param == "memory":
        bus: EventBus = plugins.choose(EVENT_BUSES, "memory", "event bus")(Settings())
        try:
            yield bus, bus
        finally:
            await bus.aclose()
        return
    from imagegate.tasks.redis_events import RedisEventBus

    url = await redis_url_or_skip()
    prefix = unique_prefix()
    one, two = RedisEventBus(url, prefix=prefix), RedisEventBus(url, prefix=prefix)
    try:
        yield one, two
    finally:
        await one.aclose()
        await two.aclose()


async def redis_url_or_skip() -> str:
    await require_redis(REDIS_URL)
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    made = RateLimiter(None if request.param == "memory" else await redis_url_or_skip(),
                       key_prefix=unique_prefix())
    try:
        yield made
    finally:
        await made.aclose()
