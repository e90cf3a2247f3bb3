"""Which provider serves which model. Later, routing (priorities, fallback, breakers) wraps
providers here; callers only ever ask `for_model`."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.errors import ServiceUnavailableError
from imagegate.providers.base import Provider


@dataclass
class ProviderRegistry:
    by_model: dict[str, Provider]

    def for_model(self, model: str) -> Provider:
        provider = self.by_model.get(model)
        if provider is None:
            raise ServiceUnavailableError(f"no provider serves the model {model!r}")
        return provider

    def describe(self) -> dict[str, str]:
        return {model: p.name for model, p in self.by_model.items()}

    async def aclose(self) -> None:
        for provider in {id(p): p for p in self.by_model.values()}.values():
            await provider.aclose()
