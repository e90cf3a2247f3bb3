"""The admin client's session (admin.py): one aiohttp session per `async with`, sending a
bearer token on every request. (`Client` and `AsyncClient` speak httpx: see http.py.)"""

from __future__ import annotations

from typing import Self

import aiohttp


class BearerSession:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"use `async with {type(self).__name__}(...)`")
        return self._session
