"""The model check: OpenAI's moderation endpoint (`POST /moderations`, `omni-moderation-latest`)
or any OpenAI-compatible one, on the channel named by `moderation_channel`.

The prompt and each reference image are classified in separate calls, so a refusal can name
the input that caused it (`prompt`, `image_urls[1]`); images are sent as `data:` URLs of a
copy at most 1024 pixels on its long edge (a moderation model needs no more, and a 20 MB
upload would otherwise travel as 27 MB of base64). Verdicts are cached by the input's hash
for `moderation_cache_seconds`, so a client retrying the same prompt costs one call.

HTTP, auth and the translation of upstream failures are `providers/upstream.py`'s
(`UpstreamClient`), exactly as for image adapters.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imagegate.config import ChannelConfig, Settings
from imagegate.moderation.cache import TtlCache
from imagegate.providers.upstream import UpstreamClient, bad_response

MODERATION_PATH = "/moderations"
IMAGE_EDGE = 1024
# Hashing and thumbnailing a large image would hold up the event loop.
_INLINE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Scores:
    """One input's classification: per category, the model's own flag and its score."""

    flags: Mapping[str, bool]
    scores: Mapping[str, float]
    flagged: bool = False


def refused_categories(scores: Scores, thresholds: Mapping[str, float],
                       low: Mapping[str, float] | None = None) -> list[str]:
    """The categories that refuse this input, highest score first.

    Normally a category listed in `thresholds` refuses at that score or above, and any other
    category when the model flags it. With `low` (a relaxed request from a key allowed it)
    only the categories listed in `low`, at those scores, refuse."""
    if low is not None:
        hits = [c for c, limit in low.items() if scores.scores.get(c, 0.0) >= limit]
    else:
        names = set(scores.flags) | set(scores.scores) | set(thresholds)
        hits = [c for c in names
                if (scores.scores.get(c, 0.0) >= thresholds[c] if c in thresholds
                    else scores.flags.get(c) is True)]
        if not hits and scores.flagged and not scores.flags:
            hits = ["flagged"]  # a compatible service that says only "flagged"
    return sorted(hits, key=lambda c: (-scores.scores.get(c, 0.0), c))


def channel_config(settings: Settings) -> ChannelConfig | None:
    """The `moderation_channel`'s configuration: a `[[channels]]` entry, or with only
    `openai_api_key` set, the quick-start channel "openai" (Settings checked the name)."""
    name = settings.moderation_channel
    if name is None:
        return None
    for channel in settings.channels:
        if channel.name == name:
            return channel
    return ChannelConfig.model_validate({
        "name": name, "adapter": "openai", "base_url": settings.openai_base_url,
        "api_key": settings.openai_api_key, "models": [], "official": True})


def _parse(answer: Any, channel: str) -> Scores:
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise bad_response(channel, "a moderation answer without results")
    first: dict[str, Any] = results[0]
    flags, scores = first.get("categories", {}), first.get("category_scores", {})
    if not isinstance(flags, dict) or not isinstance(scores, dict):
        raise bad_response(channel, "moderation categories are not objects")
    return Scores(
        flags={str(k): v is True for k, v in flags.items()},
        scores={str(k): float(v) for k, v in scores.items()
                if isinstance(v, int | float) and not isinstance(v, bool)},
        flagged=first.get("flagged") is True,
    )


def _thumbnail(data: bytes) -> bytes:
    import pyvips

    image = pyvips.Image.thumbnail_buffer(data, IMAGE_EDGE, height=IMAGE_EDGE, size="down")
    if image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    saved: bytes = image.jpegsave_buffer(Q=85)
    return saved


async def _sha256(data: bytes) -> str:
    if len(data) <= _INLINE_BYTES:
        return hashlib.sha256(data).hexdigest()
    return (await asyncio.to_thread(hashlib.sha256, data)).hexdigest()


class ModerationModel:
    """Classifies text and images on one channel; every failure is a `ProviderError`."""

    def __init__(self, channel: ChannelConfig, *, model: str, cache_seconds: float) -> None:
        self.channel = channel
        self.model = model
        self._client = UpstreamClient(channel, max_response_bytes=1024 * 1024)
        self._cache: TtlCache[str, Scores] = TtlCache(cache_seconds)
        self.calls = 0  # upstream calls made (cache misses), for metrics and tests

    async def aclose(self) -> None:
        await self._client.aclose()

    async def text(self, prompt: str) -> tuple[Scores, bool]:
        """(scores, came from the cache) for `prompt`."""
        digest = hashlib.sha256(f"{self.model}\0text\0{prompt}".encode()).hexdigest()

        async def payload() -> str:
            return prompt

        return await self._classify(digest, payload)

    async def image(self, data: bytes) -> tuple[Scores, bool]:
        """(scores, came from the cache) for one image's bytes."""
        digest = f"{self.model}\0image\0{await _sha256(data)}"

        async def payload() -> list[dict[str, Any]]:
            small = await asyncio.to_thread(_thumbnail, data)
            url = "data:image/jpeg;base64," + base64.b64encode(small).decode()
            return [{"type": "image_url", "image_url": {"url": url}}]

        return await self._classify(digest, payload)

    async def _classify(self, digest: str, payload: Callable[[], Awaitable[Any]]
                        ) -> tuple[Scores, bool]:
        cached = self._cache.get(digest)
        if cached is not None:
            return cached, True
        value = await payload()
        self.calls += 1
        answer = await self._client.post_json(MODERATION_PATH,
                                              {"model": self.model, "input": value})
        scores = _parse(answer, self.channel.name)
        self._cache.put(digest, scores)
        return scores, False
