"""Which provider serves which model. Routing (priorities, fallback, breakers) lives in
`routing.RoutedProvider`, one per model; callers only ever ask `for_model`. Built by
`providers.factory.build_providers`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from imagegate.errors import ServiceUnavailableError
from imagegate.providers.base import Provider
from imagegate.providers.routing import Channel


class ProviderRegistry:
    def __init__(self, by_model: dict[str, Provider], channels: Sequence[Channel] = (),
                 notes: Sequence[str] = (), *,
                 closers: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
        self.by_model = by_model
        self._channels = list(channels)
        # Lines for the start-up banner (e.g. "OpenAI quick start: ...").
        self.notes = list(notes)
        self._closers = list(closers)  # what the factory opened for the providers (a fetcher)

    def serves(self, model: str) -> bool:
        return model in self.by_model

    def for_model(self, model: str) -> Provider:
        provider = self.by_model.get(model)
        if provider is None:
            raise ServiceUnavailableError(
                f"no provider serves the model {model!r}; configure a channel for it",
                code="model_not_served")
        return provider

    def describe(self) -> dict[str, str]:
        """model -> what serves it: `sandbox`, or the channel names of its route in the order
        of preference (official backups marked)."""
        return {model: provider.describe() for model, provider in self.by_model.items()}

    def channels(self) -> list[Channel]:
        """Every configured channel, once each, in config order (empty: sandbox only)."""
        return list(self._channels)

    async def aclose(self) -> None:
        for provider in {id(p): p for p in self.by_model.values()}.values():
            await provider.aclose()
        for channel in self._channels:  # idempotent: also those no model routes to
            await channel.aclose()
        for close in self._closers:
            await close()
