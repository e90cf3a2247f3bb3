"""Size resolution: ratio × tier → pixels, and the `WxH` rules (DESIGN §2).

Pure functions over plain data; the catalog decides which rule a model uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
