"""The model catalog: the packaged default, parsing, family inheritance and its errors."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from imagegate.domain.catalog import (
    Catalog,
    CatalogError,
    ModelSpec,
    load_catalog,
    parse_catalog,
)
from imagegate.domain.sizes import FlexibleRules

EIGHT_MODELS = {
    "gpt-image-2",
    "gpt-image-2-pro",
    "gpt-image-2-2026-04-21",
    "gpt-image-1.5",
    "gpt-image-1",
    "gpt-image-1-mini",
    "dall-e-3",
    "dall-e-2",
}
GPT_IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536")
GPT_QUALITIES = ("auto", "low", "medium", "high")
ALL_FORMATS = ("png", "jpeg", "webp")

# What default_catalog.toml says, written out literally.
EXPECTED: dict[str, dict[str, Any]] = {
    "gpt-image-2": dict(
        family="gpt-image-2",
        size_rule="flexible",
        default_size="1:1",
        sizes=(),
        n_max={"1k": 10, "2k": 4, "4k": 4},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=False,
        styles=(),
        max_references=9,
        max_prompt_chars=32000,
        edits=True,
    ),
    "gpt-image-2-pro": dict(
        family="gpt-image-2",
        size_rule="flexible",
        default_size="1:1",
        sizes=(),
        n_max={"1k": 10, "2k": 4, "4k": 4},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=False,
        styles=(),
        max_references=16,
        max_prompt_chars=32000,
        edits=True,
    ),
    "gpt-image-2-2026-04-21": dict(
        family="gpt-image-2",
        size_rule="flexible",
        default_size="1:1",
        sizes=(),
        n_max={"1k": 10, "2k": 10, "4k": 10},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=False,
        styles=(),
        max_references=16,
        max_prompt_chars=32000,
        edits=True,
    ),
    "gpt-image-1.5": dict(
        family="gpt-image",
        size_rule="enumerated",
        default_size="1024x1024",
        sizes=GPT_IMAGE_SIZES,
        n_max={"1k": 10},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=True,
        styles=(),
        max_references=16,
        max_prompt_chars=32000,
        edits=True,
    ),
    "gpt-image-1": dict(
        family="gpt-image",
        size_rule="enumerated",
        default_size="1024x1024",
        sizes=GPT_IMAGE_SIZES,
        n_max={"1k": 10},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=True,
        styles=(),
        max_references=16,
        max_prompt_chars=32000,
        edits=True,
    ),
    "gpt-image-1-mini": dict(
        family="gpt-image",
        size_rule="enumerated",
        default_size="1024x1024",
        sizes=GPT_IMAGE_SIZES,
        n_max={"1k": 10},
        qualities=GPT_QUALITIES,
        default_quality="auto",
        auto_quality="medium",
        streaming=True,
        revised_prompt=False,
        output_formats=ALL_FORMATS,
        transparent_background=True,
        styles=(),
        max_references=16,
        max_prompt_chars=32000,
        edits=True,
    ),
    "dall-e-3": dict(
        family="dall-e-3",
        size_rule="enumerated",
        default_size="1024x1024",
        sizes=("1024x1024", "1792x1024", "1024x1792"),
        n_max={"1k": 1},
        qualities=("auto", "standard", "hd"),
        default_quality="standard",
        auto_quality="standard",
        streaming=False,
        revised_prompt=True,
        output_formats=("png",),
        transparent_background=False,
        styles=("vivid", "natural"),
        max_references=0,
        max_prompt_chars=4000,
        edits=False,
    ),
    "dall-e-2": dict(
        family="dall-e-2",
        size_rule="enumerated",
        default_size="1024x1024",
        sizes=("256x256", "512x512", "1024x1024"),
        n_max={"1k": 10},
        qualities=("auto", "standard"),
        default_quality="standard",
        auto_quality="standard",
        streaming=False,
        revised_prompt=False,
        output_formats=("png",),
        transparent_background=False,
        styles=(),
        max_references=1,
        max_prompt_chars=1000,
        edits=True,
        variations=True,
    ),
}

REQUIRED_KEYS = (
    "size_rule",
    "default_size",
    "n_max",
    "qualities",
    "default_quality",
    "output_formats",
    "transparent_background",
)


def minimal_model(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "size_rule": "flexible",
        "default_size": "1:1",
        "n_max": {"1k": 1, "2k": 2, "4k": 3},
        "qualities": ["auto"],
        "default_quality": "auto",
        "output_formats": ["png"],
        "transparent_background": False,
    }
    raw.update(overrides)
    return raw


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --------------------------------------------------------------------------- packaged default


def test_default_catalog_has_the_eight_models(catalog: Catalog) -> None:
    assert set(catalog.names()) == EIGHT_MODELS
    assert len(catalog.models) == 8
    assert catalog.default_model == "gpt-image-2"
    assert catalog.get("gpt-image-2") is catalog.models["gpt-image-2"]
    assert catalog.get("gpt-image-3") is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_default_catalog_model_values(catalog: Catalog, name: str) -> None:
    spec = catalog.models[name]
    assert spec.name == name
    for key, value in EXPECTED[name].items():
        assert getattr(spec, key) == value, key
    assert spec.flexible == FlexibleRules()
    assert spec.response_formats == ("url", "b64_json", "data_url")
    assert spec.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("tier", ["1k", "2k", "4k"])
def test_max_n_per_tier(catalog: Catalog, name: str, tier: str) -> None:
    assert catalog.models[name].max_n(tier) == EXPECTED[name]["n_max"].get(tier, 0)


def test_gpt_image_2_overrides_its_family(catalog: Catalog) -> None:
    # The family says 16 references, the model entry says 9 (the 000 seed's limit).
    assert catalog.models["gpt-image-2"].max_references == 9
    assert catalog.models["gpt-image-2-pro"].max_references == 16
    # The dated snapshot overrides n_max only.
    dated = catalog.models["gpt-image-2-2026-04-21"]
    assert dated.n_max == {"1k": 10, "2k": 10, "4k": 10}
    assert dated.max_references == 16


def test_to_public_flexible(catalog: Catalog) -> None:
    caps = catalog.models["gpt-image-2"].to_public()
    assert caps["size_rule"] == "flexible"
    assert caps["ratios_and_tiers"] is True
    assert caps["wxh_rules"] == {
        "multiple_of": 16,
        "max_edge": 3840,
        "max_ratio": 3.0,
        "min_pixels": 655_360,
        "max_pixels": 8_294_400,
    }
    assert caps["max_reference_images"] == 9
    assert caps["n_max"] == {"1k": 10, "2k": 4, "4k": 4}
    # Each ratio's pixels at each offered tier, from the size table.
    assert caps["ratio_sizes"]["16:9"] == {"1k": "1536x864", "2k": "2048x1152",
                                           "4k": "3840x2160"}
    assert caps["ratio_sizes"]["9:16"]["2k"] == "1152x2048"
    assert "sizes" not in caps
    assert "styles" not in caps


def test_to_public_enumerated(catalog: Catalog) -> None:
    caps = catalog.models["dall-e-3"].to_public()
    assert caps["size_rule"] == "enumerated"
    assert caps["sizes"] == ["1024x1024", "1792x1024", "1024x1792"]
    assert caps["styles"] == ["vivid", "natural"]
    assert caps["edits"] is False
    assert caps["variations"] is False
    assert caps["max_prompt_chars"] == 4000
    assert "wxh_rules" not in caps
    assert "ratios_and_tiers" not in caps
    assert "ratio_sizes" not in caps


def test_model_spec_is_frozen(catalog: Catalog) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.models["gpt-image-2"].max_references = 99  # type: ignore[misc]


def test_load_catalog_from_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        'default_model = "b"\n'
        "[families.f]\n"
        'size_rule = "enumerated"\n'
        'default_size = "512x512"\n'
        'sizes = ["512x512"]\n'
        'n_max = { "1k" = 2 }\n'
        'qualities = ["standard"]\n'
        'default_quality = "standard"\n'
        'output_formats = ["png"]\n'
        "transparent_background = false\n"
        "[models.a]\n"
        'family = "f"\n'
        "[models.b]\n"
        'family = "f"\n'
        "max_prompt_chars = 10\n",
        encoding="utf-8",
    )
    cat = load_catalog(path)
    assert cat.names() == ["a", "b"]
    assert cat.default_model == "b"
    assert cat.models["a"].max_prompt_chars == 32_000
    assert cat.models["b"].max_prompt_chars == 10
    assert cat.models["b"].sizes == ("512x512",)


def test_load_catalog_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[models\nnope", encoding="utf-8")
    with pytest.raises(CatalogError):
        load_catalog(path)


# --------------------------------------------------------------------------- parse_catalog


def test_parse_minimal_catalog_defaults() -> None:
    cat = parse_catalog({"models": {"m": minimal_model()}})
    assert cat.default_model == "m"  # the first model when none is named
    spec = cat.models["m"]
    assert isinstance(spec, ModelSpec)
    assert spec.family == "m"  # no family key: the model is its own family
    assert spec.sizes == ()
    assert spec.styles == ()
    assert spec.max_references == 0
    assert spec.max_prompt_chars == 32_000
    assert spec.edits is True
    assert spec.variations is False
    assert spec.response_formats == ("url", "b64_json", "data_url")
    assert spec.flexible == FlexibleRules()
    assert spec.description == ""
    # auto_quality: the default quality unless that is auto, else medium; a model streams
    # and does not revise prompts unless its entry says otherwise.
    assert spec.auto_quality == "medium"
    assert spec.streaming is True and spec.revised_prompt is False


def test_auto_quality_streaming_and_revised_prompt_keys() -> None:
    cat = parse_catalog({"models": {
        "std": minimal_model(qualities=["standard", "hd"], default_quality="hd"),
        "set": minimal_model(qualities=["auto", "low", "high"], auto_quality="high",
                             streaming=False, revised_prompt=True),
    }})
    assert cat.models["std"].auto_quality == "hd"  # its default, which is not auto
    spec = cat.models["set"]
    assert (spec.auto_quality, spec.streaming, spec.revised_prompt) == ("high", False, True)
    assert spec.to_public()["streaming"] is False
    default = load_catalog()
    assert [n for n, s in default.models.items() if not s.streaming] == ["dall-e-3", "dall-e-2"]
    assert [n for n, s in default.models.items() if s.revised_prompt] == ["dall-e-3"]


@pytest.mark.parametrize("value", ["auto", "ultra"])
def test_auto_quality_must_be_a_concrete_quality_of_the_model(value: str) -> None:
    with pytest.raises(CatalogError, match="auto_quality"):
        parse_catalog({"models": {"m": minimal_model(qualities=["auto", "low"],
                                                     auto_quality=value)}})


def test_variations_only_where_the_catalog_says() -> None:
    default = load_catalog()
    assert [n for n, s in default.models.items() if s.variations] == ["dall-e-2"]
    assert default.models["dall-e-2"].to_public()["variations"] is True
    cat = parse_catalog({"families": {"f": minimal_model(variations=True)},
                         "models": {"a": {"family": "f"},
                                    "b": {"family": "f", "variations": False}}})
    assert (cat.models["a"].variations, cat.models["b"].variations) == (True, False)


def test_default_model_is_the_first_listed() -> None:
    cat = parse_catalog({"models": {"z": minimal_model(), "a": minimal_model()}})
    assert cat.default_model == "z"
    assert cat.names() == ["z", "a"]


def test_model_inherits_from_family_and_overrides() -> None:
    data = {
        "families": {
            "fam": minimal_model(
                max_references=4,
                qualities=["low", "high"],
                default_quality="low",
                description="family text",
            )
        },
        "models": {
            "plain": {"family": "fam"},
            "custom": {
                "family": "fam",
                "max_references": 2,
                "n_max": {"1k": 7},
                "output_formats": ["png", "webp"],
                "wxh_rules": {"max_edge": 2048},
                "description": "mine",
            },
        },
    }
    cat = parse_catalog(data)
    plain, custom = cat.models["plain"], cat.models["custom"]
    assert plain.family == custom.family == "fam"
    assert plain.max_references == 4
    assert plain.qualities == custom.qualities == ("low", "high")
    assert plain.n_max == {"1k": 1, "2k": 2, "4k": 3}
    assert plain.description == "family text"
    assert custom.max_references == 2
    assert custom.n_max == {"1k": 7}  # replaced wholesale, not merged
    assert custom.max_n("2k") == 0
    assert custom.output_formats == ("png", "webp")
    assert custom.flexible == FlexibleRules(max_edge=2048)
    assert custom.description == "mine"


def test_parse_does_not_mutate_input() -> None:
    data = {"families": {"fam": minimal_model()}, "models": {"m": {"family": "fam"}}}
    before = copy.deepcopy(data)
    parse_catalog(data)
    assert data == before


@pytest.mark.parametrize("data", [{}, {"models": {}}, {"families": {"f": minimal_model()}}])
def test_no_models(data: dict[str, Any]) -> None:
    with pytest.raises(CatalogError, match="no models"):
        parse_catalog(data)


@pytest.mark.parametrize("rule", ["fixed", "FLEXIBLE", "", "ratio"])
def test_unknown_size_rule(rule: str) -> None:
    with pytest.raises(CatalogError, match="size_rule"):
        parse_catalog({"models": {"m": minimal_model(size_rule=rule)}})


@pytest.mark.parametrize("default", ["nope", "", "M"])
def test_bad_default_model(default: str) -> None:
    with pytest.raises(CatalogError, match="default_model"):
        parse_catalog({"default_model": default, "models": {"m": minimal_model()}})


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_key(key: str) -> None:
    raw = minimal_model()
    del raw[key]
    with pytest.raises(CatalogError, match=key):
        parse_catalog({"models": {"m": raw}})


def test_missing_key_with_unknown_family() -> None:
    with pytest.raises(CatalogError, match="missing"):
        parse_catalog({"models": {"m": {"family": "does-not-exist"}}})


@pytest.mark.parametrize(
    "override",
    [
        {"n_max": {"8k": 1}},
        {"n_max": {"1k": "many"}},
        {"n_max": [1, 2]},
        {"qualities": "auto"},
        {"qualities": ["auto", 3]},
        {"output_formats": "png"},
        {"styles": "vivid"},
        {"sizes": [1024]},
        {"response_formats": "url"},
        {"wxh_rules": {"max_side": 100}},
        {"max_references": "lots"},
    ],
    ids=lambda o: next(iter(o)),
)
def test_malformed_values(override: dict[str, Any]) -> None:
    with pytest.raises(CatalogError):
        parse_catalog({"models": {"m": minimal_model(**override)}})


def test_typical_seconds_per_tier() -> None:
    """What `estimated_seconds` starts from: the 000 seed's 1/2/3 minutes for gpt-image-2."""
    catalog = load_catalog()
    spec = catalog.models["gpt-image-2"]
    assert [spec.typical(t) for t in ("1k", "2k", "4k")] == [60, 120, 180]
    assert catalog.models["dall-e-2"].typical("1k") == 10
    # Unlisted tier: the largest listed figure; no table at all: the default.
    assert catalog.models["gpt-image-1"].typical("4k") == 45
    raw = minimal_model()
    assert parse_catalog({"models": {"m": raw}}).models["m"].typical("1k") == 60


@pytest.mark.parametrize("value", [{"8k": 10}, {"1k": 0}, {"1k": -5}, {"1k": "60"},
                                   {"1k": True}, [60]])
def test_bad_typical_seconds(value: Any) -> None:
    raw = {**minimal_model(), "typical_seconds": value}
    with pytest.raises(CatalogError, match="typical_seconds"):
        parse_catalog({"models": {"m": raw}})
