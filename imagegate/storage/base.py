"""The one interface every blob backend implements (result images and reference images)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator


class BlobNotFoundError(LookupError):
    """The key names no blob (expired, cleaned, or never written)."""


class BlobStore(abc.ABC):
    """Bytes by key. Keys are `/`-separated relative paths chosen by the caller."""

    @abc.abstractmethod
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` under `key`, replacing any previous value."""

    @abc.abstractmethod
    async def get(self, key: str) -> bytes:
        """The bytes under `key`; BlobNotFoundError when there are none."""

    @abc.abstractmethod
    async def open(self, key: str, start: int = 0, end: int | None = None
                   ) -> AsyncIterator[bytes]:
        """The bytes under `key` from `start` up to `end` (exclusive; None: to the last byte)
        as chunks, for streaming a response without holding the blob in memory. Raises
        BlobNotFoundError here, before the first chunk, so a caller can still answer 404."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error (cleanup is idempotent)."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with `prefix` (a folder like `tasks/img_1/`),
        including ones no row records, e.g. written just before a crash. Returns the count."""

    async def presigned_url(self, key: str, seconds: float) -> str | None:
        """A URL that downloads `key` directly from the storage service for `seconds`, or
        None when this store has no such thing (local files, memory)."""
        return None

    async def check(self, *, thorough: bool = False) -> None:  # noqa: B027 - most need none
        """Raise `BackendUnavailableError` (naming the setting to fix) when the store cannot
        be used. `thorough` (at start-up) may write; without it (readiness probes, every few
        seconds) only reads."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release for most stores
        """Release clients and connections."""
