"""RoutedProvider over scripted in-process channels: priority, weights, retries with
backoff, failover, rejections, breakers, official fallback, resume, concurrency."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import Counter

import pytest

from imagegate.errors import ProviderError, ProviderRejectedError, ServiceUnavailableError
from imagegate.providers.base import ProviderJob
from imagegate.providers.breaker import BreakerState
from imagegate.providers.routing import Channel, RetryPolicy, RoutedProvider
from tests.support.routing import (
    Clock,
    Scripted,
    Sleeps,
    channel_of,
    make_channel,
    make_job,
    no_progress,
)

pytestmark = pytest.mark.anyio


def server_error() -> ProviderError:
    return ProviderError("upstream 500", code="upstream_error")


def route(channels: list[Channel], clock: Clock, *, attempts: int = 3, backoff: float = 0.5,
          backoff_max: float = 30.0, seed: int = 7) -> tuple[RoutedProvider, Sleeps]:
    sleeps = Sleeps(clock)
    provider = RoutedProvider("gpt-image-2", channels,
                              policy=RetryPolicy(attempts, backoff, backoff_max),
                              rng=random.Random(seed), sleep=sleeps, clock=clock)
    return provider, sleeps


async def test_highest_priority_tier_first() -> None:
    clock = Clock()
    low, high = Scripted("low"), Scripted("high")
    router, _ = route([make_channel(low, clock, priority=0),
                       make_channel(high, clock, priority=5)], clock)
    for i in range(20):
        name = await channel_of(router, make_job(f"t{i}"), no_progress)
        assert name == "high"
    assert not low.calls


async def test_weighted_choice_within_a_tier() -> None:
    clock = Clock()
    a, b, standby = Scripted("a"), Scripted("b"), Scripted("standby")
    router, _ = route([make_channel(a, clock, weight=3), make_channel(b, clock, weight=1),
                       make_channel(standby, clock, weight=0)], clock, seed=1)
    picks: Counter[str] = Counter()
    for i in range(4000):
        name = await channel_of(router, make_job(f"t{i}"), no_progress)
        picks[name] += 1
    assert picks["standby"] == 0  # weight 0: only when nothing else can serve
    assert 0.72 < picks["a"] / 4000 < 0.78


async def test_weight_zero_serves_when_nothing_else_can() -> None:
    clock = Clock()
    main = Scripted("main", [server_error()])
    standby = Scripted("standby")
    router, _ = route([make_channel(main, clock, failures=1, priority=9),
                       make_channel(standby, clock, weight=0)], clock, attempts=1)
    with pytest.raises(ProviderError):
        await router.generate(make_job(), no_progress)
    name = await channel_of(router, make_job("t2"), no_progress)
    assert name == "standby"


async def test_retries_retryable_errors_with_jittered_backoff() -> None:
    clock = Clock()
    only = Scripted("only", [server_error(),
                             ProviderError("slow", code="upstream_timeout")])
    router, sleeps = route([make_channel(only, clock)], clock, attempts=3, backoff=1.0,
                           backoff_max=1.5)
    result = await router.generate(make_job(), no_progress)
    name = result.channel
    assert name == "only" and len(result.images) == 1
    assert len(only.calls) == 3
    assert len(sleeps.waits) == 2
    assert 0 <= sleeps.waits[0] <= 1.0  # base * 2^0
    assert 0 <= sleeps.waits[1] <= 1.5  # base * 2^1 = 2, capped at 1.5


async def test_retry_after_is_honoured() -> None:
    clock = Clock()
    only = Scripted("only", [ProviderError("slow down", retry_after=7.0,
                                           code="upstream_rate_limited")])
    router, sleeps = route([make_channel(only, clock)], clock, backoff=0.01)
    name = await channel_of(router, make_job(), no_progress)
    assert name == "only"
    assert sleeps.waits and sleeps.waits[0] >= 7.0


async def test_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    clock = Clock()
    only = Scripted("only", [ProviderError("come back in an hour", retry_after=3600.0,
                                           code="upstream_rate_limited")])
    router, sleeps = route([make_channel(only, clock)], clock, backoff_max=30.0)
    with pytest.raises(ProviderError) as info:
        await router.generate(make_job(), no_progress)
    assert info.value.code == "upstream_rate_limited"
    assert len(only.calls) == 1 and not sleeps.waits


async def test_rate_limited_channel_fails_over_without_waiting_for_it() -> None:
    clock = Clock()
    a = Scripted("a", [ProviderError("429", retry_after=20.0, code="upstream_rate_limited")])
    b = Scripted("b")
    router, sleeps = route([make_channel(a, clock, priority=1), make_channel(b, clock)],
                           clock, backoff=0.01)
    name = await channel_of(router, make_job(), no_progress)
    assert name == "b"
    assert all(w < 20 for w in sleeps.waits)


async def test_failover_prefers_a_different_channel() -> None:
    clock = Clock()
    a, b = Scripted("a", [server_error()]), Scripted("b", [server_error()])
    router, _ = route([make_channel(a, clock), make_channel(b, clock)], clock, attempts=3)
    name = await channel_of(router, make_job(), no_progress)
    # Whichever went first failed, the second call went to the other one, the third back.
    assert len(a.calls) + len(b.calls) == 3
    assert {len(a.calls), len(b.calls)} == {1, 2}
    assert name in ("a", "b")


async def test_failover_to_a_lower_priority_tier() -> None:
    clock = Clock()
    primary = Scripted("primary", [server_error()])
    backup = Scripted("backup")
    router, _ = route([make_channel(primary, clock, priority=10),
                       make_channel(backup, clock, priority=1)], clock)
    name = await channel_of(router, make_job(), no_progress)
    assert name == "backup"
    assert len(primary.calls) == 1 and len(backup.calls) == 1


@pytest.mark.parametrize("error", [
    ProviderRejectedError("Your prompt was flagged", code="content_policy_violation"),
    ProviderError("task timed out upstream", retryable=False, code="upstream_timeout"),
])
async def test_non_retryable_errors_are_raised_at_once(error: ProviderError) -> None:
    clock = Clock()
    a, b = Scripted("a", [error]), Scripted("b")
    chan_a = make_channel(a, clock, priority=1, failures=1)
    router, sleeps = route([chan_a, make_channel(b, clock)], clock)
    with pytest.raises(ProviderError) as info:
        await router.generate(make_job(), no_progress)
    assert info.value is error
    assert len(a.calls) == 1 and not b.calls and not sleeps.waits
    # Never counted against the breaker.
    assert chan_a.breaker.state is BreakerState.CLOSED
    assert chan_a.breaker.consecutive_failures == 0


async def test_at_most_max_attempts_calls() -> None:
    clock = Clock()
    a = Scripted("a", [server_error() for _ in range(10)])
    b = Scripted("b", [server_error() for _ in range(10)])
    router, _ = route([make_channel(a, clock, failures=10), make_channel(b, clock, failures=10)],
                      clock, attempts=4)
    with pytest.raises(ProviderError) as info:
        await router.generate(make_job(), no_progress)
    assert info.value.code == "upstream_error"
    assert len(a.calls) + len(b.calls) == 4


async def test_breaker_opens_and_the_channel_is_skipped_then_half_opens() -> None:
    clock = Clock()
    flaky = Scripted("flaky", [server_error(), server_error()])
    steady = Scripted("steady")
    chan = make_channel(flaky, clock, priority=5, failures=2, cooldown=60)
    router, _ = route([chan, make_channel(steady, clock)], clock, attempts=2)
    for i in range(2):  # each: flaky fails, steady serves
        name = await channel_of(router, make_job(f"t{i}"), no_progress)
        assert name == "steady"
    assert chan.breaker.state is BreakerState.OPEN
    name = await channel_of(router, make_job("t3"), no_progress)
    assert name == "steady" and len(flaky.calls) == 2  # skipped while open
    clock.t += 60
    assert chan.breaker.state is BreakerState.HALF_OPEN
    name = await channel_of(router, make_job("t4"), no_progress)
    assert name == "flaky"  # the trial call succeeded
    assert chan.breaker.state is BreakerState.CLOSED


async def test_all_breakers_open_is_service_unavailable() -> None:
    clock = Clock()
    a = Scripted("a", [server_error()])
    router, _ = route([make_channel(a, clock, failures=1, cooldown=42)], clock, attempts=1)
    with pytest.raises(ProviderError):
        await router.generate(make_job(), no_progress)
    with pytest.raises(ServiceUnavailableError) as info:
        await router.generate(make_job("t2"), no_progress)
    assert "no healthy upstream channel for model 'gpt-image-2'" in info.value.message
    assert info.value.headers["Retry-After"] == "42"
    assert len(a.calls) == 1


async def test_official_channels_only_with_official_fallback() -> None:
    clock = Clock()
    reseller = Scripted("reseller", [server_error() for _ in range(10)])
    official = Scripted("official")
    router, _ = route([make_channel(reseller, clock, failures=10),
                       make_channel(official, clock, official=True, priority=99)],
                      clock, attempts=3)
    with pytest.raises(ProviderError):
        await router.generate(make_job("t1"), no_progress)
    assert not official.calls and len(reseller.calls) == 3
    name = await channel_of(router, make_job("t2", official_fallback=True), no_progress)
    assert name == "official"  # only after the reseller failed
    assert len(reseller.calls) == 4


async def test_official_fallback_still_prefers_healthy_non_official() -> None:
    clock = Clock()
    reseller, official = Scripted("reseller"), Scripted("official")
    router, _ = route([make_channel(reseller, clock),
                       make_channel(official, clock, official=True, priority=99)], clock)
    for i in range(10):
        name = await channel_of(router, make_job(f"t{i}", official_fallback=True),
                                               no_progress)
        assert name == "reseller"
    assert not official.calls


async def test_official_fallback_when_non_official_unavailable() -> None:
    clock = Clock()
    reseller = Scripted("reseller", [server_error()])
    official = Scripted("official")
    chan = make_channel(reseller, clock, failures=1)
    router, _ = route([chan, make_channel(official, clock, official=True)], clock, attempts=1)
    with pytest.raises(ProviderError):
        await router.generate(make_job("t1", official_fallback=True), no_progress)
    assert chan.breaker.state is BreakerState.OPEN
    with pytest.raises(ServiceUnavailableError):
        await router.generate(make_job("t2"), no_progress)
    name = await channel_of(router, make_job("t3", official_fallback=True), no_progress)
    assert name == "official"


async def test_models_with_only_official_channels_serve_normally() -> None:
    clock = Clock()
    official = Scripted("openai")
    router, _ = route([make_channel(official, clock, official=True)], clock)
    name = await channel_of(router, make_job(), no_progress)
    assert name == "openai"


async def test_resume_goes_to_the_stored_channel_first() -> None:
    clock = Clock()
    preferred, holder = Scripted("preferred"), Scripted("holder", resumable=True)
    router, _ = route([make_channel(preferred, clock, priority=10),
                       make_channel(holder, clock)], clock)
    job = make_job(upstream_channel="holder", upstream_task_id="up-123")
    name = await channel_of(router, job, no_progress)
    assert name == "holder" and not preferred.calls
    assert holder.calls[0] is job  # passed as is: the adapter resumes polling up-123
    assert router.resumable


async def test_resume_through_an_open_breaker() -> None:
    clock = Clock()
    holder = Scripted("holder", [server_error()], resumable=True)
    chan = make_channel(holder, clock, failures=1)
    router, _ = route([chan], clock, attempts=1)
    with pytest.raises(ProviderError):
        await router.generate(make_job("t0"), no_progress)
    assert chan.breaker.state is BreakerState.OPEN
    job = make_job(upstream_channel="holder", upstream_task_id="up-1")
    name = await channel_of(router, job, no_progress)
    assert name == "holder"


async def test_failed_resume_submits_afresh_elsewhere() -> None:
    clock = Clock()
    holder = Scripted("holder", [ProviderError("task vanished", code="upstream_not_found")])
    other = Scripted("other")
    router, _ = route([make_channel(holder, clock), make_channel(other, clock)], clock)
    job = make_job(upstream_channel="holder", upstream_task_id="up-9")
    name = await channel_of(router, job, no_progress)
    assert name == "other"
    assert other.calls[0].upstream_channel is None
    assert other.calls[0].upstream_task_id is None


async def test_resume_on_a_channel_no_longer_configured_is_not_resubmitted() -> None:
    clock = Clock()
    a = Scripted("a")
    router, _ = route([make_channel(a, clock)], clock)
    with pytest.raises(ProviderError) as info:
        await router.generate(make_job(upstream_channel="gone", upstream_task_id="up-1"),
                              no_progress)
    assert info.value.code == "upstream_channel_gone" and not a.calls


async def test_concurrency_limit_per_channel() -> None:
    clock = Clock()
    gate = asyncio.Event()
    a = Scripted("a", gate=gate)
    chan = make_channel(a, clock, concurrency=2)
    router, _ = route([chan], clock)

    async def one(i: int) -> str:
        name = await channel_of(router, make_job(f"t{i}"), no_progress)
        return name

    runs = [asyncio.create_task(one(i)) for i in range(6)]
    for _ in range(50):
        await asyncio.sleep(0)
    assert a.active == 2 and chan.in_flight == 2 and chan.full()
    gate.set()
    assert await asyncio.gather(*runs) == ["a"] * 6
    assert a.peak == 2 and chan.in_flight == 0


async def test_full_channel_is_avoided_within_a_tier() -> None:
    clock = Clock()
    gate = asyncio.Event()
    busy, free = Scripted("busy", gate=gate), Scripted("free")
    router, _ = route([make_channel(busy, clock, concurrency=1, weight=100),
                       make_channel(free, clock, weight=1)], clock, seed=3)
    # Occupy the busy channel's only slot, then every other task goes to the free one.
    first = asyncio.create_task(router.generate(make_job("hold"), no_progress))
    await busy.entered.wait()
    for i in range(5):
        name = await channel_of(router, make_job(f"t{i}"), no_progress)
        assert name == "free"
    gate.set()
    assert (await first).channel == "busy"


async def test_cancellation_frees_the_slot_and_the_trial() -> None:
    clock = Clock()
    gate = asyncio.Event()
    a = Scripted("a", [server_error()])
    chan = make_channel(a, clock, failures=1, cooldown=5)
    router, _ = route([chan], clock, attempts=1)
    with pytest.raises(ProviderError):
        await router.generate(make_job(), no_progress)
    clock.t += 5
    a.gate = gate
    a.entered.clear()
    run = asyncio.create_task(router.generate(make_job("t2"), no_progress))
    await a.entered.wait()
    assert not chan.breaker.available()  # the trial is out
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert chan.in_flight == 0
    assert chan.breaker.available()


def variation_job(task_id: str = "var-1") -> ProviderJob:
    job = make_job(task_id)
    return dataclasses.replace(job, request=dataclasses.replace(job.request,
                                                                operation="variation"))


async def test_variations_go_only_to_channels_that_offer_them() -> None:
    clock = Clock()
    plain = Scripted("plain", [server_error()])
    varying = Scripted("varying", variations=True)
    router, _ = route([make_channel(plain, clock, priority=10),
                       make_channel(varying, clock, priority=0)], clock)
    assert router.offers("variation")
    for i in range(5):
        assert await channel_of(router, variation_job(f"v{i}"), no_progress) == "varying"
    assert not plain.calls
    # Generations keep their order: the higher priority first.
    assert await channel_of(router, make_job("g"), no_progress) == "varying"  # 500, failover
    assert len(plain.calls) == 1


async def test_variations_refused_when_no_channel_offers_them() -> None:
    clock = Clock()
    a, b = Scripted("a"), Scripted("b")
    router, sleeps = route([make_channel(a, clock, adapter="dimilinks"),
                            make_channel(b, clock, adapter="apimart")], clock)
    assert not router.offers("variation")
    with pytest.raises(ProviderRejectedError) as info:
        await router.generate(variation_job(), no_progress)
    exc = info.value
    assert exc.code == "unsupported_operation" and not exc.retryable
    assert exc.status_code == 400
    assert "'a' (dimilinks), 'b' (apimart) do not offer image variations" in exc.message
    assert not a.calls and not b.calls and not sleeps.waits
    assert all(c.stats().requests == 0 for c in router.channels)  # not the channels' fault


async def test_aclose_closes_shared_channels_once() -> None:
    clock = Clock()
    a = Scripted("a")
    chan = make_channel(a, clock)
    r1, _ = route([chan], clock)
    r2 = RoutedProvider("gpt-image-1", [chan])
    await r1.aclose()
    await r2.aclose()
    assert a.closed == 1
