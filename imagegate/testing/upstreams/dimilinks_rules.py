"""What the dimilinks service accepts, as the 000 seed (generations) and the 001 seed (edits)
state it, for the fake in `dimilinks_api`. Written out from the seeds on purpose, not
imported from imagegate: a fake that shared the gateway's rules could never catch the gateway
disagreeing with the service.

000 ("参数", "参考图限制", "清晰度档位的能力差异"):
- `prompt` required; `size` a ratio such as `1:1` or `16:9`, or pixels `WxH` (e.g.
  `3840x2160`), default `1024x1024`; `resolution` one of `1k` / `2k` / `4k`, default empty.
- `n` an integer, default 1, at most 4; the `1k` tier is fixed at 1, `2k` / `4k` allow 4.
- `output_format` png / jpeg / webp; `background` auto / transparent / opaque; `moderation`
  auto / low; `output_compression` an integer.
- References in `image_urls` (also `reference_images`, `images`, `image`, `image_url`,
  `input_image`, `input_images`), each a string, array or object: at most 9 per request, at
  most 20 MB each, http(s) URLs, data URLs or bare base64; browser `blob:` URLs refused.
- `mask_url` needs at least one reference image.
001 (multipart `/v1/images/edits`): at least one image file, in `image`, `image[]`, `images`,
`images[]` or numbered `image_1`, `image_2`, …; `mask` is optional and handled as one more
reference.

The seed has no ratio → pixels table, so what a ratio renders as is this fake's own choice
(`ratio_pixels`); only the seed's limits above are checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

RESOLUTIONS = ("1k", "2k", "4k")
DEFAULT_SIZE = "1024x1024"
MAX_N = 4
MAX_N_PER_TIER = {"1k": 1, "2k": 4, "4k": 4}
MAX_REFERENCES = 9
MAX_REFERENCE_BYTES = 20 * 1024 * 1024
REFERENCE_FIELDS = ("image_urls", "reference_images", "images", "image", "image_url",
                    "input_image", "input_images")
EDIT_FILE_FIELDS = ("image", "image[]", "images", "images[]", "mask")
CHOICES: dict[str, tuple[str, ...]] = {
    "output_format": ("png", "jpeg", "webp"),
    "background": ("auto", "transparent", "opaque"),
    "moderation": ("auto", "low"),
}
# Not the seed's: the fake draws every image it accepts, so it keeps them drawable.
MAX_EDGE = 4096
# Not the seed's either (it has no table): a ratio renders with this long edge per tier.
_LONG_EDGE = {"1k": 1536, "2k": 2048, "4k": 3840}

_RATIO = re.compile(r"^([1-9][0-9]?):([1-9][0-9]?)$")
_WXH = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


class Refusal(ValueError):
    """The request breaks one of the seed's rules; the message says which."""


def check(fields: Mapping[str, Any], files: list[tuple[str, int]], *,
          edit: bool) -> tuple[int, int]:
    """Check a submission; returns the pixels to render or raises Refusal.

    `files` are the multipart file parts as (field name, size in bytes)."""
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("prompt is required")
    resolution = fields.get("resolution") or None  # the seed's default is empty
    if resolution is not None and resolution not in RESOLUTIONS:
        raise Refusal(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    n = fields.get("n", 1)
    if not str(n).isdigit() or not 1 <= int(n) <= MAX_N:
        raise Refusal(f"n must be between 1 and {MAX_N}")
    if resolution is not None and int(n) > MAX_N_PER_TIER[resolution]:
        raise Refusal(f"n must be at most {MAX_N_PER_TIER[resolution]} at resolution "
                      f"{resolution}")
    for name, values in CHOICES.items():
        value = fields.get(name)
        if value is not None and value not in values:
            raise Refusal(f"{name} must be one of {', '.join(values)}")
    compression = fields.get("output_compression")
    if compression is not None and (isinstance(compression, bool)
                                    or not re.fullmatch(r"-?[0-9]+", str(compression))):
        raise Refusal("output_compression must be an integer")
    # No resolution: the seed names no default tier; a ratio then renders at the lowest.
    size = pixels(str(fields.get("size") or DEFAULT_SIZE), resolution or "1k")
    if edit:
        _check_edit_files(files)
    else:
        _check_references(fields)
    return size


def pixels(size: str, tier: str) -> tuple[int, int]:
    """The pixels a `size` renders as: `WxH` as given, a ratio by `ratio_pixels`."""
    wxh = _WXH.match(size)
    if wxh is not None:
        width, height = int(wxh.group(1)), int(wxh.group(2))
        if max(width, height) > MAX_EDGE:
            raise Refusal(f"size {size!r} is out of range")
        return width, height
    ratio = _RATIO.match(size)
    if ratio is None:
        raise Refusal(f"size {size!r} is not a ratio such as 16:9 or pixels such as 3840x2160")
    return ratio_pixels(int(ratio.group(1)), int(ratio.group(2)), tier)


def ratio_pixels(a: int, b: int, tier: str) -> tuple[int, int]:
    """`a:b` at `tier`: the tier's long edge, the short edge in proportion (a multiple of 16).
    Gives 1536x864 for 16:9 at 1k and the seed's own 3840x2160 for 16:9 at 4k."""
    long = _LONG_EDGE[tier]
    short = max(16, round(long * min(a, b) / max(a, b) / 16) * 16)
    return (long, short) if a >= b else (short, long)


def _check_edit_files(files: list[tuple[str, int]]) -> None:
    images = [(name, size) for name, size in files
              if name in EDIT_FILE_FIELDS or re.fullmatch(r"image_[0-9]+", name)]
    if not any(name != "mask" for name, _ in images):
        raise Refusal("at least one image file is required")
    if len(images) > MAX_REFERENCES:
        raise Refusal(f"too many reference images: at most {MAX_REFERENCES}")
    if any(size > MAX_REFERENCE_BYTES for _, size in images):
        raise Refusal("a reference image is larger than 20 MB")


def _check_references(fields: Mapping[str, Any]) -> None:
    refs = [ref for name in REFERENCE_FIELDS if name in fields
            for ref in _references(fields[name])]
    if len(refs) > MAX_REFERENCES:
        raise Refusal(f"image_urls exceeds max {MAX_REFERENCES}")
    for ref in refs:
        if not isinstance(ref, str):
            continue
        if ref.startswith("blob:"):
            raise Refusal("blob: URLs cannot be fetched; upload the image or send a data URL")
        if not ref.startswith(("http://", "https://")):
            payload = ref.partition(",")[2] if ref.startswith("data:") else ref
            if len(payload) * 3 // 4 > MAX_REFERENCE_BYTES:
                raise Refusal("a reference image is larger than 20 MB")
    if fields.get("mask_url") and not refs:
        raise Refusal("mask_url needs at least one reference image")


def _references(value: Any) -> Iterator[Any]:
    """The images of one reference field: a string, an array of strings or objects, or one
    object (whose `url` / `image_url` is the image)."""
    items = value if isinstance(value, list) else [value] if value else []
    for item in items:
        if isinstance(item, Mapping):
            inner = item.get("url") or item.get("image_url")
            item = inner.get("url") if isinstance(inner, Mapping) else inner
        yield item
