"""The model catalog: which models exist and what each accepts (sizes, n, quality, …).

These numbers are data, not code: the defaults ship in `default_catalog.toml` and an operator
can replace or extend them with `catalog_file` in the settings.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from imagegate.domain.sizes import RATIO_TABLE, TIERS, FlexibleRules

SizeRule = Literal["flexible", "enumerated"]
# A model whose catalog entry names no `typical_seconds`: the 000 seed's 1k figure.
DEFAULT_TYPICAL_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    family: str
    size_rule: SizeRule
    default_size: str
    n_max: dict[str, int]  # per tier
    qualities: tuple[str, ...]
    default_quality: str
    output_formats: tuple[str, ...]
    transparent_background: bool
    styles: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()  # enumerated models: the exact `WxH` strings they accept
    max_references: int = 0
    max_prompt_chars: int = 32_000
    edits: bool = True
    # Whether the model makes variations of one input image (POST /v1/images/variations).
    variations: bool = False
    # The quality `quality: "auto"` produces (and bills) when no upstream reports its own:
    # every model accepts `auto` (003), but a response names what was made.
    auto_quality: str = "medium"
    # Whether `stream: true` (partial images) is offered: GPT image models only (003).
    streaming: bool = True
    # Whether results carry a `revised_prompt` (003: dall-e-3 only).
    revised_prompt: bool = False
    response_formats: tuple[str, ...] = ("url", "b64_json", "data_url")
    flexible: FlexibleRules = field(default_factory=FlexibleRules)
    description: str = ""
    # Price per image in micro-units of the configured currency, per tier; a quality's own
    # table (where quality changes the upstream's cost) overrides it. No price: free.
    prices: dict[str, int] = field(default_factory=dict)
    quality_prices: dict[str, dict[str, int]] = field(default_factory=dict)
    # Typical seconds one image of a tier takes upstream: what a task's `estimated_seconds`
    # says before this process has seen any task of the model finish.
    typical_seconds: dict[str, float] = field(default_factory=dict)

    def max_n(self, tier: str) -> int:
        return self.n_max.get(tier, 0)

    def price(self, tier: str, quality: str) -> int:
        """The price of one image of this tier and quality, in micro-units."""
        by_quality = self.quality_prices.get(quality, {})
        return by_quality.get(tier, self.prices.get(tier, 0))

    def typical(self, tier: str) -> float:
        """Typical seconds for `tier`; a tier the table leaves out takes the largest listed
        (a bigger image is never faster), and a model without a table the default."""
        if tier in self.typical_seconds:
            return self.typical_seconds[tier]
        return max(self.typical_seconds.values(), default=DEFAULT_TYPICAL_SECONDS)

    def to_public(self) -> dict[str, Any]:
        """The capability block `GET /v1/models` shows."""
        caps: dict[str, Any] = {
            "size_rule": self.size_rule,
            "default_size": self.default_size,
            "n_max": self.n_max,
            "qualities": list(self.qualities),
            "output_formats": list(self.output_formats),
            "transparent_background": self.transparent_background,
            "max_reference_images": self.max_references,
            "max_prompt_chars": self.max_prompt_chars,
            "edits": self.edits,
            "variations": self.variations,
            "streaming": self.streaming,
        }
        if self.prices or self.quality_prices:
            caps["pricing"] = {
                "per_image": {t: _decimal_text(v) for t, v in self.prices.items()},
                "per_image_by_quality": {
                    q: {t: _decimal_text(v) for t, v in table.items()}
                    for q, table in self.quality_prices.items()
                },
            }
        if self.sizes:
            caps["sizes"] = list(self.sizes)
        if self.styles:
            caps["styles"] = list(self.styles)
        if self.size_rule == "flexible":
            caps["ratios_and_tiers"] = True
            # The pixels each ratio × offered tier resolves to, so a client (the playground)
            # shows them without a copy of the table.
            offered = [t for t in TIERS if self.max_n(t) >= 1]
            caps["ratio_sizes"] = {
                ratio: {t: f"{w}x{h}" for t, (w, h) in tiers.items() if t in offered}
                for ratio, tiers in RATIO_TABLE.items()
            }
            r = self.flexible
            caps["wxh_rules"] = {
                "multiple_of": r.multiple,
                "max_edge": r.max_edge,
                "max_ratio": r.max_ratio,
                "min_pixels": r.min_pixels,
                "max_pixels": r.max_pixels,
            }
        return caps


class CatalogError(ValueError):
    """The catalog file is malformed; raised at start-up, never per request."""


@dataclass(frozen=True, slots=True)
class Catalog:
    models: dict[str, ModelSpec]
    default_model: str

    def get(self, name: str) -> ModelSpec | None:
        return self.models.get(name)

    def names(self) -> list[str]:
        return list(self.models)


def _decimal_text(micros: int) -> str:
    return format(Decimal(micros) / 1_000_000, "f")


def _price_table(value: Any, key: str, model: str) -> dict[str, int]:
    """`{"1k" = "0.04", ...}` (strings or numbers) -> micro-units per tier."""
    if not isinstance(value, dict):
        raise CatalogError(f"model {model!r}: {key} must be a table of tier = price")
    out: dict[str, int] = {}
    for tier, price in value.items():
        if tier not in TIERS:
            raise CatalogError(f"model {model!r}: {key} keys must be among {TIERS}")
        try:
            amount = Decimal(str(price)) * 1_000_000
        except InvalidOperation:
            raise CatalogError(f"model {model!r}: {key}.{tier} is not a number") from None
        if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
            raise CatalogError(
                f"model {model!r}: {key}.{tier} must be >= 0 with at most 6 decimals"
            )
        out[str(tier)] = int(amount)
    return out


def _seconds_table(value: Any, model: str) -> dict[str, float]:
    """`{"1k" = 60, "2k" = 120}` -> seconds per tier (positive numbers)."""
    if not isinstance(value, dict):
        raise CatalogError(f"model {model!r}: typical_seconds must be a table of tier = seconds")
    out: dict[str, float] = {}
    for tier, seconds in value.items():
        if tier not in TIERS:
            raise CatalogError(f"model {model!r}: typical_seconds keys must be among {TIERS}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise CatalogError(f"model {model!r}: typical_seconds.{tier} must be a number > 0")
        out[str(tier)] = float(seconds)
    return out


def _tuple(value: Any, key: str, model: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"model {model!r}: {key} must be a list of strings")
    return tuple(value)


def _auto_quality(merged: dict[str, Any], qualities: tuple[str, ...], model: str) -> str:
    """What `auto` means for a model: `auto_quality` when set (one of its qualities, not
    `auto`), else its `default_quality` unless that is `auto`, else `medium`."""
    if "auto_quality" in merged:
        value = str(merged["auto_quality"])
        if value == "auto" or value not in qualities:
            raise CatalogError(f"model {model!r}: auto_quality must be one of its qualities "
                               "other than auto")
        return value
    default = str(merged["default_quality"])
    return default if default != "auto" else "medium"


def _spec(name: str, raw: Any, families: dict[str, dict[str, Any]]) -> ModelSpec:
    if not isinstance(raw, dict):
        raise CatalogError(f"model {name!r}: expected a table of settings")
    merged: dict[str, Any] = {}
    family = raw.get("family", name)
    merged.update(families.get(family, {}))
    merged.update(raw)
    try:
        rule = merged["size_rule"]
        if rule not in ("flexible", "enumerated"):
            raise CatalogError(f"model {name!r}: size_rule must be flexible or enumerated")
        n_max = {str(k): int(v) for k, v in dict(merged["n_max"]).items()}
        if not set(n_max) <= set(TIERS):
            raise CatalogError(f"model {name!r}: n_max keys must be among {TIERS}")
        flex = merged.get("wxh_rules", {})
        qualities = _tuple(merged["qualities"], "qualities", name)
        return ModelSpec(
            name=name,
            family=str(family),
            size_rule=rule,
            default_size=str(merged["default_size"]),
            n_max=n_max,
            qualities=qualities,
            default_quality=str(merged["default_quality"]),
            output_formats=_tuple(merged["output_formats"], "output_formats", name),
            transparent_background=bool(merged["transparent_background"]),
            styles=_tuple(merged.get("styles", []), "styles", name),
            sizes=_tuple(merged.get("sizes", []), "sizes", name),
            max_references=int(merged.get("max_references", 0)),
            max_prompt_chars=int(merged.get("max_prompt_chars", 32_000)),
            edits=bool(merged.get("edits", True)),
            variations=bool(merged.get("variations", False)),
            auto_quality=_auto_quality(merged, qualities, name),
            streaming=bool(merged.get("streaming", True)),
            revised_prompt=bool(merged.get("revised_prompt", False)),
            response_formats=_tuple(
                merged.get("response_formats", ["url", "b64_json", "data_url"]),
                "response_formats",
                name,
            ),
            flexible=FlexibleRules(**flex),
            description=str(merged.get("description", "")),
            prices=_price_table(merged.get("prices", {}), "prices", name),
            quality_prices={
                str(q): _price_table(table, f"quality_prices.{q}", name)
                for q, table in dict(merged.get("quality_prices", {})).items()
            },
            typical_seconds=_seconds_table(merged.get("typical_seconds", {}), name),
        )
    except KeyError as exc:
        raise CatalogError(f"model {name!r}: missing {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CatalogError):
            raise
        raise CatalogError(f"model {name!r}: {exc}") from exc


def parse_catalog(data: dict[str, Any]) -> Catalog:
    families = data.get("families", {})
    raw_models = data.get("models", {})
    if not raw_models:
        raise CatalogError("the catalog defines no models")
    models = {name: _spec(name, raw, families) for name, raw in raw_models.items()}
    default = str(data.get("default_model", next(iter(models))))
    if default not in models:
        raise CatalogError(f"default_model {default!r} is not in the catalog")
    return Catalog(models=models, default_model=default)


def load_catalog(path: Path | None = None) -> Catalog:
    """The packaged default catalog, or the operator's file when one is configured."""
    if path is None:
        text = resources.files("imagegate.domain").joinpath("default_catalog.toml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog {path or 'default'}: {exc}") from exc
    return parse_catalog(data)
