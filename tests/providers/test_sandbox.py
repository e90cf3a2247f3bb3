"""The sandbox provider: exact sizes and formats, determinism, latency, progress, failures,
and input images (references, mask) made visible in the output."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from typing import Any

import pytest
import pyvips

from imagegate.domain.images import ImageFormat, ReferenceImage
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderError
from imagegate.providers.base import ProviderJob, ProviderResult
from imagegate.providers.sandbox import (
    SandboxProvider,
    render_image,
    render_partial,
    revised_prompt,
)

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
    output_format: ImageFormat = "png",
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
    references: tuple[ReferenceImage, ...] = (),
    mask: ReferenceImage | None = None,
) -> ProviderResult:
    job = ProviderJob(
        task_id=task_id, request=request, attempt=attempt, references=references, mask=mask
    )
    return asyncio.run(provider.generate(job, _noop_progress))


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize(("width", "height"), [(1024, 1024), (1536, 512), (864, 1536)])
def test_exact_size_and_format(fmt: ImageFormat, width: int, height: int) -> None:
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
def test_transparent_background_has_real_alpha(fmt: ImageFormat) -> None:
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


@pytest.mark.parametrize(("style", "expected"), [
    (None, "a fox, in a vivid style: hyper-real and dramatic"),  # dall-e-3's default style
    ("natural", "a fox, in a natural style: natural, less hyper-real"),
])
def test_revised_prompt_for_a_model_that_revises(style: str | None, expected: str) -> None:
    """003: `revised_prompt` is for dall-e-3 only; the sandbox's is deterministic."""
    request = dataclasses.replace(make_request(prompt=" a fox ", width=512, height=512, n=2),
                                  model="dall-e-3", style=style, revises_prompt=True)
    result = run_generate(SandboxProvider(), request)
    assert [i.revised_prompt for i in result.images] == [expected, expected]
    assert revised_prompt(request) == expected
    plain = run_generate(SandboxProvider(), make_request(width=512, height=512))
    assert [i.revised_prompt for i in plain.images] == [None]


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
def test_render_partial_same_size_and_format(fmt: ImageFormat) -> None:
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


# --- input images: references and mask ---------------------------------------------------

RED = (255, 0, 0)
BLUE = (0, 0, 255)
MAGENTA_SHIFT = 40  # (R + B) / 2 - G must grow at least this much under the mask's tint


def solid_ref(
    colour: tuple[int, ...], *, width: int = 96, height: int = 64, fmt: str = "png"
) -> ReferenceImage:
    """A one-colour reference: 1 value = grey, 2 = grey+alpha, 3 = RGB, 4 = RGBA."""
    img = (pyvips.Image.black(width, height, bands=len(colour)) + list(colour)).cast("uchar")
    img = img.copy(interpretation="b-w" if len(colour) <= 2 else "srgb")
    data = bytes(img.write_to_buffer(f".{fmt}"))
    return ReferenceImage(data=data, content_type=f"image/{fmt}", width=width, height=height)


def rect_mask(
    width: int, height: int, rect: tuple[int, int, int, int], *, alpha: bool = True
) -> ReferenceImage:
    """A mask whose edit area is `rect` (x, y, w, h): transparent there, or black if no alpha."""
    if alpha:
        img = pyvips.Image.black(width, height).new_from_image([0, 0, 0, 255])
        img = img.copy(interpretation="srgb").draw_rect([0, 0, 0, 0], *rect, fill=True)
    else:
        img = pyvips.Image.black(width, height).new_from_image(255).copy(interpretation="b-w")
        img = img.draw_rect([0], *rect, fill=True)
    return ReferenceImage(bytes(img.pngsave_buffer()), "image/png", width, height)


def colour_hits(img: Any, colour: tuple[int, int, int], tol: int = 8) -> Any:
    """A 1-band 0/1 image: where `img` is within `tol` of `colour` in every band."""
    near = ((img.extract_band(0, n=3) - list(colour)).abs() <= tol).bandand()
    return near / 255


def count_colour(data: bytes, colour: tuple[int, int, int], tol: int = 8) -> int:
    img = decode(data)
    pixels: int = img.width * img.height
    return round(float(colour_hits(img, colour, tol).avg()) * pixels)


def mean_x_of_colour(data: bytes, colour: tuple[int, int, int]) -> float:
    img = decode(data)
    hits = colour_hits(img, colour)
    xs = pyvips.Image.xyz(img.width, img.height)[0]
    return float((xs * hits).avg()) / float(hits.avg())


