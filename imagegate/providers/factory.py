"""Settings -> the providers of one process (`ProviderRegistry`).

Three shapes, decided once at start-up (`plan_routes`, pure, also used by the banner and by
`imagegate channels` without building anything):
- no channels, no `openai_api_key`: the sandbox serves every catalog model;
- no channels, `openai_api_key` set: one official channel "openai" serves the catalog's
  OpenAI models (quick start); the others are not served;
- channels configured: each model a channel names gets a `RoutedProvider` over its channels;
  models no channel names are not served.

Adapters are picked by name from a "module:Class" table (uvicorn's habit), imported only
when a channel uses them.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from imagegate import plugins
from imagegate.config import ChannelConfig, Settings
from imagegate.domain.catalog import Catalog
from imagegate.metrics import Metrics
from imagegate.net.fetch import Fetcher, FetchLimits
from imagegate.net.guard import AddressPolicy
from imagegate.providers.base import Provider
from imagegate.providers.breaker import CircuitBreaker, Clock
from imagegate.providers.registry import ProviderRegistry
from imagegate.providers.results import ResultDownloader
from imagegate.providers.routing import (
    Channel,
    RetryPolicy,
    RoutedProvider,
    Sleep,
    describe_route,
)
from imagegate.providers.sandbox import SandboxProvider

ADAPTERS: Mapping[str, str] = MappingProxyType({
    "openai": "imagegate.providers.openai:OpenAIProvider",
    "openai_compatible": "imagegate.providers.openai_compatible:OpenAICompatibleProvider",
    "dimilinks": "imagegate.providers.dimilinks:DimilinksProvider",
    "apimart": "imagegate.providers.apimart:ApimartProvider",
})
"""Adapter name -> "module:Class"; every class takes `(channel, downloader)`."""

AdapterFactory = Callable[[ChannelConfig, ResultDownloader], Provider]

QUICKSTART_CHANNEL = "openai"
_OPENAI_PREFIXES = ("gpt-image-", "dall-e-")


@dataclass(frozen=True)
class RoutePlan:
    mode: Literal["sandbox", "openai", "channels"]
    channels: list[ChannelConfig]
    by_model: dict[str, list[ChannelConfig]]  # empty in sandbox mode
    notes: list[str] = field(default_factory=list)

    def describe(self, catalog: Catalog) -> dict[str, str]:
        """model -> what will serve it, as `ProviderRegistry.describe` says it, without
        building any provider (the start-up banner)."""
        if self.mode == "sandbox":
            return {name: "sandbox" for name in catalog.names()}
        return {model: describe_route(chs) for model, chs in self.by_model.items()}


def openai_models(catalog: Catalog) -> list[str]:
    """The catalog models OpenAI itself serves (its own gpt-image-2 included)."""
    return [m for m in catalog.names() if m.startswith(_OPENAI_PREFIXES)]


def plan_routes(settings: Settings, catalog: Catalog) -> RoutePlan:
    """Which channels serve which model. Raises ValueError on a configuration that cannot
    work (a model not in the catalog, a duplicate channel name, an unreadable key file)."""
    # A channel with no models (the moderation channel's) does not make this a relay.
    relaying = any(ch.models for ch in settings.channels)
    if not relaying and settings.openai_api_key is None:
        return RoutePlan("sandbox", [], {})
    if not relaying:
        assert settings.openai_api_key is not None
        models = openai_models(catalog)
        quick = ChannelConfig.model_validate({
            "name": QUICKSTART_CHANNEL, "adapter": "openai", "base_url": settings.openai_base_url,
            "api_key": settings.openai_api_key, "models": models or ["gpt-image-1"],
            "official": True})
        host = urlsplit(quick.base_url).hostname or quick.base_url
        note = (f"OpenAI quick start: OPENAI_API_KEY set, models {', '.join(models)} relay to "
                f"{host}; other models are not served (configure [[channels]] for them)")
        return RoutePlan("openai", [quick], {m: [quick] for m in models}, [note])
    by_model: dict[str, list[ChannelConfig]] = {}
    seen: set[str] = set()
    notes: list[str] = []
    routed: list[ChannelConfig] = []
    for ch in settings.channels:
        if ch.name in seen:
            raise ValueError(f"two channels are named {ch.name!r}; channel names must be unique")
        seen.add(ch.name)
        _check_secret(ch)
        if not ch.models:  # the moderation channel (Settings allows no other): not routed
            continue
        routed.append(ch)
        for model in ch.models:
            if catalog.get(model) is None:
                raise ValueError(
                    f"channel {ch.name!r} serves model {model!r}, which is not in the model "
                    f"catalog (known: {', '.join(catalog.names())}); add it to catalog_file "
                    "or fix the name")
            by_model.setdefault(model, []).append(ch)
        if ch.adapter == "sandbox":
            notes.append(f"channel {ch.name!r} uses the sandbox adapter: PLACEHOLDER images")
        elif ch.secret() is None:
            notes.append(f"channel {ch.name!r} has no API key (api_key, api_key_env or "
                         "api_key_file): the upstream will likely refuse it")
    unserved = [m for m in catalog.names() if m not in by_model]
    if unserved:
        notes.append(f"not served (no channel names them): {', '.join(unserved)}")
    return RoutePlan("channels", routed, by_model, notes)


def _check_secret(ch: ChannelConfig) -> None:
    try:
        ch.secret()
    except OSError as exc:  # the message names the file, never its content
        raise ValueError(
            f"channel {ch.name!r}: cannot read api_key_file {ch.api_key_file}: "
            f"{exc.strerror or exc}") from None


def build_providers(
    settings: Settings,
    catalog: Catalog,
    fetcher: Fetcher | None = None,
    metrics: Metrics | None = None,
    *,
    adapters: Mapping[str, str | AdapterFactory] | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> ProviderRegistry:
    """The registry for `settings`. `fetcher` downloads results from hosts other than the
    channel's own (SSRF-guarded); without one the registry makes and owns one. `adapters`
    overrides entries of `ADAPTERS` (tests plug scripted fakes in here)."""
    plan = plan_routes(settings, catalog)
    if plan.mode == "sandbox":
        sandbox = sandbox_provider(settings)
        return ProviderRegistry({name: sandbox for name in catalog.names()})
    table: dict[str, str | AdapterFactory] = {**ADAPTERS, **(adapters or {})}
    closers: list[Callable[[], Awaitable[None]]] = []
    downloader: ResultDownloader | None = None

    def make(ch: ChannelConfig) -> Provider:
        nonlocal fetcher, downloader
        if ch.adapter == "sandbox":
            return sandbox_provider(settings)
        if downloader is None:
            if fetcher is None:
                fetcher = result_fetcher(settings)
                closers.append(fetcher.aclose)
            downloader = ResultDownloader(
                fetcher, settings.upstream_result_max_bytes,
                full_check=settings.upstream_result_check == "full")
        entry = table.get(ch.adapter)
        if entry is None:
            raise ValueError(f"channel {ch.name!r}: unknown adapter {ch.adapter!r}")
        if not isinstance(entry, str):
            return entry(ch, downloader)
        cls: Callable[..., Provider] = plugins.load(entry)
        if "catalog" in inspect.signature(cls).parameters:
            # The OpenAI adapters map sizes by the model rules of the catalog in use.
            return cls(ch, downloader, catalog=catalog)
        return cls(ch, downloader)

    rng = rng or random.Random()
    policy = RetryPolicy.from_settings(settings)
    channels: dict[str, Channel] = {}
    # Adapters open their connections lazily, so a failure half-way leaves nothing to close.
    for ch in plan.channels:
        breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_seconds,
                                 clock)
        channels[ch.name] = Channel(ch, make(ch), breaker)
    by_model: dict[str, Provider] = {
        model: RoutedProvider(model, [channels[c.name] for c in configs], policy=policy,
                              metrics=metrics, rng=rng, sleep=sleep, clock=clock)
        for model, configs in plan.by_model.items()
    }
    if metrics is not None:
        ordered = list(channels.values())
        metrics.watch_channels(lambda: [c.gauges() for c in ordered])
    return ProviderRegistry(by_model, list(channels.values()), plan.notes, closers=closers)


def sandbox_provider(settings: Settings) -> SandboxProvider:
    return SandboxProvider(latency=settings.sandbox_latency,
                           progress_steps=settings.sandbox_progress_steps,
                           failure_rate=settings.sandbox_failure_rate)


def result_fetcher(settings: Settings) -> Fetcher:
    """The SSRF-guarded fetcher for results an upstream hands back as foreign URLs."""
    return Fetcher(
        AddressPolicy.from_config(settings.fetch_allow_hosts, settings.fetch_allow_networks),
        FetchLimits(max_bytes=settings.upstream_result_max_bytes,
                    connect_timeout=settings.fetch_connect_timeout,
                    total_timeout=settings.fetch_timeout,
                    max_redirects=settings.fetch_max_redirects),
    )
