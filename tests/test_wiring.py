"""The composition root: backends chosen by their settings' names, built once, closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage
from obstore.store import LocalStore, MemoryStore

from imagegate.config import Settings
from imagegate.tasks.events import MemoryEventBus
from imagegate.wiring import build_backends

pytestmark = pytest.mark.anyio


async def test_embedded_defaults(tmp_path: Path) -> None:
    backends = await build_backends(Settings(data_dir=tmp_path), with_worker=False)
    try:
        assert isinstance(backends.blobs._store, LocalStore)
        assert (tmp_path / "blobs").is_dir()
        assert isinstance(backends.events, MemoryEventBus)
        assert isinstance(backends.limiter._storage, MemoryStorage)
        assert backends.worker is None and backends.dispatcher is None
        assert (tmp_path / "signing.key").is_file() and (tmp_path / "admin.token").is_file()
    finally:
        await backends.aclose()


async def test_names_pick_the_implementation(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_store="memory",
                        redis_url="redis://127.0.0.1:6379/0")
    backends = await build_backends(settings, with_worker=True)
    try:
        assert isinstance(backends.blobs._store, MemoryStore)
        assert isinstance(backends.limiter._storage, RedisStorage)
        assert backends.worker is not None and backends.dispatcher is not None
    finally:
        await backends.aclose()
