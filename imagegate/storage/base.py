"""The one interface every blob backend implements (result images, later reference images)."""

from __future__ import annotations

import abc


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
    async def delete(self, key: str) -> None:
        """Remove `key`; deleting a missing key is not an error (cleanup is idempotent)."""

    @abc.abstractmethod
    async def delete_prefix(self, prefix: str) -> int:
        """Remove every blob whose key starts with `prefix` (a folder like `tasks/img_1/`),
        including ones no row records, e.g. written just before a crash. Returns the count."""

    async def aclose(self) -> None:  # noqa: B027 - nothing to release for most stores
        """Release clients and connections."""
