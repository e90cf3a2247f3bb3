"""Reference images and masks: the one place they turn from client input into task blobs.

Every surface calls `Ingestor.prepare` after normalization and before the task row exists.
Each input — an http(s) URL (fetched through the SSRF guard), a `data:` URL, bare base64 or
an uploaded file — is size-capped, sniffed and checked from its header; then the pixels of
all of them together are checked against `max_reference_total_pixels`, still before any
decode (sixteen 49-megapixel PNGs of a few KB each are refused unread); only then is each one
fully decoded and stored as `tasks/<task_id>/refs/…`. If anything fails, whatever was stored
is removed again, so a refused request leaves nothing behind.

What is fetched or decoded counts against the process-wide memory budget
(`ingest/budget.py`) until the images are stored.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import re
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from typing import Any

import pybase64

from imagegate.domain.request import ImageRequest, ReferenceSource, StoredReference
from imagegate.errors import ImagegateError, InvalidRequestError, PayloadTooLargeError
from imagegate.ingest.budget import Lease, MemoryBudget
from imagegate.ingest.images import ImageInfo, ImageRejected, check_header, decode
from imagegate.net.fetch import Fetcher, FetchError
from imagegate.storage.base import BlobStore

_BASE64 = re.compile(r"^[A-Za-z0-9+/_\-\s]*={0,2}\s*$")
# `data:image/png;base64,` is 22 characters; the media type is echoed in errors.
MAX_DATA_URL_HEADER_CHARS = 256
# Fetching several URLs at once hides their latency; the cap keeps memory bounded.
_PARALLEL_LOADS = 4


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_image_bytes: int = 20 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_total_pixels: int = 100_000_000


def refs_prefix(task_id: str) -> str:
    return f"tasks/{task_id}/refs/"


class Ingestor:
    def __init__(self, blobs: BlobStore, fetcher: Fetcher, limits: IngestLimits,
                 budget: MemoryBudget) -> None:
        self._blobs = blobs
        self._fetcher = fetcher
        self._limits = limits
        self._budget = budget

    async def aclose(self) -> None:
        await self._fetcher.aclose()

    async def prepare(self, request: ImageRequest, task_id: str) -> ImageRequest:
        """The request with its inputs stored and validated, or an error naming the item."""
        if not request.references and request.mask is None:
            return request
        sources = list(request.references)
        if request.mask is not None:
            sources.append(request.mask)
        gate = asyncio.Semaphore(_PARALLEL_LOADS)
        lease = self._budget.lease()

        async def load(source: ReferenceSource) -> bytes:
            async with gate:
                return await self._load(source, lease)

        try:
            payloads = await _all_or_none([load(s) for s in sources])
            total = sum(len(p) for p in payloads)
            if total > self._limits.max_total_bytes:
                raise PayloadTooLargeError(
                    f"The images of this request add up to {total} bytes; the limit is "
                    f"{self._limits.max_total_bytes}",
                    param=sources[0].field,
                    code="request_too_large",
                )
            # Every header before any decode: the pixel budget is judged on all of them.
            infos = [self._header(s, data) for s, data in zip(sources, payloads, strict=True)]
            pixels = sum(info.pixels for info in infos)
            if pixels > self._limits.max_total_pixels:
                raise InvalidRequestError(
                    f"The images of this request add up to {pixels:,} pixels; the limit is "
                    f"{self._limits.max_total_pixels:,}",
                    param=sources[0].field,
                    code="request_too_large_dimensions",
                )
            stored = [
                await self._store(task_id, source, data, info,
                                  "mask" if source is request.mask else str(i))
                for i, (source, data, info) in enumerate(zip(sources, payloads, infos,
                                                              strict=True))
            ]
        except BaseException:
            with contextlib.suppress(Exception):
                await self._blobs.delete_prefix(refs_prefix(task_id))
            raise
        finally:
            lease.close()
        mask_image = stored.pop() if request.mask is not None else None
        return replace(request, references=(), mask=None, reference_images=tuple(stored),
                       mask_image=mask_image)

    async def discard(self, task_id: str) -> None:
        """Remove a request's stored inputs (its task could not be created)."""
        await self._blobs.delete_prefix(refs_prefix(task_id))

    def _header(self, source: ReferenceSource, data: bytes) -> ImageInfo:
        try:
            return check_header(data, max_pixels=self._limits.max_pixels)
        except ImageRejected as exc:
            raise _rejected(exc, source) from None

    async def _store(self, task_id: str, source: ReferenceSource, data: bytes, info: ImageInfo,
                     name: str) -> StoredReference:
        try:
            await decode(data, info)
        except ImageRejected as exc:
            raise _rejected(exc, source) from None
        key = f"{refs_prefix(task_id)}{name}.{info.format}"
        await self._blobs.put(key, data, info.content_type)
        return StoredReference(key=key, content_type=info.content_type, width=info.width,
                               height=info.height, size=len(data))

    async def _load(self, source: ReferenceSource, lease: Lease) -> bytes:
        """The raw bytes of one input, capped at the per-image limit, counted in `lease`
        (uploads are not: they arrived in the request body, which the body budget counts)."""
        cap = self._limits.max_image_bytes
        if source.data is not None:
            data = source.data
        else:
            value = source.value
            scheme = value.split(":", 1)[0].lower() if ":" in value[:12] else ""
            if scheme in ("http", "https"):
                # Room for the largest body first: the fetch streams it in, and the budget
                # must hold before the bytes do. What was not used is given back after.
                await lease.grow(cap, param=source.param)
                try:
                    data = await self._fetcher.fetch(value, max_bytes=cap)
                except FetchError as exc:
                    lease.shrink(cap)
                    # One code for "this image is over the per-image cap", however it came.
                    code = "image_too_large" if exc.code == "too_large" else exc.code
                    raise _as_error(exc.status, code, f"{source.param}: {exc.message}",
                                    source.param) from None
                lease.shrink(cap - len(data))
            elif scheme == "data":
                data = _decode_data_url(value, source.param, cap)
                await lease.grow(len(data), param=source.param)
            elif scheme and not _BASE64.match(value[:64]):
                raise InvalidRequestError(
                    f"{source.param}: '{scheme}:' URLs are not supported; send an http(s) URL, "
                    "a data: URL or base64",
                    param=source.param, code="unsupported_url_scheme",
                )
            else:
                data = _decode_base64(value, source.param, cap)
                await lease.grow(len(data), param=source.param)
        if len(data) > cap:
            raise _too_large(source.param, len(data), cap)
        return data


