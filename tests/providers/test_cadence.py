"""The polling cadence of async upstream tasks (providers/cadence.py) and the poll loop that
follows it (providers/polling.py), on a fake clock: when the first poll comes, how the waits
grow and where they stop, the jitter's bounds, that a finished task is still seen promptly,
and that deadlines and cancels are still honoured."""

from __future__ import annotations

import asyncio
import random
import types
from typing import Any

import pytest
from pydantic import SecretStr

from imagegate.config import ChannelConfig
from imagegate.domain.catalog import load_catalog
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderError
from imagegate.net.fetch import Fetcher
from imagegate.net.guard import AddressPolicy
from imagegate.providers import polling
from imagegate.providers.base import ProviderJob
from imagegate.providers.cadence import GROWTH, JITTER, Cadence
from imagegate.providers.polling import AsyncTaskProvider, ResultItem, TaskState
from imagegate.providers.results import ResultDownloader

pytestmark = pytest.mark.anyio


def channel(**fields: Any) -> ChannelConfig:
    return ChannelConfig(name="tasks", adapter="dimilinks", base_url="http://127.0.0.1:9",
                         api_key=SecretStr("sk-x"), models=["gpt-image-2"], **fields)


# -------------------------------------------------------------------------- the cadence

def test_first_poll_after_poll_interval_then_half_of_the_typical_time_left() -> None:
    c = Cadence(3.0, 30.0, 60.0)
    assert c.base(0.0, 0) == 3.0
    assert c.base(3.0, 1) == 28.5  # (60 - 3) / 2
    assert c.base(31.5, 2) == 14.25
    # Near the typical time: a tenth of it, so the finish is seen within about 6 s.
    assert c.base(55.0, 5) == pytest.approx(GROWTH * 60)


def test_after_the_typical_time_the_wait_grows_with_age_up_to_the_cap() -> None:
    c = Cadence(3.0, 30.0, 60.0)
    assert c.base(100.0, 9) == pytest.approx(10.0)
    assert c.base(200.0, 12) == pytest.approx(20.0)
    assert c.base(3_000.0, 40) == 30.0
    waits = [c.base(age, 5) for age in range(60, 1000, 20)]
    assert waits == sorted(waits)


def test_without_a_typical_time_the_wait_follows_age_alone() -> None:
    c = Cadence(0.5, 20.0, 0.0)
    assert c.base(0.0, 0) == 0.5
    assert c.base(1.0, 1) == 0.5
    assert c.base(40.0, 3) == pytest.approx(4.0)


def test_jitter_stays_within_its_fraction_and_the_channel_bounds() -> None:
    rng = random.Random(7)
    c = Cadence(3.0, 30.0, 60.0)
    for age in (0.0, 3.0, 20.0, 55.0, 90.0, 250.0, 5_000.0):
        base = c.base(age, 1 if age else 0)
        draws = [c.wait(age, 1 if age else 0, rng) for _ in range(500)]
        assert all(max(3.0, base * (1 - JITTER)) <= d <= min(30.0, base * (1 + JITTER))
                   for d in draws)
        # Spread, not lockstep: the draws cover most of the allowed range.
        span = min(30.0, base * (1 + JITTER)) - max(3.0, base * (1 - JITTER))
        assert max(draws) - min(draws) >= 0.8 * span


def test_poll_interval_max_equal_to_poll_interval_is_a_fixed_interval() -> None:
    c = Cadence.for_channel(channel(poll_interval=5, poll_interval_max=5), 180.0)
    rng = random.Random(1)
    assert {c.wait(age, n, rng) for n, age in enumerate((0.0, 5.0, 100.0, 900.0))} == {5.0}


def test_poll_interval_max_defaults_to_ten_poll_intervals_and_never_below_it() -> None:
    assert channel().max_poll_interval == 30.0
    assert channel(poll_interval=0.2).max_poll_interval == pytest.approx(2.0)
    assert channel(poll_interval=10, poll_interval_max=4).max_poll_interval == 10.0
    assert Cadence.for_channel(channel(poll_interval_max=45), 60.0).longest == 45.0


def test_the_typical_time_comes_from_the_catalog_per_model_and_tier() -> None:
    fetcher = Fetcher(AddressPolicy())
    provider = Scripted(channel(), ResultDownloader(fetcher, max_bytes=1024),
                        catalog=load_catalog())
    assert provider.cadence(job(tier="4k")).expected == 180.0
    assert provider.cadence(job(tier="1k")).expected == 60.0
    bare = Scripted(channel(), ResultDownloader(fetcher, max_bytes=1024))
    assert bare.cadence(job()).expected == 0.0


