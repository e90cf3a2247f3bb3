"""Compositing for the sandbox provider: the request's input images, made visible.

So a test, or a client developer, can see that the reference images and the mask reached the
provider, a sandbox render with inputs shows them:

- the first reference, resized to cover the frame and centre-cropped, is mixed 50% into the
  background gradient, so an edit visibly derives from its input;
- every reference (up to `MAX_THUMBNAILS`, in order) appears as a bordered thumbnail in a
  strip along the bottom edge, below the prompt card, which is laid out above it;
- the mask's edit area (OpenAI semantics: where the mask is transparent; a mask without
  alpha: where it is black) is stretched to the frame and tinted with hatched magenta;
- a variation is its input, resized to cover the frame, with every hue turned (by a
  different angle for each image of the request) and mirrored on odd image indexes.

Everything here is pure: the same inputs give the same pixels. Inputs are decoded from bytes
with `thumbnail_buffer` (shrink-on-load where the format has it) and normalized to 8-bit
sRGB, keeping alpha; a libvips failure becomes a `ProviderError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyvips

from imagegate.domain.images import ReferenceImage
from imagegate.errors import ProviderError

MAX_THUMBNAILS = 16
_BASE_MIX = 0.5  # weight of the first reference in the background
_BORDER_RGBA = [255, 255, 255, 255]
_TINT_RGB = [255, 0, 255]
_TINT = 0.35  # tint strength in the edit area, between the hatch stripes
_HATCH = 0.65  # ... and on them
# Hue turn between successive variations: the golden angle keeps any two of up to 10 images
# at least ~20 degrees apart on the colour wheel, so each is visibly its own.
_GOLDEN_ANGLE = 137.508
_FLATTEN_GREY = [128, 128, 128]  # what a transparent input shows through in a variation


@dataclass(frozen=True, slots=True)
class Strip:
    """Where the thumbnails go: `count` square cells of `cell` px from (`x`, `y`)."""

    x: int
    y: int
    cell: int
    spacing: int
    count: int


def strip_layout(width: int, height: int, margin: int, references: int) -> Strip | None:
    """A one-row strip of thumbnails along the bottom edge, or None if none fits.

    Cells are square, about 13% of the short edge, shrunk so up to `MAX_THUMBNAILS` fit
    between the card's side margins. The caller keeps the prompt card above `y - gap`.
    """
    count = min(references, MAX_THUMBNAILS)
    if count == 0:
        return None
    short = min(width, height)
    gap = strip_gap(width, height)
    spacing = max(1, round(short * 0.01))
    span = width - 2 * margin
    cell = min(round(short * 0.13), (span - (count - 1) * spacing) // count)
    if cell < 8:  # too small to show anything recognizable
        return None
    return Strip(x=margin, y=height - gap - cell, cell=cell, spacing=spacing, count=count)


def strip_gap(width: int, height: int) -> int:
    """Space between the strip and the bottom edge, and between the strip and the card."""
    return max(1, round(min(width, height) * 0.02))


def blend_base(bg: Any, first: ReferenceImage) -> Any:
    """`bg` (3-band sRGB) with `first` mixed in: resized to cover, centre-cropped."""
    cover = _load_cover(first, 0, bg.width, bg.height)
    if cover.bands == 4:  # transparent parts of the reference leave the gradient alone
        weight = (cover[3] * _BASE_MIX).cast("uchar")
        return weight.ifthenelse(cover.extract_band(0, n=3), bg, blend=True)
    return ((bg + cover) * _BASE_MIX).cast("uchar")


def draw_strip(img: Any, strip: Strip, references: tuple[ReferenceImage, ...]) -> Any:
    """`img` (3- or 4-band) with the first `strip.count` references drawn as thumbnails."""
    border = max(1, round(strip.cell * 0.03))
    inner = strip.cell - 2 * border
    for i, ref in enumerate(references[: strip.count]):
        thumb = _load(ref, i, inner, inner)
        if thumb.bands == 3:
            thumb = thumb.bandjoin(255)
        tile = thumb.embed(
            border,
            border,
            thumb.width + 2 * border,
            thumb.height + 2 * border,
            extend="background",
            background=_BORDER_RGBA,
        )
        x = strip.x + i * (strip.cell + strip.spacing) + (strip.cell - tile.width) // 2
        y = strip.y + (strip.cell - tile.height) // 2
        img = _paste(img, tile, x, y)
    return img


def tint_mask(img: Any, mask: ReferenceImage) -> Any:
    """`img` (3- or 4-band) with the mask's edit area tinted magenta, hatched diagonally."""
    w, h = img.width, img.height
    m = _load(mask, 0, w, h, size="down", what="mask")  # shrink-on-load, aspect kept
    # OpenAI semantics: transparent = edit; a mask without alpha: black = edit. Graded, so a
    # half-transparent (or grey) pixel gets half the tint.
    edit = 255 - (m[3] if m.bands == 4 else m.colourspace("b-w")[0])
    edit = _exact(edit.resize(w / m.width, vscale=h / m.height, kernel="linear"), w, h)
    # (x + y) % stride repeats every `stride` px both ways: build one tile and replicate it.
    stride = max(4, round(min(w, h) / 48))
    xy = pyvips.Image.xyz(stride, stride)
    on_stripe = ((xy[0] + xy[1]) % stride) < (stride // 2)  # 255 on a stripe, else 0
    weight = on_stripe.ifthenelse(round(255 * _HATCH), round(255 * _TINT))
    weight = weight.cast("uchar").replicate(-(-w // stride), -(-h // stride)).crop(0, 0, w, h)
    strength = ((edit * weight + 127) / 255).cast("uchar")
    tint = _TINT_RGB + [255] * (img.bands - 3)  # a tinted transparent pixel shows the tint
    return strength.ifthenelse(tint, img, blend=True)


def variation_base(ref: ReferenceImage, index: int, width: int, height: int) -> Any:
    """Variation `index` of `ref` as a 3-band sRGB frame of exactly width x height: the input
    covering the frame, its hues turned by (index + 1) golden angles in LCh (lightness and
    chroma kept, so the picture stays recognizable), mirrored when `index` is odd."""
    img = _load_cover(ref, 0, width, height)
    if img.bands == 4:
        img = img.flatten(background=_FLATTEN_GREY).cast("uchar").copy(interpretation="srgb")
    lch = img.colourspace("lch")
    hue = (lch[2] + _GOLDEN_ANGLE * (index + 1)) % 360
    out = lch[0].bandjoin([lch[1], hue]).copy(interpretation="lch").colourspace("srgb")
    if index % 2:
        out = out.fliphor()
    return out.cast("uchar")


def _paste(img: Any, tile: Any, x: int, y: int) -> Any:
    """Composite RGBA `tile` over `img` at (x, y); `img` keeps its band count."""
    region = img.crop(x, y, tile.width, tile.height)
    over = region.composite2(tile, "over", compositing_space="srgb").cast("uchar")
    return img.insert(over.extract_band(0, n=img.bands), x, y)


def _load_cover(ref: ReferenceImage, index: int, width: int, height: int) -> Any:
    """`ref` at exactly width x height: resized to cover the frame, centre-cropped.

    Shrinking goes through `thumbnail_buffer` (shrink-on-load); growing uses a bilinear
    resize: a Lanczos upscale to a whole 1024x1024 frame cost ~40 ms, bilinear ~half that.
    """
    img = _load(ref, index, width, height, crop="centre", size="down")
    if img.width < width or img.height < height:
        scale = max(width / img.width, height / img.height)
        if img.bands == 4:  # interpolate premultiplied, so no dark fringes at edges
            img = img.premultiply().resize(scale, kernel="linear").unpremultiply().cast("uchar")
        else:
            img = img.resize(scale, kernel="linear")
    left, top = max(0, (img.width - width) // 2), max(0, (img.height - height) // 2)
    return _exact(img.crop(left, top, img.width - left, img.height - top), width, height)


def _exact(img: Any, width: int, height: int) -> Any:
    """Crop an overhang, or pad an off-by-one from rounding, to exactly width x height."""
    if (img.width, img.height) == (width, height):
        return img
    return img.embed(0, 0, width, height, extend="copy")


def _load(
    ref: ReferenceImage,
    index: int,
    width: int,
    height: int,
    *,
    crop: str = "none",
    size: str = "both",
    what: str = "reference",
) -> Any:
    """Decode `ref` fitted to width x height as 8-bit sRGB, 3 bands or 4 with alpha."""
    try:
        img = pyvips.Image.thumbnail_buffer(ref.data, width, height=height, crop=crop, size=size)
        if img.interpretation != "srgb" or img.format != "uchar":
            img = img.colourspace("srgb")  # grey, grey16, rgb16, cmyk: to 8-bit sRGB
        if img.format != "uchar":
            img = img.cast("uchar")
        if img.bands == 2:  # defensive: a 2-band file tagged sRGB; grey+alpha to RGBA
            img = img[0].bandjoin([img[0], img[0], img[1]])
        if img.bands > 4:
            img = img.extract_band(0, n=4)
        return img.copy(interpretation="srgb")
    except pyvips.Error as exc:
        label = what if what == "mask" else f"{what} {index}"
        lines = str(exc).strip().splitlines()
        detail = lines[-1].strip() if lines else "libvips error"
        raise ProviderError(f"sandbox: could not decode {label}: {detail}") from exc
