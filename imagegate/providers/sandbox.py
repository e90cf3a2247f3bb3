"""The built-in sandbox provider: real, deterministic images made locally (DESIGN §1).

It exists so the whole service, its clients and its tests run offline: every image has
exactly the requested size and format, its colours are seeded by the prompt, the prompt is
drawn on it, and a footer says it is a sandbox image so nobody mistakes it for a generation.
Latency, progress steps and a failure rate are configurable so clients can rehearse their
async handling.

The rendering is a pure function of the request and its input images (`render_image`), so
the same request gives the same bytes on the same libvips build, whichever task asked. Input
images are made visible (`sandbox_compose`): the first reference is mixed into the
background, every reference appears as a thumbnail in a strip below the prompt card, and the
mask's edit area is tinted magenta. A variation (no prompt) is its one input recoloured and
recomposed, with only the footer drawn on it.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import html
import importlib.resources
import math
import random
from pathlib import Path
from typing import Any

import pyvips

from imagegate.domain.images import GeneratedImage, PartialImage, ReferenceImage
from imagegate.domain.request import ImageRequest
from imagegate.errors import ProviderError
from imagegate.providers import sandbox_compose as compose
from imagegate.providers.base import (
    PartialCallback,
    ProgressCallback,
    Provider,
    ProviderJob,
    ProviderResult,
    no_partials,
)

_MAX_PROMPT_CHARS = 300
_GRID = 3  # colour control points per edge: enough for a varied gradient, cheap to upsample
_DEFAULT_Q = 90
_CARD_DARKEN = 0.3  # white text stays readable on a darkened copy of any background colour
# PNG encode, measured on the 2-core dev box at compression 2 (median ms / kB, filter none vs
# adaptive): 1024x1024 5.8 / 130 vs 29.5 / 66; 3840x2160 23 / 524 vs 199 / 173. Adaptive
# halves the size but costs 5-9x the time; the sandbox is about throughput, so "none". (UP
# alone was the middle: ~1.3-2x the time for about adaptive's size.) Level 2 beat 1 on size
# for 1-5 ms more, and at 4K beat 3 on both time and size.
_PNG_COMPRESSION = 2
_PNG_FILTER = pyvips.enums.ForeignPngFilter.NONE
_WEBP_EFFORT = 2  # libwebp's default 4 took ~2.5x the time for files only ~5% smaller
_KEEP_NONE = pyvips.enums.ForeignKeep.NONE  # no metadata: nothing that varies run to run
# All text is set in WenQuanYi Micro Hei, from the paperang-p2-fonts-cjk wheel (the upstream
# 0.2.0-beta file, byte-identical to Debian's fonts-wqy-microhei; Apache-2.0 or GPL-3+ with
# the font exception). libvips' "sans" is whatever the host's fontconfig offers: on a host
# without a CJK font (or without any font, as in a slim container) prompts came out as boxes.
# This font covers Latin, Greek, Cyrillic, every unified Han ideograph of Unicode 5.1
# (U+4E00-U+9FC3, which holds GBK's and Big5's), kana and hangul in 5 MB; Noto Sans CJK
# would be 33 MB. Naming it first also keeps Latin and CJK text independent of the host's
# fonts. Pango falls back to the host's fonts only for characters it lacks (emoji, Arabic,
# rare Han), and draws a hex box naming the code point where no font has one.
_FONT_PACKAGE = "paperang_p2_fonts_cjk"
_FONT_FAMILY = "WenQuanYi Micro Hei"


def render_image(
    request: ImageRequest,
    index: int,
    *,
    references: tuple[ReferenceImage, ...] = (),
    mask: ReferenceImage | None = None,
) -> bytes:
    """The finished image `index` (0-based) of `request`, encoded; pure and thread-safe.

    Blocking (decodes the inputs, renders, encodes): call it from a worker thread. Raises
    `ProviderError` if libvips fails, e.g. on an input image that does not decode.
    """
    try:
        return _encode(_compose(request, index, references, mask), request)
    except pyvips.Error as exc:
        raise ProviderError(f"sandbox: render failed: {exc}") from exc


def render_partial(
    request: ImageRequest,
    index: int,
    step: int,
    total_steps: int,
    *,
    references: tuple[ReferenceImage, ...] = (),
    mask: ReferenceImage | None = None,
) -> bytes:
    """A coarse preview of `render_image` for streaming: same size and format.

    `step` runs 0..total_steps; each step halves the mosaic's block size, and
    `step >= total_steps` is the finished image itself.
    """
    if total_steps < 1 or step < 0:
        raise ValueError("render_partial needs total_steps >= 1 and step >= 0")
    try:
        img = _compose(request, index, references, mask)
        if step < total_steps:
            # A mosaic, like an interlaced PNG arriving: box-average blocks, then replicate.
            f = min(2 ** (total_steps - step + 2), request.width, request.height)
            img = img.shrink(f, f).zoom(f, f)
            img = img.embed(0, 0, request.width, request.height, extend="copy")
        return _encode(img, request)
    except pyvips.Error as exc:
        raise ProviderError(f"sandbox: render failed: {exc}") from exc


# How the sandbox spells a style out in a revised prompt (003's descriptions of the two).
_STYLE_WORDS = {"vivid": "hyper-real and dramatic", "natural": "natural, less hyper-real"}


def revised_prompt(request: ImageRequest) -> str:
    """The sandbox's `revised_prompt` for a model that rewrites prompts (dall-e-3): the
    prompt with its style spelled out (`vivid`, dall-e-3's default, when none was sent).
    Deterministic, so clients and tests can rely on it."""
    style = request.style or "vivid"
    words = _STYLE_WORDS.get(style, style)
    return f"{request.prompt.strip()}, in a {style} style: {words}"


def estimate_usage(
    request: ImageRequest, references: tuple[ReferenceImage, ...] | None = None
) -> dict[str, object]:
    """OpenAI-shaped usage. An estimate, not a measurement: there is no real model here.

    Text ≈ 4 characters per token; each reference image counts like one 1024x1024 tile (256
    tokens, whatever its size; the mask is not counted); output is a quarter token per 1024
    pixels per image. Deterministic, so billing tests are stable. References are counted from
    the loaded `references` when given, else from the request's reference sources.
    """
    text_tokens = math.ceil(len(request.prompt) / 4)
    ref_count = len(references) if references is not None else len(request.references)
    image_tokens = ref_count * 256
    output_tokens = math.ceil(math.ceil(request.width * request.height / 1024) * request.n / 4)
    input_tokens = text_tokens + image_tokens
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }


class SandboxProvider(Provider):
    name = "sandbox"
    variations = True

    def __init__(
        self, *, latency: float = 0.0, progress_steps: int = 4, failure_rate: float = 0.0
    ) -> None:
        if latency < 0:
            raise ValueError("latency must be >= 0")
        if not 1 <= progress_steps <= 99:
            # Each step must report a distinct whole percentage strictly inside 0..100.
            raise ValueError("progress_steps must be in 1..99")
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be in 0..1")
        self.latency = latency
        self.progress_steps = progress_steps
        self.failure_rate = failure_rate
        font_file()  # a broken install fails at start, not in the first task

    async def generate(self, job: ProviderJob, progress: ProgressCallback,
                       partial: PartialCallback = no_partials) -> ProviderResult:
        request = job.request
        # Seeded per attempt, so a retry of an injected failure may succeed, reproducibly.
        fails = random.Random(f"{job.task_id}:{job.attempt}").random() < self.failure_rate
        # Wait first, render at the end, as a remote service would: rendering up front and
        # holding the bytes through the wait cost ~150 KB per in-flight task (measured with
        # 5,000 tasks in flight), for a saving of one render time per task.
        if request.partial_images:
            await self._stream_partials(job, progress, partial)
        elif self.latency > 0:
            await self._simulate_latency(progress)
        if fails:
            raise ProviderError(f"sandbox: injected failure (failure_rate={self.failure_rate})")
        try:
            blobs = await _render_all(request, job.references, job.mask)
        except pyvips.Error as exc:
            raise ProviderError(f"sandbox: render failed: {exc}") from exc
        revised = revised_prompt(request) if request.revises_prompt else None
        images = [
            GeneratedImage(
                data=blob,
                content_type=request.content_type,
                width=request.width,
                height=request.height,
                revised_prompt=revised,
            )
            for blob in blobs
        ]
        # A job built without loaded inputs (references=()) still bills the request's sources.
        refs = job.references if job.references else None
        return ProviderResult(images=images, usage=estimate_usage(request, refs))

    async def _stream_partials(self, job: ProviderJob, progress: ProgressCallback,
                               partial: PartialCallback) -> None:
        """Spread the latency over the partial renders: real, progressively sharper
        previews of the final images, sent as they are made."""
        request, count = job.request, job.request.partial_images
        for k in range(count):
            await asyncio.sleep(self.latency / (count + 1))
            for index in range(request.n):
                try:
                    data = await asyncio.to_thread(
                        render_partial, request, index, k + 1, count + 1,
                        references=job.references, mask=job.mask,
                    )
                except pyvips.Error as exc:
                    raise ProviderError(f"sandbox: render failed: {exc}") from exc
                await partial(PartialImage(index, k, data))
            await progress(round(100 * (k + 1) / (count + 1)))
        await asyncio.sleep(self.latency / (count + 1))

    async def _simulate_latency(self, progress: ProgressCallback) -> None:
        steps = self.progress_steps
        for i in range(1, steps + 1):
            await asyncio.sleep(self.latency / steps)
            await progress(round(100 * i / (steps + 1)))


async def _render_all(
    request: ImageRequest, references: tuple[ReferenceImage, ...], mask: ReferenceImage | None
) -> list[bytes]:
    # libvips releases the GIL, so images of one request render in parallel threads; the
    # inputs are decoded there too, never on the event loop.
    renders = (
        asyncio.to_thread(render_image, request, i, references=references, mask=mask)
        for i in range(request.n)
    )
    return list(await asyncio.gather(*renders))


def _seed(request: ImageRequest, index: int) -> bytes:
    # sha256, not hash(): Python salts str hashes per process, and bytes must not change.
    key = "\x1f".join(
        (request.prompt, request.model, f"{request.width}x{request.height}", str(index))
    )
    return hashlib.sha256(key.encode("utf-8")).digest()


def _compose(
    request: ImageRequest,
    index: int,
    references: tuple[ReferenceImage, ...],
    mask: ReferenceImage | None,
) -> Any:
    if request.operation == "variation" and references:
        base = compose.variation_base(references[0], index, request.width, request.height)
        return _compose_card(request, index, (), None, bg=base)
    img = _compose_card(request, index, references, mask)
    if mask is not None:
        img = compose.tint_mask(img, mask)
    return img


def _compose_card(
    request: ImageRequest,
    index: int,
    references: tuple[ReferenceImage, ...],
    mask: ReferenceImage | None,
    *,
    bg: Any = None,
) -> Any:
    """The frame with the prompt card (and the references' strip); `bg` replaces the
    prompt-seeded gradient (a variation brings its own)."""
    w, h = request.width, request.height
    if bg is None:
        bg = _background(_seed(request, index), w, h)
    if references:
        bg = compose.blend_base(bg, references[0])
    transparent = request.background == "transparent" and request.output_format != "jpeg"
    short = min(w, h)
    margin = max(1, round(short * 0.08))
    pad = max(1, round(short * 0.03))
    strip = compose.strip_layout(w, h, margin, len(references))
    # The card stays between the top margin and the strip (or the bottom margin).
    bottom = h - margin if strip is None else strip.y - compose.strip_gap(w, h)
    card_w, max_card_h = w - 2 * margin, bottom - margin
    text_w, max_text_h = card_w - 2 * pad, max_card_h - 2 * pad
    img = _alpha(bg, 255) if transparent else bg
    if text_w >= 16 and max_text_h >= 8:  # else too small to hold legible text: no card
        footer = _footer(request, index, references, mask)
        text = _text_mask(request, footer, text_w, max_text_h)
        card_h = min(max_card_h, text.height + 2 * pad)
        x, y = margin, margin + (max_card_h - card_h) // 2
        card = (bg.crop(x, y, card_w, card_h) * _CARD_DARKEN).cast("uchar")
        text = text.embed(pad, pad, card_w, card_h)
        card = text.ifthenelse([255, 255, 255], card, blend=True)
        if transparent:
            # RGB zeroes under alpha 0 compress to almost nothing, unlike the hidden gradient.
            img = pyvips.Image.black(w, h, bands=4).copy(interpretation="srgb")
            img = img.insert(_alpha(card, 255), x, y)
        else:
            img = bg.insert(card, x, y)
    if strip is not None:
        img = compose.draw_strip(img, strip, references)
    return img


def _footer(
    request: ImageRequest,
    index: int,
    references: tuple[ReferenceImage, ...],
    mask: ReferenceImage | None,
) -> str:
    parts = ["imagegate sandbox", request.model, f"{request.width}x{request.height}", f"#{index}"]
    if request.operation == "variation":
        parts.append("variation")
    if references:
        parts.append(f"refs: {len(references)}")
    if mask is not None:
        parts.append("mask")
    return " · ".join(parts)


def _background(digest: bytes, w: int, h: int) -> Any:
    # Keep control colours mid-range so neither white text nor the darkened card clips.
    levels = bytes(40 + b * 180 // 255 for b in digest[: _GRID * _GRID * 3])
    grid = pyvips.Image.new_from_memory(levels, _GRID, _GRID, 3, "uchar")
    # Interpolating every pixel of a 4K frame costs ~90 ms; interpolating 1/f^2 of them and
    # replicating f x f blocks costs ~10 ms, and each block step is only 1-2 levels.
    f = max(1, min(8, min(w, h) // 256))
    sw, sh = -(-w // f), -(-h // f)
    sx, sy = sw / _GRID, sh / _GRID
    small = grid.affine(
        [sx, 0, 0, sy],
        interpolate=pyvips.Interpolate.new("bilinear"),
        oarea=[0, 0, sw, sh],
        # Map pixel centres to pixel centres, so the grid is stretched symmetrically.
        odx=(sx - 1) / 2,
        ody=(sy - 1) / 2,
        extend="copy",
    )
    return small.zoom(f, f).crop(0, 0, w, h).copy(interpretation="srgb")


def _text_mask(request: ImageRequest, footer: str, width: int, max_height: int) -> Any:
    """Prompt and footer as one 1-band coverage mask, at most width x max_height."""
    w, h = request.width, request.height
    prompt = "".join(c if c.isprintable() or c == "\n" else " " for c in request.prompt).strip()
    if len(prompt) > _MAX_PROMPT_CHARS:
        prompt = prompt[: _MAX_PROMPT_CHARS - 1].rstrip() + "…"
    # Scale with the geometric mean of the edges: ~33 px type at 1024x1024, ~94 px at 4K.
    dpi = 200 * math.sqrt(w * h) / 1024
    for _ in range(3):
        block = draw_text(footer, width, dpi * 0.5)
        if prompt:
            body = draw_text(prompt, width, dpi)
            block = body.join(block, "vertical", expand=True, shim=max(1, round(dpi / 8)))
        if block.height <= max_height:
            break
        # Text area grows with dpi squared; shrink a little past the exact fit.
        dpi *= math.sqrt(max_height / block.height) * 0.95
    return block.crop(0, 0, min(width, block.width), min(max_height, block.height))


@functools.cache
def font_file() -> str:
    """Path of the font file the sandbox draws text with (from a package dependency).

    Raises `RuntimeError` if the font package is missing or lacks the file: a broken install.
    """
    try:
        font = importlib.resources.files(_FONT_PACKAGE) / "fonts" / "wqy-microhei.ttc"
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"sandbox: font package {_FONT_PACKAGE} is not installed") from exc
    # fontconfig needs a real file; a wheel installs one (a zipped install would not).
    if not isinstance(font, Path) or not font.is_file():
        raise RuntimeError(f"sandbox: font file missing: {font}")
    return str(font)


def draw_text(text: str, width: int, dpi: float) -> Any:
    """`text` as the sandbox draws it: a 1-band coverage mask (uchar, 0..255), wrapped to
    `width` pixels, the font's 12 pt at `dpi`. Pure: the same arguments give the same mask."""
    # Image.text reads Pango markup; escaping keeps prompts like "<b>" or "a & b" literal.
    return pyvips.Image.text(
        html.escape(text, quote=False),
        font=f"{_FONT_FAMILY} 12",
        # libvips adds the file to fontconfig once per process (it remembers the path).
        fontfile=font_file(),
        width=width,
        dpi=max(1, round(dpi)),
        wrap=pyvips.enums.TextWrap.WORD_CHAR,  # 300-char words must wrap, not overflow
    )


def _alpha(img: Any, value: int) -> Any:
    return img.bandjoin(value)


def _encode(img: Any, request: ImageRequest) -> bytes:
    fmt = request.output_format
    if fmt == "png":
        data = img.pngsave_buffer(compression=_PNG_COMPRESSION, filter=_PNG_FILTER, keep=_KEEP_NONE)
    else:
        q = _DEFAULT_Q if request.output_compression is None else request.output_compression
        q = min(100, max(1, q))  # libvips' jpeg Q starts at 1
        if fmt == "jpeg":
            data = img.jpegsave_buffer(Q=q, keep=_KEEP_NONE)
        else:
            data = img.webpsave_buffer(Q=q, effort=_WEBP_EFFORT, keep=_KEEP_NONE)
    return bytes(data)
