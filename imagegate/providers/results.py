"""Turn an upstream's result (base64, `data:` URL, absolute or relative URL) into verified
image bytes.

Upstreams answer in any of four forms and clients must only ever see imagegate's own URLs,
so every result is brought home here: size-capped (base64 before it is decoded, downloads
while they stream), then checked like a client's reference image (magic bytes, header
dimensions), because an upstream's bytes are no more trusted than a client's. Completeness is
checked by the container's trailer (`upstream_result_check = "trailer"`, microseconds) or by
decoding every pixel (`"full"`, ~10-50 ms of CPU for a 4K image): an upstream's answer is a
finished file or a cut one, and the trailer catches the cut.

Which path a URL takes is the SSRF decision: a URL on the channel's own origin (the host
the operator configured, loopback in tests) goes through the channel's client; any other
host goes through the guarded `Fetcher`, which refuses loopback, private and metadata
addresses, so a compromised or confused upstream cannot make us fetch from our own network.
"""

from __future__ import annotations

import asyncio
import binascii
import re

import pybase64
from yarl import URL

from imagegate.domain.images import GeneratedImage
from imagegate.errors import ProviderError
from imagegate.ingest.images import ImageRejected, check_header, check_trailer, decode
from imagegate.net.fetch import Fetcher, FetchError
from imagegate.providers.big_json import Base64Text
from imagegate.providers.upstream import UpstreamClient

_WHITESPACE = re.compile(rb"\s+")


class ResultDownloader:
    def __init__(self, fetcher: Fetcher, max_bytes: int, max_pixels: int = 100_000_000,
                 decode_concurrency: int = 4, *, full_check: bool = False) -> None:
        self.fetcher = fetcher
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.full_check = full_check
        # Decoding and verifying a 4K result is ~10-50 ms of CPU: bounded, so a burst of
        # answers neither holds thousands of decoded copies at once nor starves the event
        # loop (whose lag would delay lease renewals; bench/README.md "Relay").
        self._decode_slots = asyncio.Semaphore(decode_concurrency)

    async def load(
        self, value: str | Base64Text, *, client: UpstreamClient,
        revised_prompt: str | None = None
    ) -> GeneratedImage:
        name = client.channel.name
        if isinstance(value, Base64Text):  # decoded with the answer (`big_json`)
            data = self._capped(value.data, name)
        else:
            data = await self._bytes(value.strip(), client)
        try:
            info = check_header(data, max_pixels=self.max_pixels)
            check_trailer(data, info)
            if self.full_check:
                async with self._decode_slots:
                    await decode(data, info)
        except ImageRejected as exc:
            raise _bad(name, f"not a usable image: {exc.message}") from None
        return GeneratedImage(
            data=data,
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            revised_prompt=revised_prompt or None,
        )

    async def _bytes(self, value: str, client: UpstreamClient) -> bytes:
        is_url = value.startswith(("http://", "https://")) or (
            value.startswith("/") and not _base64_image(value))
        if is_url:
            return await self._download(value, client)
        return self._inline(value, client.channel.name)

    def _inline(self, value: str, name: str) -> bytes:
        """A `data:` URL or bare base64. Decoded on the event loop: pybase64's SIMD decoder
        takes ~0.25 ms for a 2 MiB image, less than a hop to a thread and back."""
        if not value:
            raise _bad(name, "empty result")
        if value[:5].lower() == "data:":
            return self._data_url(value, name)
        return self._b64(value, name)

    def _data_url(self, value: str, name: str) -> bytes:
        header, sep, payload = value.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise _bad(name, "a data: URL result that is not base64")
        return self._b64(payload, name)

    def _b64(self, value: str, name: str) -> bytes:
        # 4 characters carry 3 bytes: refuse an oversized string before decoding a byte.
        if len(value) // 4 * 3 > self.max_bytes + 3:
            raise _too_large(name, self.max_bytes)
        try:
            # The str itself: pybase64 reads an ASCII str in place (encoding it to bytes
            # first was a 2.9 MB copy per 2 MiB image, ~1 ms). A str with other characters
            # raises ValueError (binascii.Error is one) and goes the slow way.
            data = pybase64.b64decode(value, validate=True)
        except ValueError:
            # Some upstreams wrap lines or use the URL-safe alphabet; accept both.
            raw = value.encode("ascii", "replace")
            cleaned = _WHITESPACE.sub(b"", raw).replace(b"-", b"+").replace(b"_", b"/")
            cleaned += b"=" * (-len(cleaned) % 4)
            try:
                data = pybase64.b64decode(cleaned, validate=True)
            except binascii.Error:
                raise _bad(name, "the result is neither a URL nor valid base64") from None
        return self._capped(data, name)

    def _capped(self, data: bytes, name: str) -> bytes:
        """A decoded image, refused when larger than `max_bytes`."""
        if len(data) > self.max_bytes:
            raise _too_large(name, self.max_bytes)
        return data

    async def _download(self, value: str, client: UpstreamClient) -> bytes:
        name = client.channel.name
        try:
            url = URL(client.origin).join(URL(value)) if value.startswith("/") else URL(value)
        except ValueError:
            raise _bad(name, "the result URL is not valid") from None
        if str(url.origin()) == client.origin:
            try:
                return await client.get_bytes(str(url), self.max_bytes)
            except ProviderError as exc:
                raise _bad(name, f"download failed: {exc.message}") from None
        try:
            return await self.fetcher.fetch(str(url), max_bytes=self.max_bytes)
        except FetchError as exc:
            raise _bad(name, f"download failed: {exc.message}") from None


def _base64_image(value: str) -> bool:
    """Whether a result that starts with `/` is base64 rather than a relative URL: a JPEG's
    base64 starts with `/9j/`. Decided by the image magic its first characters decode to."""
    try:
        head = pybase64.b64decode(value[:16], validate=True)
    except (binascii.Error, ValueError):
        return False
    return head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"RIFF"))


def _bad(channel: str, why: str) -> ProviderError:
    return ProviderError(f"{channel}: upstream result: {why}", code="upstream_bad_result")


def _too_large(channel: str, cap: int) -> ProviderError:
    return _bad(channel, f"larger than the {cap}-byte limit")
