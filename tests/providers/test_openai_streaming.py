"""Partial images from a streaming OpenAI upstream (FakeOpenAI over real HTTP): the
`openai` and `openai_compatible` adapters pass the upstream's partial images on and take
the completed events as the result; an upstream that refuses to stream is asked again
without it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pyvips

from imagegate.domain.images import PartialImage
from imagegate.providers.base import ProviderJob
from imagegate.providers.openai import OpenAIProvider
from imagegate.providers.openai_compatible import OpenAICompatibleProvider
from imagegate.providers.results import ResultDownloader
from imagegate.testing.upstreams.openai_api import FakeOpenAI
from tests.providers.test_openai_adapters import (
    downloader,
    make_channel,
    make_request,
    no_progress,
)

__all__ = ["downloader"]
pytestmark = pytest.mark.anyio


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


def posts(fake: FakeOpenAI) -> list[dict[str, object]]:
    return [dict(r.json) for r in fake.requests
            if r.method == "POST" and r.path.endswith("/images/generations")]


@pytest.mark.parametrize("adapter", [OpenAIProvider, OpenAICompatibleProvider])
async def test_partial_images_are_relayed(fake: FakeOpenAI, downloader: ResultDownloader,
                                          adapter: type[OpenAIProvider]) -> None:
    seen: list[PartialImage] = []

    async def partial(p: PartialImage) -> None:
        seen.append(p)

    provider = adapter(make_channel(fake, adapter="openai" if adapter is OpenAIProvider
                                    else "openai_compatible"), downloader)
    request = make_request(n=2, partial_images=2, stream=True, width=1536, height=1024,
                           size_label="1536x1024")
    try:
        result = await provider.generate(ProviderJob("t1", request), no_progress, partial)
    finally:
        await provider.aclose()
    [body] = posts(fake)
    assert body["stream"] is True and body["partial_images"] == 2
    assert [(p.image_index, p.partial_index) for p in seen] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for p in seen:
        assert pyvips.Image.new_from_buffer(p.data, "").width == 1536
    assert len(result.images) == 2 and result.images[0].width == 1536
    assert result.usage["output_tokens"]  # the completed event's usage passes through
    assert seen[0].data != result.images[0].data


async def test_no_partials_wanted_no_stream(fake: FakeOpenAI,
                                            downloader: ResultDownloader) -> None:
    provider = OpenAIProvider(make_channel(fake), downloader)
    try:
        await provider.generate(ProviderJob("t1", make_request()), no_progress)
    finally:
        await provider.aclose()
    assert "stream" not in posts(fake)[0]


async def test_a_refused_stream_falls_back(downloader: ResultDownloader) -> None:
    seen: list[PartialImage] = []

    async def partial(p: PartialImage) -> None:
        seen.append(p)

    async with FakeOpenAI(refuse_streaming=True) as fake:
        provider = OpenAIProvider(make_channel(fake), downloader)
        try:
            result = await provider.generate(
                ProviderJob("t1", make_request(partial_images=1, stream=True)), no_progress,
                partial)
        finally:
            await provider.aclose()
        first, second = posts(fake)
    assert first["stream"] is True and "stream" not in second
    assert seen == [] and len(result.images) == 1
