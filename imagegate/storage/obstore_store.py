"""BlobStore over obstore: local files and memory here; S3-compatible storage (`s3_store.py`)
builds on the same class."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.store import LocalStore, MemoryStore

from imagegate.config import Settings
from imagegate.secret_files import PRIVATE_FILE_MODE, private_dir
from imagegate.storage.base import BlobNotFoundError, BlobStore

if TYPE_CHECKING:
    from obstore import GetOptions


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
        # obstore creates folders and files through the umask (0755 / 0644 on most systems):
        # the folders are made 0700 first, so the file is never readable by others even in
        # the moment before it is made 0600.
        path = self._root / key
        private_dir(path.parent)
        await obstore.put_async(self._store, key, data)
        os.chmod(path, PRIVATE_FILE_MODE)

    async def get(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError as exc:
            raise BlobNotFoundError(key) from exc

    async def open(self, key: str, start: int = 0, end: int | None = None
                   ) -> AsyncIterator[bytes]:
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
    # 256 KiB pieces: large enough to keep the per-chunk overhead small, small enough that a
    # slow client holds little memory per download.
    async for chunk in result.stream(min_chunk_size=_CHUNK):
        yield bytes(chunk)


_CHUNK = 256 * 1024


def local_store(settings: Settings) -> BlobStore:
    """`blob_store = "local"`: files under `blob_dir` (default `<data_dir>/blobs`)."""
    return ObstoreBlobStore.local(Path(settings.effective_blob_dir))


def memory_store(_settings: Settings) -> BlobStore:
    """`blob_store = "memory"`: lost on restart; for tests and throw-away runs."""
    return ObstoreBlobStore.memory()