# -------------------------------------------------------------------------- the loop

class Scripted(AsyncTaskProvider):
    """Polls answer "running" until the fake clock reaches `done_at`."""

    done_at = float("inf")
    clock: FakeClock

    async def submit(self, job: ProviderJob) -> tuple[str, TaskState | None]:
        raise AssertionError("not used")

    async def poll(self, upstream_id: str) -> TaskState:
        self.clock.polls.append(self.clock.now)
        if self.clock.now >= self.done_at:
            return TaskState("succeeded", 100, (ResultItem("data:,x"),))
        return TaskState("running", 10)


class FakeClock:
    """`time.monotonic` and `asyncio.sleep` for polling.py alone: sleeping advances `now`."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.polls: list[float] = []
        self.time = types.SimpleNamespace(monotonic=lambda: self.now)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await _real_sleep(0)


_real_sleep = asyncio.sleep


def job(tier: str = "1k") -> ProviderJob:
    return ProviderJob(task_id="t", request=ImageRequest(
        operation="generate", model="gpt-image-2", prompt="p", n=1, width=1024, height=1024,
        tier=tier, size_label="1024x1024", output_format="png", output_compression=None,
        background="auto", quality="auto", moderation="auto", style=None, user=None,
        response_format="url"))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(polling, "time", fake.time)
    monkeypatch.setattr(polling, "asyncio", types.SimpleNamespace(
        sleep=fake.sleep, timeout=asyncio.timeout))
    return fake


def scripted(clock: FakeClock, done_after: float, **fields: Any) -> Scripted:
    provider = Scripted(channel(**fields), ResultDownloader(Fetcher(AddressPolicy()), max_bytes=1),
                        catalog=load_catalog(), rng=random.Random(3))
    provider.clock = clock
    provider.done_at = clock.now + done_after
    return provider


async def noop_progress(_pct: int) -> None:
    pass


async def test_a_60s_task_is_polled_a_few_times_and_seen_promptly(clock: FakeClock) -> None:
    provider = scripted(clock, 61.0)
    start = clock.now
    state = await provider._wait("up-1", noop_progress, provider.cadence(job()), False)
    assert state.phase == "succeeded"
    ages = [p - start for p in clock.polls]
    assert 3.0 <= ages[0] <= 3.6  # poll_interval, jittered upwards only
    # Every 3 s would be 21 polls; the cadence needs about 6, and sees the finish within
    # a tenth of the run time (+ jitter).
    assert len(ages) <= 8
    assert ages[-1] - 61.0 <= GROWTH * 61.0 * (1 + JITTER) + 0.01
    assert all(3.0 <= s <= 30.0 for s in clock.sleeps)


async def test_a_long_task_backs_off_to_poll_interval_max(clock: FakeClock) -> None:
    provider = scripted(clock, 1_000.0, poll_interval_max=20)
    await provider._wait("up-1", noop_progress, provider.cadence(job("4k")), False)
    assert max(clock.sleeps) <= 20.0
    assert clock.sleeps[-5:] and all(s >= 20.0 * (1 - JITTER) for s in clock.sleeps[-5:])
    assert len(clock.polls) < 1_000 / 3 / 4


async def test_a_resumed_task_is_polled_at_once(clock: FakeClock) -> None:
    provider = scripted(clock, 0.0)
    start = clock.now
    await provider._wait("up-1", noop_progress, provider.cadence(job()), True)
    assert clock.polls == [start]


async def test_task_timeout_still_ends_the_wait(clock: FakeClock) -> None:
    provider = scripted(clock, 10_000.0, task_timeout=40)
    start = clock.now
    with pytest.raises(ProviderError) as caught:
        await provider._wait("up-1", noop_progress, provider.cadence(job()), False)
    assert caught.value.code == "upstream_timeout" and not caught.value.retryable
    assert clock.now - start == pytest.approx(40.0)  # no sleep overshoots the deadline


async def test_a_cancel_during_a_wait_stops_the_polling(clock: FakeClock) -> None:
    provider = scripted(clock, 10_000.0)
    blocked = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        clock.sleeps.append(seconds)
        if len(clock.sleeps) == 2:
            blocked.set()
            await _real_sleep(3600)
        clock.now += seconds

    clock.sleep = slow_sleep  # type: ignore[method-assign]
    polling.asyncio.sleep = slow_sleep  # type: ignore[attr-defined]
    run = asyncio.ensure_future(
        provider._wait("up-1", noop_progress, provider.cadence(job()), False))
    await blocked.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert len(clock.polls) == 1
