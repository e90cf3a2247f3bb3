"""Routing over upstream channels: priority tiers, weights, retries, failover, breakers.

`RoutedProvider` serves one model over the channels configured for it and is itself a
`Provider`, so the worker does not know routing exists (DESIGN §7: cross-cutting concerns as
small wrappers). One `Channel` (adapter, breaker, concurrency limit, recent outcomes) is
shared by every model it serves: a broken upstream is broken for all of them.

Choice of the next channel, best first: one not yet tried by this task (failover), a
non-official one (official channels only back up the others, and only when the request
asked for `official_fallback`, unless a model has nothing but official channels), one not
cooling down after a 429, one with a weight (weight 0 = standby), the highest `priority`,
one with a free concurrency slot; then a weighted random choice among equals. A channel
whose adapter cannot run the job's operation (variations) is left out while another can;
when none can, the job is refused as the request's fault, without calling any upstream.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from imagegate.config import ChannelConfig, Settings
from imagegate.errors import (
    ImagegateError,
    ProviderError,
    ProviderRejectedError,
    ServiceUnavailableError,
)
from imagegate.metrics import ChannelGauges, Metrics, Outcome
from imagegate.providers.base import (
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
    refuse_variation,
)
from imagegate.providers.breaker import CircuitBreaker, Clock, Ticket

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff: float = 0.5  # base of the full-jitter exponential backoff
    backoff_max: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.upstream_max_attempts, settings.upstream_backoff_seconds,
                   settings.upstream_backoff_max_seconds)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """The rolling window's summary (the last `window` calls)."""

    requests: int
    errors: int
    error_rate: float
    p50_seconds: float | None
    last_error: str | None


class ChannelSlot:
    """`Channel.slot()`'s `async with`: a plain object rather than an
    `@asynccontextmanager` generator, whose suspended frame stayed allocated (~0.5 KB) for
    as long as the call is held upstream, thousands of calls at once."""

    __slots__ = ("_channel",)

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    async def __aenter__(self) -> None:
        await self._channel.take_slot()

    async def __aexit__(self, *_exc: object) -> None:
        self._channel.give_slot()