def magenta_balance(data: bytes, x: int, y: int) -> float:
    r, g, b = (float(v) for v in decode(data).getpoint(x, y)[:3])
    return (r + b) / 2 - g


def same_pixels(a: bytes, b: bytes, area: tuple[int, int, int, int]) -> bool:
    pixels_a, pixels_b = (decode(d).crop(*area).write_to_memory() for d in (a, b))
    return bool(pixels_a == pixels_b)


def test_reference_thumbnail_shows_its_pixels_in_the_bottom_strip() -> None:
    request = make_request()
    plain = render_image(request, 0)
    with_ref = render_image(request, 0, references=(solid_ref(RED),))
    img = decode(with_ref)
    assert (img.width, img.height, img.bands) == (1024, 1024, 3)
    assert count_colour(plain, RED) == 0
    # A 96x64 red reference fills a ~125x83 px thumbnail: thousands of pure red pixels...
    assert count_colour(with_ref, RED) > 5000
    # ...all in the strip along the bottom edge, under the prompt card.
    bottom = bytes(img.crop(0, 820, 1024, 204).pngsave_buffer())
    assert count_colour(bottom, RED) == count_colour(with_ref, RED)


def test_two_references_both_appear_in_order() -> None:
    refs = (solid_ref(RED), solid_ref(BLUE, width=40, height=90))
    data = render_image(make_request(), 0, references=refs)
    assert count_colour(data, RED) > 5000
    assert count_colour(data, BLUE) > 2000
    assert mean_x_of_colour(data, RED) < mean_x_of_colour(data, BLUE)


def test_at_most_16_thumbnails() -> None:
    refs = (solid_ref(RED),) * 16 + (solid_ref(BLUE),)
    data = render_image(make_request(width=1536, height=1024), 0, references=refs)
    assert count_colour(data, RED) > 16 * 1000
    assert count_colour(data, BLUE) == 0  # the 17th is counted in the footer, not drawn


def test_first_reference_tints_the_background() -> None:
    request = make_request()
    plain = decode(render_image(request, 0))
    edited = decode(render_image(request, 0, references=(solid_ref(RED),)))
    top = (0, 0, 1024, 60)  # above the card, away from the strip
    assert edited.crop(*top)[0].avg() > plain.crop(*top)[0].avg() + 40
    assert edited.crop(*top)[1].avg() < plain.crop(*top)[1].avg() - 40
    assert count_colour(bytes(edited.crop(*top).pngsave_buffer()), RED) == 0  # a mix, not a cover


def test_references_are_deterministic_and_matter() -> None:
    request = make_request(output_format="webp")
    refs = (solid_ref(RED), solid_ref(BLUE, fmt="jpeg"))
    mask = rect_mask(256, 256, (0, 0, 64, 64))
    a = render_image(request, 0, references=refs, mask=mask)
    assert a == render_image(request, 0, references=refs, mask=mask)
    assert a != render_image(request, 0, references=refs)
    assert a != render_image(request, 0, references=refs[::-1], mask=mask)
    result = run_generate(SandboxProvider(), request, references=refs, mask=mask)
    assert result.images[0].data == a


def test_mask_tints_the_transparent_area_only() -> None:
    request = make_request()
    refs = (solid_ref(RED),)
    plain = render_image(request, 0, references=refs)
    # 512x512 mask, transparent top-left quarter: stretched to the top-left 512x512 px.
    masked = render_image(request, 0, references=refs, mask=rect_mask(512, 512, (0, 0, 256, 256)))
    for x, y in ((100, 100), (256, 300), (40, 480)):
        assert magenta_balance(masked, x, y) > magenta_balance(plain, x, y) + MAGENTA_SHIFT
    # Far outside the edit area (and off the card, whose footer now says "mask"): unchanged.
    assert same_pixels(plain, masked, (600, 0, 424, 70))
    assert same_pixels(plain, masked, (600, 600, 424, 424))  # the strip's right part too


def test_mask_without_alpha_marks_black_as_the_edit_area() -> None:
    request = make_request(width=1536, height=1024)
    plain = render_image(request, 0)
    mask = rect_mask(1536, 1024, (1000, 0, 536, 300), alpha=False)
    masked = render_image(request, 0, mask=mask)
    assert magenta_balance(masked, 1300, 150) > magenta_balance(plain, 1300, 150) + MAGENTA_SHIFT
    assert same_pixels(plain, masked, (0, 0, 80, 80))
    assert same_pixels(plain, masked, (0, 950, 1536, 74))


