"""Scripted fake providers and helpers for the routing, factory and metrics tests."""

from __future__ import annotations

import asyncio
from typing import Any

from imagegate.config import ChannelConfig
from imagegate.domain.images import GeneratedImage
from imagegate.domain.request import ImageRequest
from imagegate.providers.base import (
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
)
from imagegate.providers.breaker import CircuitBreaker
from imagegate.providers.routing import Channel

MODEL = "gpt-image-2"


class Clock:
    """A clock tests move by hand (and that the fake sleep advances)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Sleeps:
    """An instant `sleep` that records each wait and moves the clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.t += seconds


class Scripted(Provider):
    """Answers each call with the next step of its script (an exception to raise, or None
    for a one-image success); an empty script succeeds. `gate`, when set, holds every call
    until it is set."""

    remote = True

    def __init__(self, name: str, script: list[BaseException | None] | None = None, *,
                 gate: asyncio.Event | None = None, resumable: bool = False,
                 variations: bool = False) -> None:
        self.name = name
        self.variations = variations
        self.script = list(script or [])
        self.gate = gate
        self.resumable = resumable
        self.calls: list[ProviderJob] = []
        self.active = 0
        self.peak = 0
        self.closed = 0
        self.entered = asyncio.Event()  # set once a call is under way

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        self.calls.append(job)
        self.active += 1
        self.peak = max(self.peak, self.active)
        self.entered.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            step = self.script.pop(0) if self.script else None
            if step is not None:
                raise step
            return ProviderResult([GeneratedImage(b"img", "image/png", 1, 1)],
                                  {"by": self.name})
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        self.closed += 1


def channel_config(name: str, **fields: Any) -> ChannelConfig:
    data: dict[str, Any] = {"name": name, "adapter": "openai_compatible",
                            "base_url": "http://127.0.0.1:9/v1", "models": [MODEL]}
    data.update(fields)
    return ChannelConfig.model_validate(data)


def make_channel(provider: Scripted, clock: Clock, *, failures: int = 3,
                 cooldown: float = 30.0, **fields: Any) -> Channel:
    return Channel(channel_config(provider.name, **fields), provider,
                   CircuitBreaker(failures, cooldown, clock))


def make_request(official_fallback: bool = False) -> ImageRequest:
    return ImageRequest(
        operation="generate", model=MODEL, prompt="a lighthouse", n=1, width=1024,
        height=1024, tier="1k", size_label="1024x1024", output_format="png",
        output_compression=None, background="auto", quality="auto", moderation="auto",
        style=None, user=None, response_format="url", official_fallback=official_fallback,
    )


def make_job(task_id: str = "task-1", **kwargs: Any) -> ProviderJob:
    official_fallback = bool(kwargs.pop("official_fallback", False))
    return ProviderJob(task_id, make_request(official_fallback), **kwargs)


async def no_progress(_pct: int) -> None:
    """Progress callback of tests that do not look at progress."""


async def channel_of(router: Provider, job: ProviderJob, progress: ProgressCallback) -> str | None:
    """The channel a routed call was served by (`ProviderResult.channel`)."""
    return (await router.generate(job, progress)).channel
