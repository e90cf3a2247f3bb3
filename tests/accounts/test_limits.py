"""The per-key requests-per-minute limiter, in memory and on Redis.

Redis at $IMAGEGATE_TEST_REDIS_URL (default 127.0.0.1:6379). Outside CI an unreachable server
skips the Redis variant with the reason printed; in CI (CI=true) it fails, like PostgreSQL.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from imagegate.accounts.keys import ApiKey
from imagegate.accounts.limits import RateLimiter
from imagegate.errors import RateLimitError

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def key(key_id: str, rpm: int | None) -> ApiKey:
    return ApiKey(id=key_id, name=key_id, prefix="ig_x", created_at=0.0, revoked_at=None,
                  rpm=rpm)


async def _redis_up() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI requires it)")
        print(f"\nSKIP: {reason}")
        pytest.skip(reason)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    # A unique prefix per test: Redis windows outlive the test by a minute.
    prefix = f"igtest-{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        await _redis_up()
        made = RateLimiter(REDIS_URL, key_prefix=prefix)
    else:
        made = RateLimiter(None, key_prefix=prefix)
    try:
        yield made
    finally:
        await made.aclose()


async def test_over_the_limit_is_a_429_with_retry_after(limiter: RateLimiter) -> None:
    k = key("key_a", 3)
    for _ in range(3):
        await limiter.check(k)
    with pytest.raises(RateLimitError) as err:
        await limiter.check(k)
    assert err.value.status_code == 429 and err.value.code == "rate_limit_exceeded"
    assert "3 requests per minute" in err.value.message
    assert 1 <= int(err.value.headers["Retry-After"]) <= 60
    # Another key has its own window.
    await limiter.check(key("key_b", 3))


async def test_no_rpm_means_no_limit(limiter: RateLimiter) -> None:
    k = key("key_free", None)
    for _ in range(200):
        await limiter.check(k)


async def test_changed_limit_takes_effect(limiter: RateLimiter) -> None:
    await limiter.check(key("key_c", 1))
    with pytest.raises(RateLimitError):
        await limiter.check(key("key_c", 1))
    await limiter.check(key("key_c", 5))  # raised by the operator: a fresh window


async def test_retry_after_is_the_time_until_the_window_frees(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A controlled clock (the memory storage reads time.time()), so the exact seconds show."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    limiter = RateLimiter(None)
    try:
        k = key("key_t", 2)
        await limiter.check(k)
        now[0] += 20
        await limiter.check(k)
        with pytest.raises(RateLimitError) as err:
            await limiter.check(k)
        assert err.value.headers["Retry-After"] == "40"  # the first hit leaves at +60
        now[0] += 39.5
        with pytest.raises(RateLimitError) as err:
            await limiter.check(k)
        assert err.value.headers["Retry-After"] == "1"
        now[0] += 1
        await limiter.check(k)  # the oldest hit left the window
    finally:
        await limiter.aclose()


async def test_unreachable_redis_lets_requests_through() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0", key_prefix="igtest-down")
    try:
        for _ in range(3):
            await limiter.check(key("key_d", 1))
    finally:
        await limiter.aclose()
