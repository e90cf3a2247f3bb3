"""`storage/local_reads.py`: a local file's bytes from the page cache on the event loop, from
the disk in a thread, always the same bytes."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from imagegate.storage import local_reads
from imagegate.storage.base import BlobNotFoundError
from imagegate.storage.local_reads import open_range
from imagegate.storage.obstore_store import ObstoreBlobStore

pytestmark = pytest.mark.anyio

DATA = bytes(range(256)) * 1000  # 256,000 bytes


async def read_all(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "blob"
    path.write_bytes(DATA)
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Offsets read in a thread (the page cache did not have them)."""
    seen: list[int] = []
    real = asyncio.to_thread

    async def spy(func: Callable[..., Any], *args: Any) -> Any:
        seen.append(args[2])
        return await real(func, *args)

    monkeypatch.setattr(local_reads.asyncio, "to_thread", spy)
    return seen


async def test_pieces_of_at_most_chunk_bytes_cover_the_file(file: Path,
                                                            threads: list[int]) -> None:
    pieces = await read_all(open_range(file, 0, None, 96 * 1024))
    assert b"".join(pieces) == DATA
    assert [len(p) for p in pieces] == [98_304, 98_304, 59_392]
    if local_reads._NOWAIT is not None:
        assert threads == []  # just written: all of it from the page cache


async def test_a_range_and_a_range_past_the_end(file: Path) -> None:
    assert b"".join(await read_all(open_range(file, 10, 20, 4))) == DATA[10:20]
    assert b"".join(await read_all(open_range(file, 255_990, 300_000, 96))) == DATA[255_990:]
    assert await read_all(open_range(file, 300_000, None, 96)) == []


async def test_what_the_page_cache_lacks_is_read_in_a_thread(
        file: Path, threads: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0

    def preadv(fd: int, buffers: list[bytearray], offset: int, flags: int) -> int:
        nonlocal calls
        calls += 1
        if offset >= 100_000:  # as the kernel says when the pages are not cached
            raise BlockingIOError(errno.EAGAIN, "would block")
        buffers[0][:] = DATA[offset:offset + len(buffers[0])]
        return min(len(buffers[0]), len(DATA) - offset)

    monkeypatch.setattr(local_reads, "_NOWAIT", 8)
    monkeypatch.setattr(local_reads.os, "preadv", preadv, raising=False)
    assert b"".join(await read_all(open_range(file, 0, None, 64_000))) == DATA
    assert threads == [128_000, 192_000]
    assert calls == 4  # each piece is tried in the cache first


async def test_a_file_system_without_nowait_reads_everything_in_threads(
        file: Path, threads: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    def preadv(*_args: Any) -> int:
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(local_reads, "_NOWAIT", 8)
    monkeypatch.setattr(local_reads.os, "preadv", preadv, raising=False)
    assert b"".join(await read_all(open_range(file, 0, None, 100_000))) == DATA
    assert threads == [0, 100_000, 200_000]


async def test_the_file_is_closed_when_read_or_abandoned(file: Path) -> None:
    before = open_fds()
    await read_all(open_range(file, 0, None, 1000))
    assert open_fds() == before
    pieces = open_range(file, 0, None, 1000)
    assert len(await anext(pieces)) == 1000
    assert open_fds() == before + 1
    await pieces.aclose()  # type: ignore[attr-defined]
    assert open_fds() == before


async def test_a_missing_file_raises_at_open(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_range(tmp_path / "nope", 0, None, 10)


@pytest.mark.parametrize("key", ["../outside", "tasks/../../x", "/abs", "a//b", "a/./b", ""])
async def test_the_local_store_reads_no_key_that_leaves_its_root(tmp_path: Path,
                                                                 key: str) -> None:
    (tmp_path / "outside").write_bytes(b"secret")
    store = ObstoreBlobStore.local(tmp_path / "root")
    with pytest.raises(BlobNotFoundError):
        await store.open(key)