async def _all_or_none(loads: list[Coroutine[Any, Any, bytes]]) -> list[bytes]:
    """Every load's bytes; when one fails the others are cancelled and awaited, so none is
    still fetching (and growing the request's lease) after the request was refused."""
    tasks = [asyncio.ensure_future(load) for load in loads]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _rejected(exc: ImageRejected, source: ReferenceSource) -> ImagegateError:
    return _as_error(exc.status, exc.code, f"{source.param}: {exc.message}", source.param)


def _too_large(param: str, size: int, cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"{param}: the image is {size} bytes; the limit is {cap} bytes per image",
        param=param, code="image_too_large",
    )


def _as_error(status: int, code: str, message: str, param: str) -> ImagegateError:
    cls = PayloadTooLargeError if status == 413 else InvalidRequestError
    return cls(message, param=param, code=code)


def _decode_data_url(value: str, param: str, cap: int) -> bytes:
    header, sep, payload = value.partition(",")
    if not sep:
        raise InvalidRequestError(f"{param}: a data: URL needs a ',' before its data",
                                  param=param, code="invalid_data_url")
    if len(header) > MAX_DATA_URL_HEADER_CHARS:
        raise InvalidRequestError(
            f"{param}: the data: URL's header (before the ',') is longer than "
            f"{MAX_DATA_URL_HEADER_CHARS} characters", param=param, code="invalid_data_url")
    media = header[5:].split(";")
    if media[0] and not media[0].lower().startswith(("image/", "application/octet-stream")):
        raise InvalidRequestError(
            f"{param}: the data: URL has media type '{media[0]}'; send an image",
            param=param, code="invalid_data_url",
        )
    if "base64" not in (m.strip().lower() for m in media[1:]):
        raise InvalidRequestError(f"{param}: only base64 data: URLs are supported "
                                  "(data:image/png;base64,...)", param=param,
                                  code="invalid_data_url")
    return _decode_base64(payload, param, cap)


def _decode_base64(value: str, param: str, cap: int) -> bytes:
    text = "".join(value.split())
    # Refuse by length before decoding: base64 is 4 characters per 3 bytes.
    if len(text) * 3 // 4 > cap + 3:
        raise _too_large(param, len(text) * 3 // 4, cap)
    if not text:
        raise InvalidRequestError(f"{param}: the image is empty", param=param,
                                  code="empty_image")
    if not _BASE64.match(text):
        raise InvalidRequestError(
            f"{param}: not an http(s) URL, a data: URL or base64 image data",
            param=param, code="invalid_image_reference",
        )
    # Accept the URL-safe alphabet and missing padding: both are common in the wild.
    text = text.replace("-", "+").replace("_", "/").rstrip("=")
    text += "=" * (-len(text) % 4)
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{param}: the base64 data is malformed", param=param,
                                  code="invalid_base64") from None
