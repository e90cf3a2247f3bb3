"""The composition root: backends chosen by their settings' names, built once, closed."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest
from limits.aio.storage import MemoryStorage, RedisStorage
from obstore.store import LocalStore, MemoryStore

from imagegate.config import Settings
from imagegate.errors import BackendUnavailableError
from imagegate.secret_files import require_shared_secrets, unshared_secrets
from imagegate.storage.s3_store import S3BlobStore
from imagegate.tasks.events import MemoryEventBus
from imagegate.tasks.redis_events import RedisEventBus
from imagegate.wiring import build_backends, preflight
from tests.contracts.conftest import s3_bucket, s3_server, s3_settings
from tests.support.e2e import free_port
from tests.support.files import mode, umask
from tests.support.s3 import S3Server

__all__ = ["s3_bucket", "s3_server"]  # fixtures

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
        assert isinstance(backends.events, RedisEventBus)  # redis_url: events go there too
        assert set(backends.checks) == {"database", "blob_store", "redis"}
        assert backends.worker is not None and backends.dispatcher is not None
    finally:
        await backends.aclose()


async def test_s3_is_chosen_by_name(tmp_path: Path, s3_server: S3Server, s3_bucket: str
                                    ) -> None:
    settings = s3_settings(tmp_path, s3_server, s3_bucket, signing_secret="s" * 32,
                           admin_token="a" * 32)
    backends = await build_backends(settings, with_worker=False)
    try:
        assert isinstance(backends.blobs, S3BlobStore)
        assert not (tmp_path / "blobs").exists()
        assert not (tmp_path / "signing.key").exists()  # configured: nothing generated
    finally:
        await backends.aclose()


@pytest.mark.parametrize(("configured", "api", "missing"), [
    ({}, True, ["signing_secret", "admin_token"]),
    ({"admin_token": "a" * 32}, True, ["signing_secret"]),
    ({"signing_secret": "s" * 32}, True, ["admin_token"]),
    ({"signing_secret": "s" * 32}, False, []),  # a worker serves no admin API
])
def test_a_distributed_setup_must_share_its_secrets(
        tmp_path: Path, configured: dict[str, str], api: bool, missing: list[str]) -> None:
    settings = Settings(data_dir=tmp_path, blob_store="s3", s3_bucket="b", **configured)
    assert unshared_secrets(settings, api=api) == missing
    if missing:
        with pytest.raises(ValueError, match="IMAGEGATE_" + missing[-1].upper()):
            require_shared_secrets(settings, api=api)
    # One host, one data dir: a generated secret is shared through it.
    assert unshared_secrets(Settings(data_dir=tmp_path), api=api) == []


def test_s3_needs_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3_bucket is required"):
        Settings(data_dir=tmp_path, blob_store="s3")


async def test_preflight_names_the_setting_to_fix(tmp_path: Path, s3_server: S3Server,
                                                  s3_bucket: str) -> None:
    secrets = {"signing_secret": "s" * 32, "admin_token": "a" * 32}
    await preflight(s3_settings(tmp_path, s3_server, s3_bucket, **secrets))
    cases = [
        (s3_settings(tmp_path, s3_server, "missing-bucket", **secrets), "s3_bucket"),
        (s3_settings(tmp_path, s3_server, s3_bucket, redis_url=f"redis://127.0.0.1:"
                     f"{free_port()}/0", **secrets), "redis_url"),
        (Settings(data_dir=tmp_path, database_url=f"postgresql://u@127.0.0.1:{free_port()}/x"),
         "database_url"),
    ]
    for settings, setting in cases:
        with pytest.raises(BackendUnavailableError) as err:
            await preflight(settings)
        assert err.value.setting == setting
    with pytest.raises(ValueError, match="signing_secret"):
        await preflight(s3_settings(tmp_path, s3_server, s3_bucket))


async def test_a_worker_process_keeps_no_admin_token(tmp_path: Path) -> None:
    backends = await build_backends(Settings(data_dir=tmp_path), with_worker=False,
                                    with_api=False)
    try:
        assert backends.admin_token and not (tmp_path / "admin.token").exists()
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


async def test_cpu_bound_work_runs_on_its_own_small_pool(tmp_path: Path) -> None:
    """Worker slots hold thousands of waiting tasks; what they send to threads (renders,
    decodes) shares `cpu_workers` threads, never more."""
    backends = await build_backends(Settings(data_dir=tmp_path, cpu_workers=2),
                                    with_worker=False)
    try:
        assert Settings().worker_concurrency >= 1000
        running = peak = 0
        lock = threading.Lock()

        def work() -> None:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1

        await asyncio.gather(*(asyncio.to_thread(work) for _ in range(12)))
        assert peak == 2
        assert {t.name.split("_")[0] for t in threading.enumerate()} >= {"imagegate-cpu"}
    finally:
        await backends.aclose()


async def test_task_runs_read_upstream_answers_on_a_loop_of_their_own(tmp_path: Path) -> None:
    backends = await build_backends(Settings(data_dir=tmp_path), with_worker=True)
    reader = backends.reader
    try:
        assert reader is not None and reader.loop is not None
        assert reader.loop is not asyncio.get_running_loop()
        assert backends.worker is not None and backends.worker._results is not None
        assert backends.worker._results.reader is reader
    finally:
        await backends.aclose()
    assert reader.loop is None  # stopped with the rest

    backends = await build_backends(Settings(data_dir=tmp_path, upstream_reader_thread=False),
                                    with_worker=True)
    try:
        assert backends.reader is None
        assert backends.worker is not None and backends.worker._results is not None
        assert backends.worker._results.reader is None
    finally:
        await backends.aclose()