def test_mask_on_a_transparent_background_is_visible() -> None:
    request = make_request(background="transparent")
    masked = decode(render_image(request, 0, mask=rect_mask(1024, 1024, (0, 0, 60, 60))))
    assert masked.bands == 4
    assert masked.getpoint(20, 20)[3] > 60  # the tint is drawn where the image was clear
    assert masked.getpoint(1000, 20)[3] == 0


@pytest.mark.parametrize(
    ("colour", "fmt", "visible"),
    [
        ((0, 255, 0, 255), "png", (0, 255, 0)),  # RGBA, opaque
        ((0, 255, 0, 0), "png", None),  # RGBA, fully transparent: shows what is under it
        ((200,), "png", (200, 200, 200)),  # 1-band grey
        ((90, 255), "png", (90, 90, 90)),  # grey + alpha
        ((200,), "jpeg", (200, 200, 200)),
        ((0, 0, 255), "jpeg", None),  # JPEG's chroma is too lossy for an exact match
        ((0, 255, 0), "webp", None),
    ],
)
def test_reference_kinds_all_render(
    colour: tuple[int, ...], fmt: str, visible: tuple[int, int, int] | None
) -> None:
    ref = solid_ref(colour, fmt=fmt)
    data = render_image(make_request(), 0, references=(ref, ref))
    decoded = decode(data)
    assert (decoded.width, decoded.height, decoded.bands) == (1024, 1024, 3)
    if visible is not None:
        assert count_colour(data, visible, tol=4) > 5000


@pytest.mark.parametrize(
    ("colour", "fmt", "tinted"),
    [
        ((0, 0, 0, 0), "png", True),  # RGBA, transparent: all edit
        ((255, 255, 255, 255), "png", False),  # RGBA, opaque: no edit, whatever the colour
        ((0, 0, 0, 255), "png", False),
        ((0, 0), "png", True),  # grey + alpha
        ((0,), "png", True),  # no alpha: black = edit
        ((255,), "png", False),
        ((0, 0, 0), "jpeg", True),
        ((255, 255, 255), "webp", False),
    ],
)
def test_mask_kinds(colour: tuple[int, ...], fmt: str, tinted: bool) -> None:
    request = make_request()
    plain = render_image(request, 0)
    masked = render_image(request, 0, mask=solid_ref(colour, fmt=fmt))
    assert decode(masked).bands == 3
    shift = magenta_balance(masked, 30, 30) - magenta_balance(plain, 30, 30)
    assert shift > MAGENTA_SHIFT if tinted else abs(shift) < 1


def test_large_reference_is_shrunk() -> None:
    big = solid_ref(RED, width=3000, height=2000, fmt="jpeg")
    data = render_image(make_request(), 0, references=(big,))
    assert count_colour(data, RED, tol=12) > 5000


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
@pytest.mark.parametrize(("width", "height"), [(1024, 1024), (1536, 512), (864, 1536)])
def test_exact_size_and_format_with_inputs(fmt: ImageFormat, width: int, height: int) -> None:
    request = make_request(width=width, height=height, output_format=fmt)
    refs = (solid_ref(RED), solid_ref((120,), fmt="jpeg"), solid_ref((0, 0, 255, 128)))
    mask = rect_mask(300, 200, (10, 10, 100, 100))
    result = run_generate(SandboxProvider(), request, references=refs, mask=mask)
    image = result.images[0]
    assert has_magic(image.data, fmt)
    assert image.content_type == request.content_type
    assert (image.width, image.height) == (width, height)
    decoded = decode(image.data)
    assert (decoded.width, decoded.height, decoded.bands) == (width, height, 3)


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_transparent_background_with_references_keeps_alpha(fmt: ImageFormat) -> None:
    request = make_request(output_format=fmt, background="transparent")
    decoded = decode(render_image(request, 0, references=(solid_ref(RED),)))
    assert decoded.bands == 4
    assert decoded.getpoint(2, 2)[3] == 0
    assert decoded[3].max() == 255
    if fmt == "png":
        assert count_colour(render_image(request, 0, references=(solid_ref(RED),)), RED) > 5000


def test_render_partial_with_inputs() -> None:
    request = make_request(width=1536, height=864)
    refs = (solid_ref(RED),)
    mask = rect_mask(64, 64, (0, 0, 32, 32))
    final = render_image(request, 0, references=refs, mask=mask)
    preview = render_partial(request, 0, 1, 3, references=refs, mask=mask)
    assert (decode(preview).width, decode(preview).height) == (1536, 864)
    assert preview != render_partial(request, 0, 1, 3)
    assert render_partial(request, 0, 3, 3, references=refs, mask=mask) == final


