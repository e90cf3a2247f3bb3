"""How a stored result image leaves imagegate: a signed URL (relative or absolute, as the
operator's `url_mode` says), a `data:` URL, or base64 — and the check of a signed URL when it
comes back. Every profile and the webhook payloads render results through one `ResultLinks`,
so a URL looks the same wherever it appears."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Literal

import pybase64

from imagegate.domain.memo import BoundedMemo
from imagegate.domain.task import StoredImage, Task
from imagegate.storage.base import BlobStore
from imagegate.storage.signing import UrlSigner

UrlMode = Literal["relative", "absolute", "data"]

# pybase64 encodes ~15 MB/ms: a 4K PNG (~10 MB) takes under a millisecond on the event loop,
# less than the hop to a thread; only bigger files go to one.
_INLINE_B64 = 16 * 1024 * 1024
# Origins whose bound links `for_origin` keeps.
_ORIGINS = 64


def data_url_head(image: StoredImage) -> str:
    """What comes before the base64 in the image's `data:` URL."""
    return f"data:{image.content_type};base64,"


class ResultLinks:
    """`url_mode = "absolute"` needs a base: `public_base_url` when configured, else the
    origin the client reached the server at (`for_origin`, per request). Without either (a
    webhook payload when no `public_base_url` is set) the URL stays a relative path."""

    def __init__(self, signer: UrlSigner, blobs: BlobStore, *, url_mode: UrlMode = "absolute",
                 public_base_url: str | None = None) -> None:
        self.signer = signer
        self._blobs = blobs
        self.url_mode: UrlMode = url_mode
        self._public = public_base_url or ""
        self._base = self._public
        # The bound copies `for_origin` made, by origin: a server is reached at a few
        # origins, and a poll should not pay for a copy.
        self._bound: BoundedMemo[str, ResultLinks] = BoundedMemo(_ORIGINS)

    @property
    def needs_origin(self) -> bool:
        """Whether absolute URLs depend on the request (no `public_base_url` configured)."""
        return self.url_mode == "absolute" and not self._public

    def for_origin(self, origin: str) -> ResultLinks:
        """These links for a client that reached the server at `origin`."""
        if not self.needs_origin:
            return self
        return self._bound.get(origin, self._bind)  # Host headers are the client's to choose

    def _bind(self, origin: str) -> ResultLinks:
        bound = copy.copy(self)
        bound._base = origin
        bound._bound = BoundedMemo(_ORIGINS)
        return bound

    def link(self, path: str) -> str:
        """`path` (of this server) made absolute the way result URLs are: with the base in
        `absolute` mode, as it is otherwise."""
        if self.url_mode == "absolute" and self._base:
            return self._base + path
        return path

    def signed_url(self, task: Task, index: int) -> tuple[str, int]:
        """The signed URL of result image `index` and its expiry in ms (never after the task
        itself expires)."""
        exp = self.signer.expiry(not_after=task.expires_at)
        path = self.signer.path(task.id, index, exp)
        if self.url_mode == "absolute" and self._base:
            path = self._base + path
        return path, exp

    async def url(self, task: Task, index: int) -> tuple[str, int]:
        """The URL the operator's `url_mode` gives result image `index`, and when it expires
        (ms): a signed URL, or a `data:` URL that lasts as long as the task."""
        if self.url_mode == "data":
            return await self.data_url(task.images[index]), int(task.expires_at * 1000)
        return self.signed_url(task, index)

    async def read(self, image: StoredImage) -> bytes:
        return await self._blobs.get(image.key)

    async def open(self, image: StoredImage, start: int = 0, end: int | None = None
                   ) -> AsyncIterator[bytes]:
        """The image's bytes (or the part `start`..`end`) as chunks; BlobNotFoundError
        before the first when the blob is gone."""
        return await self._blobs.open(image.key, start, end)

    async def presigned(self, image: StoredImage, seconds: float) -> str | None:
        """A direct URL of the image at the storage service, valid `seconds`; None when the
        blob store has none (local files, memory)."""
        return await self._blobs.presigned_url(image.key, seconds)

    async def b64(self, image: StoredImage) -> str:
        data = await self.read(image)
        return (pybase64.b64encode_as_string(data) if len(data) < _INLINE_B64
                else await asyncio.to_thread(pybase64.b64encode_as_string, data))

    async def data_url(self, image: StoredImage) -> str:
        return data_url_head(image) + await self.b64(image)

    def verify(self, task_id: str, index: int, exp_ms: int, sig: str) -> bool:
        """Whether a signed URL's parts are genuine and unexpired (constant-time compare)."""
        return self.signer.verify(task_id, index, exp_ms, sig)
