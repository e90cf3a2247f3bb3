"""Prometheus metrics of one process, in a registry of their own.

Nothing is registered in prometheus_client's global default registry: two apps in one
process (tests, an embedded server beside a worker) would otherwise clash on metric names.
Gauges whose truth lives elsewhere (breaker state, in-flight calls, tasks per status) are
read when scraped, from sources the owner of that truth registers here, so they can never
drift from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Literal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

Outcome = Literal["success", "rejected", "error", "timeout", "rate_limited"]
ModerationOutcome = Literal["called", "cached", "error", "timeout"]

ChannelGauges = tuple[str, int, int]
"""(channel name, breaker state 0 closed / 1 half-open / 2 open, calls in flight)"""

ChannelSource = Callable[[], Iterable[ChannelGauges]]
TaskCounts = Callable[[], Awaitable[dict[str, int]]]

# Upstream image calls take from well under a second (a cached sandbox) to many minutes (a
# 4K image on a busy async upstream): the buckets span that whole range.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800)


class _ScrapeTimeGauges(Collector):
    def __init__(self, owner: Metrics) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        breaker = GaugeMetricFamily(
            "imagegate_upstream_breaker_state",
            "Circuit breaker state per channel: 0 closed, 1 half-open, 2 open.",
            labels=["channel"],
        )
        in_flight = GaugeMetricFamily(
            "imagegate_upstream_in_flight", "Upstream calls in progress per channel.",
            labels=["channel"],
        )
        for source in self._owner.channel_sources:
            for name, state, calls in source():
                breaker.add_metric([name], state)
                in_flight.add_metric([name], calls)
        yield breaker
        yield in_flight
        if self._owner.bus_connected is not None:
            yield GaugeMetricFamily(
                "imagegate_event_bus_connected",
                "1 while task events travel between processes (always 1 without Redis); 0 "
                "while Redis is unreachable and tasks go on by polling the database.",
                value=1 if self._owner.bus_connected() else 0,
            )
        if self._owner.task_counts is not None:
            tasks = GaugeMetricFamily("imagegate_tasks", "Tasks per status (at the last scrape).",
                                      labels=["status"])
            for status, count in sorted(self._owner.task_counts.items()):
                tasks.add_metric([status], count)
            yield tasks


class Metrics:
    """The metrics of one app. Routing reports every upstream call into it; `/metrics`
    renders it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.upstream_requests = Counter(
            "imagegate_upstream_requests",
            "Upstream calls per channel, model and outcome "
            "(success, rejected, error, timeout, rate_limited).",
            ["channel", "model", "outcome"],
            registry=self.registry,
        )
        self.upstream_seconds = Histogram(
            "imagegate_upstream_request_seconds",
            "Duration of upstream calls per channel (every outcome).",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.moderation_refusals = Counter(
            "imagegate_moderation_refusals",
            "Requests refused for their content, by source (blocklist, model, upstream) and "
            "category.",
            ["source", "category"],
            registry=self.registry,
        )
        self.moderation_model_checks = Counter(
            "imagegate_moderation_model_checks",
            "Inputs (prompts, images) put to the moderation model, by outcome (called, "
            "cached), and requests whose model check failed (error, timeout).",
            ["outcome"],
            registry=self.registry,
        )
        self.channel_sources: list[ChannelSource] = []
        self.bus_connected: Callable[[], bool] | None = None
        self.task_counts: dict[str, int] | None = None
        self._task_source: TaskCounts | None = None
        self.registry.register(_ScrapeTimeGauges(self))

    def observe_call(self, channel: str, model: str, outcome: Outcome, seconds: float) -> None:
        self.upstream_requests.labels(channel, model, outcome).inc()
        self.upstream_seconds.labels(channel).observe(seconds)

    def refused(self, source: str, category: str) -> None:
        self.moderation_refusals.labels(source, category).inc()

    def model_check(self, outcome: ModerationOutcome) -> None:
        self.moderation_model_checks.labels(outcome).inc()

    def watch_channels(self, source: ChannelSource) -> None:
        """Export breaker state and in-flight calls of the channels `source` lists."""
        self.channel_sources.append(source)

    def watch_event_bus(self, connected: Callable[[], bool]) -> None:
        """Export `imagegate_event_bus_connected` from the bus's own view of its server."""
        self.bus_connected = connected

    def watch_tasks(self, source: TaskCounts) -> None:
        """Export `imagegate_tasks{status}`, read by `refresh()` (e.g. the store's
        `count_by_status`)."""
        self._task_source = source

    async def refresh(self) -> None:
        """Read the asynchronous sources; `/metrics` awaits this before `render()`."""
        if self._task_source is not None:
            self.task_counts = await self._task_source()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