@pytest.mark.parametrize(
    "data", [b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"\xff\xd8\xff"]
)
def test_corrupt_reference_is_a_provider_error(data: bytes) -> None:
    bad = ReferenceImage(data=data, content_type="image/png", width=64, height=64)
    good = solid_ref(RED)
    with pytest.raises(ProviderError, match="reference 1"):
        render_image(make_request(), 0, references=(good, bad))
    with pytest.raises(ProviderError, match="mask"):
        render_image(make_request(), 0, references=(good,), mask=bad)
    with pytest.raises(ProviderError):
        run_generate(SandboxProvider(), make_request(), references=(bad,))
    with pytest.raises(ProviderError):
        render_partial(make_request(), 0, 0, 2, references=(bad,))


def test_truncated_reference_does_not_escape_as_a_vips_error() -> None:
    whole = solid_ref(RED, width=300, height=300)
    cut = ReferenceImage(whole.data[: len(whole.data) // 2], "image/png", 300, 300)
    try:
        data = render_image(make_request(), 0, references=(cut,))
    except ProviderError:
        return  # refused: fine
    assert decode(data).width == 1024  # or decoded as far as it goes: also fine


def test_usage_counts_loaded_references() -> None:
    refs = (solid_ref(RED), solid_ref(BLUE))
    result = run_generate(SandboxProvider(), make_request(prompt="abcdefghi"), references=refs)
    details = result.usage["input_tokens_details"]
    assert details == {"text_tokens": 3, "image_tokens": 512}
    assert result.usage["input_tokens"] == 515


# ---------------------------------------------------------------- variations


def variation_request(n: int = 1, size: int = 256) -> ImageRequest:
    return dataclasses.replace(make_request(prompt="", width=size, height=size, n=n),
                               operation="variation", model="dall-e-2", quality="standard")


def split_ref(size: int = 64) -> ReferenceImage:
    """Dark red on the left half, light yellow on the right: shape and colour both show."""
    left = pyvips.Image.black(size // 2, size).new_from_image([90, 10, 10]).cast("uchar")
    right = pyvips.Image.black(size - size // 2, size).new_from_image([250, 240, 150])
    right = right.cast("uchar")
    img = left.join(right, "horizontal").copy(interpretation="srgb")
    return ReferenceImage(bytes(img.pngsave_buffer()), "image/png", size, size)


def lightness(img: Any, x: int, y: int) -> float:
    return float(img.colourspace("lab")[0].crop(x, y, 8, 8).avg())


@pytest.mark.parametrize("size", [256, 512, 1024])
def test_variation_has_the_requested_size_and_is_png(size: int) -> None:
    result = run_generate(SandboxProvider(), variation_request(2, size),
                          references=(split_ref(),))
    assert len(result.images) == 2
    for image in result.images:
        assert has_magic(image.data, "png")
        img = decode(image.data)
        assert (img.width, img.height, image.width, image.height) == (size,) * 4


def test_variation_is_deterministic_and_each_image_differs() -> None:
    request, refs = variation_request(3), (split_ref(),)
    first = [render_image(request, i, references=refs) for i in range(3)]
    assert first == [render_image(request, i, references=refs) for i in range(3)]
    assert len(set(first)) == 3


def test_variation_derives_from_its_input() -> None:
    request = variation_request()
    img = decode(render_image(request, 0, references=(split_ref(),)))
    # The input's composition survives below the footer card: dark left, light right ...
    assert lightness(img, 20, 220) + 30 < lightness(img, 220, 220)
    # ... mirrored on odd images (recomposed), and recoloured: not the input's red.
    mirrored = decode(render_image(request, 1, references=(split_ref(),)))
    assert lightness(mirrored, 20, 220) > lightness(mirrored, 220, 220) + 30
    r, g, b = (float(img[i].crop(20, 220, 8, 8).avg()) for i in range(3))
    assert not (r > 60 and g < 30 and b < 30), (r, g, b)
    other = solid_ref((10, 10, 200), width=64, height=64)
    assert render_image(request, 0, references=(other,)) != render_image(
        request, 0, references=(split_ref(),))


def test_variation_of_a_transparent_or_non_square_input() -> None:
    rgba = pyvips.Image.black(80, 40).new_from_image([0, 200, 0, 128]).cast("uchar")
    ref = ReferenceImage(bytes(rgba.copy(interpretation="srgb").pngsave_buffer()),
                         "image/png", 80, 40)
    img = decode(render_image(variation_request(), 0, references=(ref,)))
    assert (img.width, img.height, img.bands) == (256, 256, 3)
