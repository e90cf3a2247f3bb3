"""What a finished task is charged: the images that were delivered, at the tier and quality
they were delivered in, never more than the hold placed for what was asked.

An upstream may answer `n: 4` with two images, or a 2k request with a 1k image (a reseller
falling back to a cheaper model, a tier it does not have). The client must not pay for
what it did not get, so the charge is computed from the images themselves: each at the
catalog price of its own tier (and of the quality the upstream reports having made, where it
reports one), capped by the per-image price the hold was placed at. A bigger or better image
than asked for is still charged at the held price: the hold is the most a client agreed to.

Pure: the worker calls `bill_delivery` with the model's catalog entry and the images' sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from imagegate.domain.catalog import ModelSpec
from imagegate.domain.request import ImageRequest
from imagegate.domain.sizes import TIERS, table_sizes, tier_for_pixels

_TABLE_TIERS = table_sizes()  # built once: the exact sizes of the ratio table, by tier


def delivered_tier(width: int, height: int) -> str:
    """The tier an image of these pixels counts as: its table tier for an exact table size
    (2048x1152 is 2k there though its pixel count is 1k's), else by pixel count."""
    return _TABLE_TIERS.get((width, height)) or tier_for_pixels(width, height)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What was delivered and what it costs (micro-units)."""

    requested: int  # images asked for (`n`)
    sizes: tuple[tuple[int, int], ...]  # each delivered image's pixels
    tiers: tuple[str, ...]  # each delivered image's billed tier
    quality: str  # the quality billed
    charged: int

    @property
    def images(self) -> int:
        return len(self.sizes)

    @property
    def tier(self) -> str:
        """The highest tier delivered (what the ledger row names)."""
        return max(self.tiers, key=TIERS.index) if self.tiers else ""

    def memo(self, request: ImageRequest) -> str:
        """The ledger row's note: what was delivered, against what was asked."""
        made = ", ".join(f"{w}x{h} ({t})" for (w, h), t in zip(self.sizes, self.tiers,
                                                              strict=True))
        return (f"delivered {self.images} of {self.requested}: {made or 'nothing'}; "
                f"requested {request.width}x{request.height} ({request.tier}), "
                f"quality {self.quality}")

    def to_json(self) -> dict[str, Any]:
        """What the task's `result` records under `delivered`."""
        return {"images": self.images, "requested": self.requested,
                "sizes": [f"{w}x{h}" for w, h in self.sizes], "tiers": list(self.tiers),
                "quality": self.quality, "charged": self.charged}


def _catalog_price(spec: ModelSpec, tier: str, quality: str) -> int | None:
    """The catalog's price of one image, or None where the catalog names none for the
    tier (a missing entry must not make an image free)."""
    table = spec.quality_prices.get(quality, {})
    if tier in table:
        return table[tier]
    return spec.prices.get(tier)


def bill_delivery(spec: ModelSpec | None, request: ImageRequest,
                  sizes: list[tuple[int, int]], *, unit_price: int, hold: int,
                  reported_quality: str | None = None) -> Delivery:
    """The charge for `sizes` delivered against `request` (held at `unit_price` each)."""
    quality = request.quality
    if (spec is not None and reported_quality is not None
            and reported_quality in spec.qualities and reported_quality != "auto"):
        quality = reported_quality
    rank = TIERS.index(request.tier) if request.tier in TIERS else len(TIERS)
    tiers: list[str] = []
    charged = 0
    for width, height in sizes:
        asked = (width, height) == (request.width, request.height)
        tier = request.tier if asked else delivered_tier(width, height)
        tiers.append(tier)
        price = unit_price
        smaller = TIERS.index(tier) < rank
        if spec is not None and (smaller or quality != request.quality):
            listed = _catalog_price(spec, tier if smaller else request.tier, quality)
            if listed is not None:
                price = min(unit_price, listed)
        charged += price
    return Delivery(requested=request.n, sizes=tuple(sizes), tiers=tuple(tiers),
                    quality=quality, charged=min(hold, charged))
