"""Shared fixtures: database URLs for the contract suites, settings, services, an app client.

PostgreSQL: $IMAGEGATE_TEST_POSTGRES_URL (default: postgres on 127.0.0.1:5432, trust auth).
Each test session gets its own throw-away database. Outside CI an unreachable server skips
the PostgreSQL variants with the reason printed; in CI (CI=true) it fails them instead, so a
missing service can never turn the contract suite silently green.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.db.database import Database, open_database

PG_ADMIN_URL = os.environ.get(
    "IMAGEGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
            "TRUNCATE tasks, api_keys, ledger, idempotency_keys, webhook_deliveries"
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


ServeApp = Callable[..., str]


@pytest.fixture
def serve_app(tmp_path: Path) -> Iterator[ServeApp]:
    """`base_url = serve_app(**settings)`: the real app (`build_app`, its own lifespan) served
    by uvicorn on a free 127.0.0.1 port, in a thread with its own event loop, so that real
    HTTP clients reach it from a test's loop or from a CLI's `asyncio.run` alike. Defaults:
    `tmp_path` as data dir, memory blobs, no workers. Stopped at teardown."""
    import socket
    import threading
    import time

    import uvicorn

    from imagegate.app import build_app
    from imagegate.config import Settings

    started: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def serve(**overrides: Any) -> str:
        settings = Settings(**{"data_dir": tmp_path, "blob_store": "memory",
                               "run_workers": False, **overrides})
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(build_app(settings), log_config=None,
                                               access_log=False, ws="none"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        started.append((server, thread, sock))
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "the served app stopped while starting"
            assert time.monotonic() < deadline, "the served app did not start in 30 s"
            time.sleep(0.02)
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    try:
        yield serve
    finally:
        for server, thread, sock in started:
            server.should_exit = True
            thread.join(10)
            sock.close()
