"""The one way imagegate builds an HTTP client for URLs it did not choose itself (reference
images, upstream results on foreign hosts, webhook receivers): an aiohttp session whose every
connection passes the SSRF guard.

What makes such a session safe is the same each time, so it is written once:
- `GuardedResolver` judges every address DNS returns, and DNS caching is off (a cached
  answer would skip the resolver, and with it the guard);
- IP-literal hosts, which aiohttp never resolves, are judged by `check_target` before a
  request is sent;
- no proxies from the environment (a proxy would resolve and connect out of the guard's
  sight) and no cookies (one URL's server must not set any for the next).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from imagegate.net.guard import (
    AddressPolicy,
    FetchRefusedError,
    GuardedResolver,
    parse_host_literal,
)


class GuardedSession:
    """A lazily opened guarded `aiohttp.ClientSession`; `aclose()` when done.

    Opened on first use because aiohttp binds a session to the event loop it was created in,
    and the owners of these sessions are built before their loop runs."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str],
        limit: int = 100,
        auto_decompress: bool = True,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.policy = policy
        self._timeout = timeout
        self._headers = dict(headers)
        self._limit = limit
        self._auto_decompress = auto_decompress
        self._inner_resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._resolver: GuardedResolver | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = GuardedResolver(self.policy, self._inner_resolver)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=self._resolver, use_dns_cache=False,
                                               limit=self._limit),
                timeout=self._timeout,
                headers=self._headers,
                auto_decompress=self._auto_decompress,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def check_target(self, url: URL) -> URL:
        """Judge what the resolver never sees, an IP-literal host, before anything is sent.

        Returns the URL to request: a legacy IPv4 form (`2130706433`, which aiohttp would
        reject) is rewritten to the dotted address that was checked. Raises
        `FetchRefusedError` for a refused address. The scheme is the caller's to check."""
        host = url.raw_host
        if not host or self.policy.host_allowed(host):
            return url
        literal = parse_host_literal(host)
        if literal is None:
            return url  # a name: GuardedResolver judges what it resolves to
        verdict = self.policy.classify(literal)
        if verdict is not None:
            raise FetchRefusedError(host, f"{host} is {verdict.kind_phrase}")
        if literal.version == 4 and host != str(literal):
            return url.with_host(str(literal))
        return url

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