class Channel:
    """One configured upstream at run time."""

    def __init__(self, config: ChannelConfig, provider: Provider, breaker: CircuitBreaker, *,
                 window: int = 100) -> None:
        self.config = config
        self.provider = provider
        self.breaker = breaker
        self.in_flight = 0
        self.not_before = 0.0  # clock time before which a 429's Retry-After keeps calls off
        self.last_error: str | None = None
        self._recent: deque[tuple[Outcome, float]] = deque(maxlen=window)
        self._semaphore = asyncio.Semaphore(config.concurrency) if config.concurrency else None
        self._closed = False

    @property
    def name(self) -> str:
        return self.config.name

    def full(self) -> bool:
        return self._semaphore is not None and self._semaphore.locked()

    def slot(self) -> ChannelSlot:
        """`async with channel.slot():` holds one of the channel's concurrency slots for the
        length of a call."""
        return ChannelSlot(self)

    async def take_slot(self) -> None:
        if self._semaphore is not None:
            await self._semaphore.acquire()
        self.in_flight += 1

    def give_slot(self) -> None:
        self.in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()

    def record(self, outcome: Outcome, seconds: float, error: str | None = None) -> None:
        self._recent.append((outcome, seconds))
        if error is not None:
            secret = self.config.secret()
            # Adapters never put the key in a message; this makes sure it cannot leak here.
            self.last_error = error.replace(secret, "***") if secret else error

    def stats(self) -> ChannelStats:
        recent = list(self._recent)
        errors = sum(1 for outcome, _ in recent if outcome not in ("success", "rejected"))
        latencies = sorted(seconds for _, seconds in recent)
        p50 = latencies[(len(latencies) - 1) // 2] if latencies else None
        rate = errors / len(recent) if recent else 0.0
        return ChannelStats(len(recent), errors, rate, p50, self.last_error)

    def gauges(self) -> ChannelGauges:
        return self.name, int(self.breaker.state), self.in_flight

    async def aclose(self) -> None:
        # Idempotent: several RoutedProviders share a channel and each closes its own.
        if not self._closed:
            self._closed = True
            await self.provider.aclose()


def describe_route(configs: Sequence[ChannelConfig]) -> str:
    """A model's channels in the order of preference, official backups marked."""
    ordered = sorted(configs, key=lambda c: (c.official, -c.priority))
    return ", ".join(f"{c.name} (official)" if c.official else c.name for c in ordered)


def outcome_of(exc: BaseException | None) -> Outcome:
    if exc is None:
        return "success"
    if isinstance(exc, ProviderRejectedError) or (
        isinstance(exc, ImagegateError) and not isinstance(exc, ProviderError)
    ):
        return "rejected"
    if isinstance(exc, ProviderError):
        if exc.retry_after is not None or exc.code == "upstream_rate_limited":
            return "rate_limited"
        if isinstance(exc.code, str) and "timeout" in exc.code:
            return "timeout"
    return "error"


class RoutedProvider(Provider):
    """One model served over its channels (see the module docstring for the choice)."""

    def __init__(self, model: str, channels: Sequence[Channel], *,
                 policy: RetryPolicy | None = None, metrics: Metrics | None = None,
                 rng: random.Random | None = None, sleep: Sleep = asyncio.sleep,
                 clock: Clock = time.monotonic) -> None:
        if not channels:
            raise ValueError(f"model {model!r}: a route needs at least one channel")
        self.model = model
        self.name = f"route:{model}"
        self.channels = list(channels)
        self.policy = policy or RetryPolicy()
        self.resumable = any(c.provider.resumable for c in self.channels)
        self.remote = any(c.provider.remote for c in self.channels)
        self.variations = any(c.provider.variations for c in self.channels)
        self._by_name = {c.name: c for c in self.channels}
        self._only_official = all(c.config.official for c in self.channels)
        self._metrics = metrics
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock

    def describe(self) -> str:
        return describe_route([c.config for c in self.channels])

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        """The result names the channel that produced it (`ProviderResult.channel`)."""
        operation = job.request.operation
        if not self.offers(operation):
            raise refuse_variation(*((c.name, c.config.adapter) for c in self.channels))
        # A list, not a set: it lives as long as the call is held upstream, and an empty
        # set is ~0.2 KB; it holds a name per attempt (a few).
        tried: list[str] = []
        last: ProviderError | None = None
        fresh = job
        if job.upstream_channel is not None:
            channel = self._by_name.get(job.upstream_channel)
            if channel is None:
                # The upstream may still finish (and charge for) that task; submitting again
                # elsewhere could pay twice, so the task fails instead.
                raise ProviderError(
                    f"The task's upstream channel {job.upstream_channel!r} no longer serves "
                    f"{self.model!r}; it was not resubmitted", retryable=False,
                    code="upstream_channel_gone")
            fresh = replace(job, upstream_channel=None, upstream_task_id=None)
            tried.append(channel.name)
            # Resume even through an open breaker: the task already lives upstream.
            resume = channel.breaker.acquire() or Ticket.NORMAL
            try:
                return await self._call(channel, job, progress, partial, resume)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc  # e.g. the upstream task failed or vanished: submit afresh
        attempts = len(tried)
        skips = 0
        while attempts < self.policy.max_attempts:
            picked = self._pick(tried, job.request.official_fallback, operation)
            if picked is None:
                break
            channel, cooling = picked
            delay = max(self._backoff(attempts) if attempts else 0.0, cooling)
            if delay > 0:
                await self._sleep(delay)
            ticket = channel.breaker.acquire()
            if ticket is None:  # another task took the half-open trial while we waited
                skips += 1
                if skips > len(self.channels) * self.policy.max_attempts:
                    break
                continue
            attempts += 1
            tried.append(channel.name)
            try:
                return await self._call(channel, fresh, progress, partial, ticket)
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                last = exc
        if last is not None:
            raise last
        wait = min((c.breaker.retry_in() for c in self.channels), default=0.0)
        raise ServiceUnavailableError(
            f"no healthy upstream channel for model {self.model!r}",
            code="no_healthy_channel", headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def _pick(self, tried: list[str], allow_official: bool,
              operation: str) -> tuple[Channel, float] | None:
        now = self._clock()
        best: tuple[int, ...] | None = None
        group: list[Channel] = []
        for c in self.channels:
            if not c.provider.offers(operation):
                continue
            backup = c.config.official and not self._only_official
            if backup and not allow_official:
                continue
            cooling = c.not_before - now
            if not c.breaker.available() or cooling > self.policy.backoff_max:
                continue
            rank = (c.name in tried, backup, cooling > 0, c.config.weight == 0,
                    -c.config.priority, c.full())
            ranked = tuple(int(v) for v in rank)
            if best is None or ranked < best:
                best, group = ranked, [c]
            elif ranked == best:
                group.append(c)
        if not group:
            return None
        weights = [c.config.weight for c in group]
        chosen = (self._rng.choices(group, weights)[0] if sum(weights) > 0
                  else self._rng.choice(group))
        return chosen, max(0.0, chosen.not_before - now)

    def _backoff(self, attempts: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^(attempts-1)))."""
        ceiling = min(self.policy.backoff_max, self.policy.backoff * 2 ** (attempts - 1))
        return self._rng.uniform(0.0, ceiling)

    async def _call(self, channel: Channel, job: ProviderJob, progress: ProgressCallback,
                    partial: PartialCallback, ticket: Ticket) -> ProviderResult:
        started = self._clock()
        try:
            async with channel.slot():
                started = self._clock()  # latency of the call, not of the queue before it
                result = await channel.provider.generate(job, progress, partial)
        except ProviderError as exc:
            if exc.retryable:
                channel.breaker.failure(ticket)
                if exc.retry_after is not None:
                    channel.not_before = max(channel.not_before,
                                             self._clock() + exc.retry_after)
            else:  # the request's fault (or a deliberate stop): the channel is not to blame
                channel.breaker.release(ticket)
            self._report(channel, exc, started)
            raise
        except ImagegateError as exc:
            channel.breaker.release(ticket)
            self._report(channel, exc, started)
            raise
        except Exception as exc:  # an adapter bug: count it, never retry it blindly
            channel.breaker.failure(ticket)
            self._report(channel, exc, started)
            raise
        except BaseException:  # cancelled: no verdict
            channel.breaker.release(ticket)
            raise
        channel.breaker.success(ticket)
        self._report(channel, None, started)
        return replace(result, channel=channel.name)

    def _report(self, channel: Channel, exc: Exception | None, started: float) -> None:
        seconds = max(0.0, self._clock() - started)
        outcome = outcome_of(exc)
        message = None
        if outcome not in ("success", "rejected"):
            message = exc.message if isinstance(exc, ImagegateError) else type(exc).__name__
        channel.record(outcome, seconds, message)
        if self._metrics is not None:
            self._metrics.observe_call(channel.name, self.model, outcome, seconds)

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.aclose()
