"""The composition root: backends chosen by their settings' names, built once, closed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage
from obstore.store import LocalStore, MemoryStore

from imagegate.config import Settings
from imagegate.tasks.events import MemoryEventBus
from imagegate.wiring import build_backends
from tests.support.files import mode, umask

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


async def test_a_fresh_data_dir_is_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "srv" / "imagegate"
    with umask(0):  # modes are explicit, not whatever the umask would let through
        backends = await build_backends(Settings(data_dir=data_dir), with_worker=False)
        try:
            await backends.keys.create("k")  # a write: the WAL and its index exist
            await backends.blobs.put("tasks/img_a/1/0.png", b"png", "image/png")
            db = data_dir / "imagegate.db"
            for path in (db, db.with_name("imagegate.db-wal"), db.with_name("imagegate.db-shm"),
                         data_dir / "signing.key", data_dir / "admin.token",
                         data_dir / "blobs" / "tasks" / "img_a" / "1" / "0.png"):
                assert mode(path) == 0o600, path
            for folder in (tmp_path / "srv", data_dir, data_dir / "blobs",
                           data_dir / "blobs" / "tasks", data_dir / "blobs" / "tasks" / "img_a",
                           data_dir / "blobs" / "tasks" / "img_a" / "1"):
                assert mode(folder) == 0o700, folder
        finally:
            await backends.aclose()


async def test_an_operators_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    backends = await build_backends(Settings(data_dir=tmp_path), with_worker=False)
    try:
        assert mode(tmp_path) == 0o755
        assert mode(tmp_path / "imagegate.db") == 0o600  # what imagegate made is still its own
    finally:
        await backends.aclose()
