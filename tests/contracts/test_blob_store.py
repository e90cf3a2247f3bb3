"""The BlobStore contract: every backend passes the same suite (`blobs` is parametrized
over them in conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
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


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_open_streams_the_whole_blob(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 4_000  # ~1 MB: several chunks from a file or S3
    await blobs.put("tasks/s/1/0.png", data, "image/png")
    assert await read_all(await blobs.open("tasks/s/1/0.png")) == data


async def test_open_reads_a_byte_range(blobs: BlobStore) -> None:
    data = bytes(range(256)) * 10
    await blobs.put("r", data, "image/png")
    assert await read_all(await blobs.open("r", 10, 20)) == data[10:20]
    assert await read_all(await blobs.open("r", 2550)) == data[2550:]
    assert await read_all(await blobs.open("r", 0, 1)) == data[:1]


async def test_open_of_a_missing_blob_raises_before_any_byte(blobs: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await blobs.open("nope/1.png")


async def test_presigned_url_downloads_the_blob_where_the_store_has_one(
        blobs: BlobStore) -> None:
    await blobs.put("tasks/p/1/0.png", b"\x89PNG presigned", "image/png")
    url = await blobs.presigned_url("tasks/p/1/0.png", 60)
    if url is None:  # local files and memory have no URL of their own
        return
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.get(url)
    assert resp.status_code == 200 and resp.content == b"\x89PNG presigned"
    assert resp.headers["content-type"] == "image/png"  # stored with the object


async def test_check_passes_on_a_working_store(blobs: BlobStore) -> None:
    await blobs.check(thorough=True)
    await blobs.check()
