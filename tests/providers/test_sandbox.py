"""The sandbox provider: exact sizes and formats, determinism, latency, progress, failures."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
import pyvips

from imagegate.domain.request import ImageRequest, OutputFormat
from imagegate.errors import ProviderError
from imagegate.providers.base import ProviderJob, ProviderResult
from imagegate.providers.sandbox import SandboxProvider, render_image, render_partial

MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
}


def make_request(
    *,
    prompt: str = "a lighthouse on a cliff at sunset",
    width: int = 1024,
    height: int = 1024,
    n: int = 1,
    output_format: OutputFormat = "png",
    output_compression: int | None = None,
    background: Any = "auto",
) -> ImageRequest:
    return ImageRequest(
        operation="generate",
        model="gpt-image-2",
        prompt=prompt,
        n=n,
        width=width,
        height=height,
        tier="1k",
        size_label=f"{width}x{height}",
        output_format=output_format,
        output_compression=output_compression,
        background=background,
        quality="auto",
        moderation="auto",
        style=None,
        user=None,
        response_format="url",
    )


def has_magic(data: bytes, fmt: str) -> bool:
    if fmt == "webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    return data.startswith(MAGIC[fmt])


def decode(data: bytes) -> Any:
    return pyvips.Image.new_from_buffer(data, "")


async def _noop_progress(_: int) -> None:
    return None


def run_generate(
    provider: SandboxProvider,
    request: ImageRequest,
    *,
    task_id: str = "task_1",
    attempt: int = 1,
) -> ProviderResult:
    job = ProviderJob(task_id=task_id, request=request, attempt=attempt)
    return asyncio.run(provider.generate(job, _noop_progress))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize(("width", "height"), [(1024, 1024), (1536, 512), (864, 1536)])
def test_exact_size_and_format(fmt: OutputFormat, width: int, height: int) -> None:
    request = make_request(width=width, height=height, output_format=fmt)
    result = run_generate(SandboxProvider(), request)
    assert len(result.images) == 1
    image = result.images[0]
    assert has_magic(image.data, fmt)
    assert image.content_type == request.content_type
    assert (image.width, image.height) == (width, height)
    decoded = decode(image.data)
    assert (decoded.width, decoded.height) == (width, height)
    assert decoded.bands == 3


def test_4k_size() -> None:
    data = render_image(make_request(width=3840, height=2160), 0)
    decoded = decode(data)
    assert (decoded.width, decoded.height) == (3840, 2160)


def test_same_request_same_bytes_regardless_of_task() -> None:
    provider = SandboxProvider()
    a = run_generate(provider, make_request(), task_id="task_a")
    b = run_generate(provider, make_request(), task_id="task_b", attempt=3)
    assert a.images[0].data == b.images[0].data
    assert render_image(make_request(), 0) == a.images[0].data


def test_different_prompt_different_bytes() -> None:
    a = render_image(make_request(prompt="a red fox"), 0)
    b = render_image(make_request(prompt="a blue whale"), 0)
    assert a != b


def test_n_images_are_distinct() -> None:
    result = run_generate(SandboxProvider(), make_request(n=3, output_format="jpeg"))
    assert len(result.images) == 3
    assert len({image.data for image in result.images}) == 3
    for image in result.images:
        assert has_magic(image.data, "jpeg")


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_has_real_alpha(fmt: OutputFormat) -> None:
    data = render_image(make_request(output_format=fmt, background="transparent"), 0)
    decoded = decode(data)
    assert decoded.bands == 4
    alpha = decoded[3]
    assert alpha.min() == 0  # outside the card
    assert alpha.max() == 255  # the card and its text
    assert alpha.getpoint(2, 2) == [0.0]
    assert alpha.getpoint(512, 512) == [255.0]


@pytest.mark.parametrize("background", ["auto", "opaque"])
def test_opaque_background_has_no_alpha(background: str) -> None:
    data = render_image(make_request(background=background), 0)
    assert decode(data).bands == 3


def test_lower_jpeg_compression_gives_smaller_files() -> None:
    low = render_image(make_request(output_format="jpeg", output_compression=20), 0)
    high = render_image(make_request(output_format="jpeg", output_compression=95), 0)
    assert len(low) < len(high) * 0.7


def test_long_and_markup_prompts_render() -> None:
    for prompt in ("<b>bold</b> & <i>not markup", "x" * 5000, "word " * 2000, "\x00\x07 ctrl"):
        data = render_image(make_request(prompt=prompt, width=1536, height=512), 0)
        decoded = decode(data)
        assert (decoded.width, decoded.height) == (1536, 512)


def test_failure_rate_one_always_fails() -> None:
    provider = SandboxProvider(failure_rate=1.0)
    for attempt in range(1, 6):
        with pytest.raises(ProviderError, match="injected failure"):
            run_generate(provider, make_request(), task_id=f"t{attempt}", attempt=attempt)


def test_failure_rate_zero_never_fails() -> None:
    provider = SandboxProvider(failure_rate=0.0)
    for attempt in range(1, 21):
        run_generate(provider, make_request(width=512, height=512), attempt=attempt)


def test_failure_is_reproducible_per_task_and_attempt() -> None:
    provider = SandboxProvider(failure_rate=0.5)

    def outcome(task_id: str, attempt: int) -> bool:
        try:
            run_generate(
                provider, make_request(width=512, height=512), task_id=task_id, attempt=attempt
            )
        except ProviderError:
            return False
        return True

    first = [outcome(f"task_{i}", 1) for i in range(12)]
    assert first == [outcome(f"task_{i}", 1) for i in range(12)]
    assert True in first and False in first


def test_progress_increases_strictly_inside_0_100() -> None:
    seen: list[int] = []

    async def record(pct: int) -> None:
        seen.append(pct)

    async def main() -> None:
        provider = SandboxProvider(latency=0.05, progress_steps=4)
        job = ProviderJob(task_id="t", request=make_request())
        await provider.generate(job, record)

    asyncio.run(main())
    assert len(seen) == 4
    assert all(0 < p < 100 for p in seen)
    assert seen == sorted(set(seen))


def test_event_loop_stays_responsive_during_generate() -> None:
    # A 4K WebP takes ~0.3 s to encode here: on the loop it would stall the ticker that long.
    async def main() -> tuple[int, float, float]:
        stamps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            while not done.is_set():
                stamps.append(time.perf_counter())
                await asyncio.sleep(0.01)

        provider = SandboxProvider(latency=0.2)
        request = make_request(width=3840, height=2160, output_format="webp")
        job = ProviderJob(task_id="t", request=request)
        tick_task = asyncio.create_task(ticker())
        start = time.perf_counter()
        await provider.generate(job, _noop_progress)
        elapsed = time.perf_counter() - start
        done.set()
        await tick_task
        worst_gap = max(b - a for a, b in itertools.pairwise(stamps))
        return len(stamps), elapsed, worst_gap

    ticks, elapsed, worst_gap = asyncio.run(main())
    assert elapsed >= 0.2
    assert ticks >= 8
    assert worst_gap < 0.15


def test_usage_is_a_deterministic_openai_shaped_estimate() -> None:
    result = run_generate(SandboxProvider(), make_request(prompt="abcdefghi", n=2))
    usage = result.usage
    assert usage["input_tokens_details"] == {"text_tokens": 3, "image_tokens": 0}
    assert usage["input_tokens"] == 3
    assert usage["output_tokens"] == 512  # ceil(1024*1024/1024) * 2 / 4
    assert usage["total_tokens"] == 515


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_render_partial_same_size_and_format(fmt: OutputFormat) -> None:
    request = make_request(width=1536, height=864, output_format=fmt)
    final = render_image(request, 0)
    previews = [render_partial(request, 0, step, 3) for step in range(3)]
    for data in previews:
        assert has_magic(data, fmt)
        decoded = decode(data)
        assert (decoded.width, decoded.height) == (1536, 864)
    assert len(set(previews)) == 3
    assert final not in previews
    assert render_partial(request, 0, 3, 3) == final


def test_render_partial_transparent_keeps_alpha() -> None:
    request = make_request(background="transparent")
    assert decode(render_partial(request, 0, 0, 2)).bands == 4


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        SandboxProvider(failure_rate=1.5)
    with pytest.raises(ValueError):
        SandboxProvider(latency=-1)
    with pytest.raises(ValueError):
        SandboxProvider(progress_steps=0)
