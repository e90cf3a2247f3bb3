"""BlobStore over obstore: local files and memory here; S3-compatible storage (`s3_store.py`)
builds on the same class."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import LocalStore, MemoryStore

from imagegate.config import Settings
from imagegate.secret_files import PRIVATE_FILE_MODE, private_dir
from imagegate.storage.base import BlobNotFoundError, BlobStore
from imagegate.storage.local_reads import open_range

if TYPE_CHECKING:
    from obstore import GetOptions


_INLINE_WRITE = 256 * 1024


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileNotFoundError:  # the task's folder: made once per attempt
        private_dir(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ObstoreBlobStore(BlobStore):
    def __init__(self, store: Any, root: Path | None = None) -> None:
        self._store = store
        # Local files only: where they live, to make them owner-only (see `put`).
        self._root = root

    @classmethod
    def local(cls, root: Path) -> ObstoreBlobStore:
        private_dir(root)
        root = root.resolve()
        return cls(LocalStore(str(root), mkdir=True), root)

    @classmethod
    def memory(cls) -> ObstoreBlobStore:
        return cls(MemoryStore())

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        # Local files have no content type; the task row records it for serving.
        if self._root is None:
            await obstore.put_async(self._store, key, data)
            return
        # Written here rather than through obstore, which creates folders and files through
        # the umask (0755 / 0644 on most systems): folders 0700, the file 0600 from its first
        # byte, then renamed into place so a reader never sees half a file. A small file is
        # written on the event loop, a big one in a thread. The small write is not free (a
        # new task folder and file measured 0.4-0.7 ms on ext4), but handing it to a thread
        # completed fewer requests in a burst of 4 KiB results (bench/README.md).
        path = self._root / key
        if len(data) < _INLINE_WRITE:
            _write_private(path, data)
        else:
            await asyncio.to_thread(_write_private, path, data)

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError as exc:
            raise BlobNotFoundError(key) from exc

    async def open(self, key: str, start: int = 0, end: int | None = None
                   ) -> AsyncIterator[bytes]:
        if self._root is not None:  # local files: read directly (`local_reads.py` says why)
            try:
                return open_range(self._local_path(key), start, end, _CHUNK)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
                raise BlobNotFoundError(key) from exc
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(key) from exc
        return _chunks(result)

    def _local_path(self, key: str) -> Path:
        """The file of `key` under the root. Keys are imagegate's own; one that could leave
        the root (or that obstore would refuse) names no blob."""
        assert self._root is not None
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise FileNotFoundError(key)
        return self._root.joinpath(*parts)

    async def delete_prefix(self, prefix: str) -> int:
        paths: list[str] = []
        async for batch in obstore.list(self._store, prefix=prefix):
            paths.extend(meta["path"] for meta in batch)
        for path in paths:
            await self.delete(path)
        return len(paths)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            pass


async def _chunks(result: Any) -> AsyncIterator[bytes]:
    # 96 KiB pieces: large enough to keep the per-chunk overhead small, small enough that a
    # slow client holds little memory per download, and under glibc's initial mmap threshold
    # (128 KiB; `cli/memory.py`): a 256 KiB piece could be an mmap, its page faults and an
    # munmap every time, several times the cost of the copy itself.
    async for chunk in result.stream(min_chunk_size=_CHUNK):
        yield bytes(chunk)


_CHUNK = 96 * 1024


def local_store(settings: Settings) -> BlobStore:
    """`blob_store = "local"`: files under `blob_dir` (default `<data_dir>/blobs`)."""
    return ObstoreBlobStore.local(Path(settings.effective_blob_dir))


def memory_store(_settings: Settings) -> BlobStore:
    """`blob_store = "memory"`: lost on restart; for tests and throw-away runs."""
    return ObstoreBlobStore.memory()
