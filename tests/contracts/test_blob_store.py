"""The BlobStore contract: every backend passes the same suite (`blobs` is parametrized
over them in conftest.py)."""

from __future__ import annotations

import pytest

from imagegate.storage.base import BlobNotFoundError, BlobStore

pytestmark = pytest.mark.anyio


async def test_put_get_roundtrip(blobs: BlobStore) -> None:
    await blobs.put("tasks/a/1/0.png", b"\x89PNG data", "image/png")
    assert await blobs.get("tasks/a/1/0.png") == b"\x89PNG data"


async def test_put_replaces(blobs: BlobStore) -> None:
    await blobs.put("k", b"one", "application/octet-stream")
    await blobs.put("k", b"two", "application/octet-stream")
    assert await blobs.get("k") == b"two"


async def test_missing_raises_our_error(blobs: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await blobs.get("nope/0.png")


async def test_delete_is_idempotent(blobs: BlobStore) -> None:
    await blobs.put("gone", b"x", "image/png")
    await blobs.delete("gone")
    await blobs.delete("gone")
    with pytest.raises(BlobNotFoundError):
        await blobs.get("gone")


async def test_delete_prefix_removes_only_that_folder(blobs: BlobStore) -> None:
    for key in ("tasks/img_a/1/0.png", "tasks/img_a/2/0.png", "tasks/img_ab/1/0.png"):
        await blobs.put(key, b"x", "image/png")
    assert await blobs.delete_prefix("tasks/img_a/") == 2
    assert await blobs.get("tasks/img_ab/1/0.png") == b"x"
    with pytest.raises(BlobNotFoundError):
        await blobs.get("tasks/img_a/2/0.png")
    assert await blobs.delete_prefix("tasks/none/") == 0


async def test_large_blob(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 40_000  # ~10 MB
    await blobs.put("big", data, "image/png")
    assert await blobs.get("big") == data
