"""The rate limiter contract: requests per minute per API key, in memory and on Redis
(`limiter` in conftest.py), plus what only Redis does: one window for a key across every
process."""

from __future__ import annotations

import time

import pytest

from imagegate.accounts.keys import ApiKey
from imagegate.accounts.limits import RateLimiter
from imagegate.errors import RateLimitError
from tests.contracts.conftest import unique_prefix

pytestmark = pytest.mark.anyio


def key(key_id: str, rpm: int | None) -> ApiKey:
    return ApiKey(id=key_id, name=key_id, prefix="ig_x", created_at=0.0, revoked_at=None,
                  rpm=rpm)


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


async def test_every_process_counts_against_one_window(redis_url: str) -> None:
    """Three API processes (three limiters on one Redis) serving one key: rpm 4 allows 4
    requests in all, not 4 each."""
    prefix = unique_prefix()
    processes = [RateLimiter(redis_url, key_prefix=prefix) for _ in range(3)]
    try:
        k = key("key_shared", 4)
        for i in range(4):
            await processes[i % 3].check(k)
        for limiter in processes:
            with pytest.raises(RateLimitError):
                await limiter.check(k)
    finally:
        for limiter in processes:
            await limiter.aclose()


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
