"""Fetch a user-supplied image URL through the SSRF guard, with a byte cap and deadlines.

Redirects are followed here rather than by aiohttp so that every hop's scheme and literal
host are judged before its request is sent; host names are judged by `GuardedResolver` when
aiohttp resolves them, which is before any socket exists.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from imagegate import __version__
from imagegate.net.guard import AddressPolicy, FetchRefusedError, find_refusal
from imagegate.net.session import GuardedSession

MiB = 1024 * 1024

FetchErrorCode = Literal[
    "url_refused",
    "url_scheme",
    "fetch_failed",
    "fetch_timeout",
    "too_large",
    "bad_status",
    "too_many_redirects",
]

_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * MiB
    connect_timeout: float = 5.0
    total_timeout: float = 30.0
    max_redirects: int = 3


class FetchError(Exception):
    """A fetch the client can fix or should know about. `message` names at most the host."""

    def __init__(self, code: FetchErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: FetchErrorCode = code
        self.message = message
        self.status = 413 if code == "too_large" else 400


class Fetcher:
    """One pooled, guarded HTTP client for reference-image URLs; `aclose()` when done."""

    def __init__(
        self,
        policy: AddressPolicy,
        limits: FetchLimits | None = None,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._limits = limits if limits is not None else FetchLimits()
        self._client = GuardedSession(
            policy,
            timeout=aiohttp.ClientTimeout(total=self._limits.total_timeout,
                                          sock_connect=self._limits.connect_timeout),
            headers={
                "User-Agent": f"imagegate/{__version__}",
                "Accept": "image/*",
                # Images are compressed already; raw bytes keep the cap honest (a small gzip
                # body cannot inflate past it).
                "Accept-Encoding": "identity",
            },
            auto_decompress=False,
            resolver=resolver,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, *, max_bytes: int | None = None) -> bytes:
        cap = self._limits.max_bytes if max_bytes is None else max_bytes
        first = current = _parse_url(url)
        session = self._client.session
        try:
            # One deadline for the whole chain; ClientTimeout alone would restart per hop.
            async with asyncio.timeout(self._limits.total_timeout):
                for _ in range(self._limits.max_redirects + 1):
                    result = await self._hop(session, current, cap)
                    if isinstance(result, bytes):
                        return result
                    current = result
        except TimeoutError:
            raise _timeout(current, self._limits.total_timeout) from None
        raise FetchError(
            "too_many_redirects",
            f"Fetching the image from {_host(first)} took more than "
            f"{self._limits.max_redirects} redirects",
        )

    async def _hop(self, session: aiohttp.ClientSession, url: URL, cap: int) -> bytes | URL:
        """Request one URL: its body, or the URL it redirects to."""
        url = self._check_target(url)
        try:
            async with session.get(url, allow_redirects=False) as response:
                if response.status in _REDIRECTS:
                    return _redirect_target(url, response)
                if not 200 <= response.status < 300:
                    raise FetchError(
                        "bad_status",
                        f"Fetching the image from {_host(url)} failed: the server answered "
                        f"HTTP {response.status}",
                    )
                return await _read_capped(response, cap, url)
        except aiohttp.ConnectionTimeoutError:
            raise FetchError(
                "fetch_timeout",
                f"Connecting to {_host(url)} timed out after {self._limits.connect_timeout:g} s",
            ) from None
        except TimeoutError:  # before OSError: TimeoutError is one, and so are aiohttp's
            raise _timeout(url, self._limits.total_timeout) from None
        except aiohttp.InvalidURL:
            raise FetchError("url_scheme", f"{_host(url)} is not a valid URL host") from None
        except (aiohttp.ClientError, OSError) as exc:
            refused = find_refusal(exc)
            if refused is not None:
                raise _refused(refused.public_reason) from None
            if isinstance(exc, aiohttp.ClientConnectorError):
                message = f"Could not fetch the image: {_host(url)} could not be reached"
            else:
                message = f"Could not fetch the image: the connection to {_host(url)} failed"
            raise FetchError("fetch_failed", message) from None

    def _check_target(self, url: URL) -> URL:
        """Refuse a bad scheme or a refused literal host before anything is sent (every hop
        of a redirect chain comes through here)."""
        if url.scheme not in _SCHEMES:
            raise FetchError(
                "url_scheme",
                f"Only http and https URLs can be fetched, not {url.scheme or 'this'} URLs",
            )
        if not url.raw_host:
            raise FetchError("url_scheme", "The URL has no host")
        try:
            return self._client.check_target(url)
        except FetchRefusedError as exc:
            raise _refused(exc.public_reason) from None


def _parse_url(url: str) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise FetchError("url_scheme", "The image URL is not a valid URL") from None
    if not parsed.absolute:
        raise FetchError("url_scheme", "The image URL must be an absolute http(s) URL")
    return parsed


def _host(url: URL) -> str:
    # Only the host ever goes into a message: never userinfo, path or query.
    return url.raw_host or "the server"


def _timeout(url: URL, seconds: float) -> FetchError:
    return FetchError(
        "fetch_timeout", f"Fetching the image from {_host(url)} timed out after {seconds:g} s"
    )


def _refused(reason: str) -> FetchError:
    return FetchError("url_refused", f"Refused to fetch the image URL: {reason}")


def _redirect_target(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchError(
            "bad_status",
            f"Fetching the image from {_host(url)} failed: HTTP {response.status} "
            "without a Location",
        )
    try:
        return url.join(URL(location)).with_fragment(None)
    except ValueError:
        raise FetchError("fetch_failed", f"{_host(url)} redirected to an invalid URL") from None


async def _read_capped(response: aiohttp.ClientResponse, cap: int, url: URL) -> bytes:
    """The body, refusing as soon as it is known to exceed `cap` bytes; memory stays ≤ cap."""
    too_large = FetchError(
        "too_large", f"The image at {_host(url)} is larger than the {_size(cap)} limit"
    )
    if response.content_length is not None and response.content_length > cap:
        response.close()  # drop the connection rather than drain a body we refuse
        raise too_large
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > cap:
            response.close()
            raise too_large
    return bytes(body)


def _size(n: int) -> str:
    return f"{n / MiB:g} MiB" if n >= MiB else f"{n} bytes"
