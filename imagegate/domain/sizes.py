"""Size resolution: ratio × tier → pixels, and the `WxH` rules (DESIGN §2).

Pure functions over plain data; the catalog decides which rule a model uses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from imagegate.domain.numbers import parse_int

TIERS = ("1k", "2k", "4k")

# Landscape (or square) ratios → pixels per tier: the first valid variant of the 002 seed's
# table. Portrait ratios are the same entries with the two numbers swapped.
_LANDSCAPE: dict[str, dict[str, tuple[int, int]]] = {
    "1:1": {"1k": (1024, 1024), "2k": (2048, 2048), "4k": (2880, 2880)},
    "3:2": {"1k": (1536, 1024), "2k": (2048, 1360), "4k": (3520, 2336)},
    "4:3": {"1k": (1024, 768), "2k": (2048, 1536), "4k": (3312, 2480)},
    "5:4": {"1k": (1280, 1024), "2k": (2560, 2048), "4k": (3216, 2576)},
    "16:9": {"1k": (1536, 864), "2k": (2048, 1152), "4k": (3840, 2160)},
    "2:1": {"1k": (2048, 1024), "2k": (2688, 1344), "4k": (3840, 1920)},
    "3:1": {"1k": (1536, 512), "2k": (3072, 1024), "4k": (3840, 1280)},
    "21:9": {"1k": (2016, 864), "2k": (2688, 1152), "4k": (3840, 1648)},
}

# The other 1k variants the 002 seed lists. That seed says pixel sizes from its table may be
# sent directly, so these are accepted as exact sizes even where an edge is not a multiple
# of 16 (e.g. 1881x836). Each is also accepted swapped; 4:5's variant (1122x1402) is not the
# swap of 5:4's (1448x1086) in the seed, so it is listed on its own.
_SEED_1K_VARIANTS: tuple[tuple[int, int], ...] = (
    (1254, 1254), (1448, 1086), (1122, 1402), (1672, 941), (1774, 887), (1881, 836),
    (1915, 821),
)


def _build_ratio_table() -> dict[str, dict[str, tuple[int, int]]]:
    table: dict[str, dict[str, tuple[int, int]]] = {}
    for ratio, tiers in _LANDSCAPE.items():
        table[ratio] = dict(tiers)
        a, b = ratio.split(":")
        if a != b:
            table[f"{b}:{a}"] = {t: (h, w) for t, (w, h) in tiers.items()}
    return table


RATIO_TABLE: dict[str, dict[str, tuple[int, int]]] = _build_ratio_table()
RATIOS: tuple[str, ...] = tuple(RATIO_TABLE)

# The edges are found here and read by `parse_int`: ASCII digits only, no leading zeros.
_WXH = re.compile(r"\s*([0-9]+)\s*[xX×*]\s*([0-9]+)\s*")


@dataclass(frozen=True, slots=True)
class FlexibleRules:
    """`WxH` constraints of gpt-image-2 class models."""

    multiple: int = 16
    max_edge: int = 3840
    max_ratio: float = 3.0
    min_pixels: int = 655_360
    max_pixels: int = 8_294_400


class SizeError(ValueError):
    """The size (or resolution) is not acceptable; the message says why and what is."""

    def __init__(self, message: str, param: str = "size") -> None:
        super().__init__(message)
        self.param = param


def parse_wxh(size: str) -> tuple[int, int] | None:
    m = _WXH.fullmatch(size)
    if m is None:
        return None
    width, height = parse_int(m.group(1), max_digits=5), parse_int(m.group(2), max_digits=5)
    return None if width is None or height is None else (width, height)


def table_sizes() -> dict[tuple[int, int], str]:
    """Every exact pixel size of the ratio table, mapped to the tier it belongs to."""
    out: dict[tuple[int, int], str] = {}
    for tiers in RATIO_TABLE.values():
        for tier, wh in tiers.items():
            out.setdefault(wh, tier)
    for w, h in _SEED_1K_VARIANTS:
        out.setdefault((w, h), "1k")
        out.setdefault((h, w), "1k")
    return out


def tier_for_pixels(width: int, height: int) -> str:
    """The tier a free `WxH` size bills and limits as: by pixel count.

    Thresholds sit between the table's tiers: up to 1536² (2.36 MP) is 1k, up to
    2560×2048 (5.24 MP) is 2k, larger is 4k. Exact table sizes use their table tier instead.
    """
    pixels = width * height
    if pixels <= 1536 * 1536:
        return "1k"
    if pixels <= 2560 * 2048:
        return "2k"
    return "4k"


def check_flexible(width: int, height: int, rules: FlexibleRules) -> None:
    """Raise SizeError naming the first broken `WxH` rule."""
    if width <= 0 or height <= 0:
        raise SizeError(f"size {width}x{height}: both edges must be positive")
    if width % rules.multiple or height % rules.multiple:
        raise SizeError(
            f"size {width}x{height}: both edges must be multiples of {rules.multiple}"
        )
    if max(width, height) > rules.max_edge:
        raise SizeError(f"size {width}x{height}: the longest edge must be at most {rules.max_edge}")
    if max(width, height) / min(width, height) > rules.max_ratio:
        raise SizeError(
            f"size {width}x{height}: the long:short ratio must be at most {rules.max_ratio:g}:1"
        )
    pixels = width * height
    if not rules.min_pixels <= pixels <= rules.max_pixels:
        raise SizeError(
            f"size {width}x{height} has {pixels} pixels; it must be between "
            f"{rules.min_pixels} and {rules.max_pixels}"
        )


def resolve_ratio(ratio: str, tier: str) -> tuple[int, int]:
    try:
        return RATIO_TABLE[ratio][tier]
    except KeyError as exc:  # pragma: no cover - callers check membership first
        raise SizeError(f"unknown ratio {ratio!r}") from exc


# The pixel count a tier stands for when a shape is scaled to it: its 1:1 size in the table.
TIER_PIXELS: Mapping[str, int] = MappingProxyType({
    tier: w * h for tier, (w, h) in RATIO_TABLE["1:1"].items()
})
# How far (in multiples) snapping may move an edge from its exact scaled length before the
# search widens; two steps let it find an exact aspect (1008x672 for 3:2) near the budget.
_SNAP_REACH = 2
_SNAP_MAX_REACH = 8


def is_valid_flexible(width: int, height: int, rules: FlexibleRules) -> bool:
    try:
        check_flexible(width, height, rules)
    except SizeError:
        return False
    return True


def table_ratio(width: int, height: int) -> str | None:
    """The ratio of the table whose aspect `width`x`height` has exactly, or None."""
    for ratio in RATIOS:
        a, b = (int(v) for v in ratio.split(":"))
        if width * b == height * a:
            return ratio
    return None


def _aspect_error(width: int, height: int, aspect: Fraction) -> Fraction:
    """How far `width`:`height` is from `aspect`, as a ratio >= 1 (1 is exact)."""
    q = Fraction(width, height) / aspect
    return q if q >= 1 else 1 / q


def snap_flexible(width: int, height: int, rules: FlexibleRules,
                  pixels: int | None = None) -> tuple[int, int]:
    """The valid `WxH` nearest a `width`x`height` shape (an input image's), keeping its aspect.

    The shape is scaled to `pixels` (default: its own pixel count), kept inside the pixel
    budget and the longest-edge limit, its aspect clamped to `max_ratio`; then each edge is
    moved to a multiple of `rules.multiple` (at most two multiples from the exact length)
    and, of the pairs that keep every rule, the one whose aspect is closest wins, then the
    one whose pixel count is closest, then the smaller. A shape that already keeps every rule
    at its own pixel count comes back unchanged.
    """
    if width <= 0 or height <= 0:
        raise SizeError(f"size {width}x{height}: both edges must be positive")
    limit = Fraction(rules.max_ratio)
    aspect = min(max(Fraction(width, height), 1 / limit), limit)
    target = float(width * height if pixels is None else pixels)
    target = min(max(target, rules.min_pixels), rules.max_pixels)
    long_side = float(max(aspect, 1 / aspect))
    # The longest edge of the scaled shape is sqrt(target * long:short); cap it.
    target = min(target, rules.max_edge**2 / long_side)
    ideal_w, ideal_h = math.sqrt(target * aspect), math.sqrt(target / aspect)
    m = rules.multiple
    for reach in range(_SNAP_REACH, _SNAP_MAX_REACH + 1):
        found = [
            (cw, ch)
            for cw in _multiples_near(ideal_w, m, reach)
            for ch in _multiples_near(ideal_h, m, reach)
            if is_valid_flexible(cw, ch, rules)
        ]
        if found:
            return min(found, key=lambda wh: (_aspect_error(wh[0], wh[1], aspect),
                                              abs(wh[0] * wh[1] - target), wh))
    raise SizeError(f"no size of the model's rules is near {width}x{height}")


def _multiples_near(length: float, multiple: int, reach: int) -> range:
    lo, hi = math.floor(length / multiple), math.ceil(length / multiple)
    return range(max(1, lo - reach + 1) * multiple, (hi + reach) * multiple, multiple)


def nearest_listed(width: int, height: int, sizes: tuple[str, ...]) -> tuple[int, int]:
    """Of the `WxH` strings a model lists, the one nearest `width`x`height` in aspect, then
    in pixel count (then the first listed)."""
    aspect = Fraction(width, height)
    listed = [wh for wh in (parse_wxh(s) for s in sizes) if wh is not None]
    if not listed:
        raise SizeError("the model lists no sizes")
    return min(listed, key=lambda wh: (_aspect_error(wh[0], wh[1], aspect),
                                       abs(wh[0] * wh[1] - width * height)))
