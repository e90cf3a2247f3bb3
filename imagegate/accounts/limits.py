"""Requests-per-minute limits per API key, with the `limits` library's moving window.

In memory (per process) by default; on Redis when `redis_url` is set, so every process of a
deployment counts against the same window. A moving window, not a fixed one: a fixed window
lets a client send 2×rpm requests across a window boundary.

If Redis is unreachable the limiter lets requests through (and logs it): a rate limit protects
the upstreams, and an outage of the limiter's storage should not take the whole API down with
it. Balances and concurrent-task limits are enforced in the database and are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from imagegate.accounts.keys import ApiKey
from imagegate.config import Settings
from imagegate.errors import RateLimitError

log = logging.getLogger("imagegate.limits")


def _async_url(redis_url: str) -> str:
    """`redis://…` as the `limits` async storage spells it (`async+redis://…`)."""
    return redis_url if redis_url.startswith("async+") else "async+" + redis_url


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, key_prefix: str = "imagegate") -> None:
        self._prefix = key_prefix
        self._storage: MemoryStorage | RedisStorage
        if redis_url is None:
            self._storage = MemoryStorage(wrap_exceptions=True)
        else:
            # redis-py (a dependency already) rather than limits' default coredis driver.
            self._storage = RedisStorage(_async_url(redis_url), wrap_exceptions=True,
                                         implementation="redispy", key_prefix=key_prefix)
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def check(self, key: ApiKey) -> None:
        """Count one request of `key`; RateLimitError (429 with Retry-After) when over."""
        if key.rpm is None:
            return
        item = RateLimitItemPerMinute(key.rpm)
        try:
            if await self._limiter.hit(item, self._prefix, "rpm", key.id):
                return
            stats = await self._limiter.get_window_stats(item, self._prefix, "rpm", key.id)
        except StorageError as exc:
            log.warning("rate limit storage unavailable; request let through: %s", exc)
            return
        # The window frees its oldest slot at reset_time; round up so a client that waits
        # exactly Retry-After seconds is not refused again.
        seconds = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimitError(
            f"Rate limit of {key.rpm} requests per minute reached for this key",
            headers={"Retry-After": str(seconds)}, code="rate_limit_exceeded",
        )

    async def aclose(self) -> None:
        storage = self._storage
        if isinstance(storage, MemoryStorage):
            # Its expiry sweeper is a background task; cancel it rather than leak it.
            timer = storage.timer
            if timer is not None and not timer.done():
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            return
        client = getattr(storage.bridge, "storage", None)
        if client is not None:
            await client.aclose()


def memory_limiter(_settings: Settings) -> RateLimiter:
    """Counts in this process only (one server process, or limits per process)."""
    return RateLimiter(None)


def redis_limiter(settings: Settings) -> RateLimiter:
    """Counts in Redis (`redis_url`): one window per key across every process."""
    return RateLimiter(settings.redis_url)
