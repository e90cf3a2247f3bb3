"""Size resolution (DESIGN §2): the ratio x tier table, `WxH` rules, tier inference.

The expected pixels are written out literally from DESIGN §2 / the 002 seed's table; nothing
here is derived from the code under test.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.domain.catalog import ModelSpec, load_catalog, parse_catalog
from imagegate.domain.normalize import resolve_size, size_for_reference
from imagegate.domain.sizes import (
    RATIO_TABLE,
    RATIOS,
    TIER_PIXELS,
    TIERS,
    FlexibleRules,
    SizeError,
    check_flexible,
    nearest_listed,
    parse_wxh,
    resolve_ratio,
    snap_flexible,
    table_sizes,
    tier_for_pixels,
)

CATALOG = load_catalog()
GPT2 = CATALOG.models["gpt-image-2"]
FLEXIBLE_MODELS = ("gpt-image-2", "gpt-image-2-pro", "gpt-image-2-2026-04-21")

# DESIGN §2, written out in full: (ratio, tier) -> (width, height). Portrait ratios swap.
DESIGN_TABLE: dict[tuple[str, str], tuple[int, int]] = {
    ("1:1", "1k"): (1024, 1024),
    ("1:1", "2k"): (2048, 2048),
    ("1:1", "4k"): (2880, 2880),
    ("3:2", "1k"): (1536, 1024),
    ("3:2", "2k"): (2048, 1360),
    ("3:2", "4k"): (3520, 2336),
    ("2:3", "1k"): (1024, 1536),
    ("2:3", "2k"): (1360, 2048),
    ("2:3", "4k"): (2336, 3520),
    ("4:3", "1k"): (1024, 768),
    ("4:3", "2k"): (2048, 1536),
    ("4:3", "4k"): (3312, 2480),
    ("3:4", "1k"): (768, 1024),
    ("3:4", "2k"): (1536, 2048),
    ("3:4", "4k"): (2480, 3312),
    ("5:4", "1k"): (1280, 1024),
    ("5:4", "2k"): (2560, 2048),
    ("5:4", "4k"): (3216, 2576),
    ("4:5", "1k"): (1024, 1280),
    ("4:5", "2k"): (2048, 2560),
    ("4:5", "4k"): (2576, 3216),
    ("16:9", "1k"): (1536, 864),
    ("16:9", "2k"): (2048, 1152),
    ("16:9", "4k"): (3840, 2160),
    ("9:16", "1k"): (864, 1536),
    ("9:16", "2k"): (1152, 2048),
    ("9:16", "4k"): (2160, 3840),
    ("2:1", "1k"): (2048, 1024),
    ("2:1", "2k"): (2688, 1344),
    ("2:1", "4k"): (3840, 1920),
    ("1:2", "1k"): (1024, 2048),
    ("1:2", "2k"): (1344, 2688),
    ("1:2", "4k"): (1920, 3840),
    ("3:1", "1k"): (1536, 512),
    ("3:1", "2k"): (3072, 1024),
    ("3:1", "4k"): (3840, 1280),
    ("1:3", "1k"): (512, 1536),
    ("1:3", "2k"): (1024, 3072),
    ("1:3", "4k"): (1280, 3840),
    ("21:9", "1k"): (2016, 864),
    ("21:9", "2k"): (2688, 1152),
    ("21:9", "4k"): (3840, 1648),
    ("9:21", "1k"): (864, 2016),
    ("9:21", "2k"): (1152, 2688),
    ("9:21", "4k"): (1648, 3840),
}
FIFTEEN_RATIOS = {
    "1:1",
    "3:2",
    "2:3",
    "4:3",
    "3:4",
    "5:4",
    "4:5",
    "16:9",
    "9:16",
    "2:1",
    "1:2",
    "3:1",
    "1:3",
    "21:9",
    "9:21",
}
# The other 1k variants the 002 seed's table lists; it says table pixel sizes may be sent as
# `size` directly, so they are accepted even where an edge is not a multiple of 16.
SEED_1K_VARIANTS = (
    "1254x1254",
    "1448x1086",
    "1122x1402",
    "1672x941",
    "941x1672",
    "1774x887",
    "887x1774",
    "1881x836",
    "1915x821",
    "821x1915",
)
TABLE_ITEMS = sorted(DESIGN_TABLE.items())


def _ids(items: list[tuple[tuple[str, str], tuple[int, int]]]) -> list[str]:
    return [f"{r}@{t}" for (r, t), _ in items]


# --------------------------------------------------------------------------- the table


def test_design_table_literal_is_complete() -> None:
    assert len(DESIGN_TABLE) == 45
    assert {r for r, _ in DESIGN_TABLE} == FIFTEEN_RATIOS


def test_code_knows_exactly_the_fifteen_ratios_and_three_tiers() -> None:
    assert set(RATIOS) == FIFTEEN_RATIOS
    assert len(RATIOS) == 15
    assert set(RATIO_TABLE) == FIFTEEN_RATIOS
    assert TIERS == ("1k", "2k", "4k")


@pytest.mark.parametrize(("key", "pixels"), TABLE_ITEMS, ids=_ids(TABLE_ITEMS))
def test_resolve_ratio_matches_design_table(key: tuple[str, str], pixels: tuple[int, int]) -> None:
    ratio, tier = key
    assert resolve_ratio(ratio, tier) == pixels
    assert RATIO_TABLE[ratio][tier] == pixels


@pytest.mark.parametrize("model", FLEXIBLE_MODELS)
@pytest.mark.parametrize(("key", "pixels"), TABLE_ITEMS, ids=_ids(TABLE_ITEMS))
def test_resolve_size_ratio_and_tier(
    model: str, key: tuple[str, str], pixels: tuple[int, int]
) -> None:
    ratio, tier = key
    spec = CATALOG.models[model]
    assert resolve_size(spec, ratio, tier) == (*pixels, tier)


@pytest.mark.parametrize(("key", "pixels"), TABLE_ITEMS, ids=_ids(TABLE_ITEMS))
def test_table_pixels_sent_as_wxh_keep_their_table_tier(
    key: tuple[str, str], pixels: tuple[int, int]
) -> None:
    _, tier = key
    w, h = pixels
    assert resolve_size(GPT2, f"{w}x{h}", None) == (w, h, tier)
    assert table_sizes()[(w, h)] == tier


@pytest.mark.parametrize(("key", "pixels"), TABLE_ITEMS, ids=_ids(TABLE_ITEMS))
def test_every_table_entry_obeys_the_wxh_rules(
    key: tuple[str, str], pixels: tuple[int, int]
) -> None:
    w, h = pixels
    assert w % 16 == 0 and h % 16 == 0
    assert max(w, h) <= 3840
    assert max(w, h) <= 3 * min(w, h)
    assert 655_360 <= w * h <= 8_294_400
    check_flexible(w, h, FlexibleRules())  # does not raise


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [("1:1", (1024, 1024)), ("16:9", (1536, 864)), ("9:21", (864, 2016)), ("3:1", (1536, 512))],
)
def test_ratio_without_resolution_is_1k(ratio: str, expected: tuple[int, int]) -> None:
    assert resolve_size(GPT2, ratio, None) == (*expected, "1k")


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        (None, (1024, 1024, "1k")),
        ("1k", (1024, 1024, "1k")),
        ("2k", (2048, 2048, "2k")),
        ("4k", (2880, 2880, "4k")),
    ],
)
@pytest.mark.parametrize("auto", ["auto", "AUTO", " Auto "])
def test_auto_means_one_to_one(
    auto: str, resolution: str | None, expected: tuple[int, int, str]
) -> None:
    assert resolve_size(GPT2, auto, resolution) == expected


@pytest.mark.parametrize("model", FLEXIBLE_MODELS)
@pytest.mark.parametrize("size", [None, "", "   "])
def test_no_size_is_the_model_default(model: str, size: str | None) -> None:
    spec = CATALOG.models[model]
    assert spec.default_size == "1:1"
    assert resolve_size(spec, size, None) == (1024, 1024, "1k")


@pytest.mark.parametrize(
    ("resolution", "expected"),
    [
        ("1k", (1024, 1024, "1k")),
        ("2k", (2048, 2048, "2k")),
        ("4k", (2880, 2880, "4k")),
        ("2K", (2048, 2048, "2k")),
        (" 4k ", (2880, 2880, "4k")),
    ],
)
def test_resolution_without_size_uses_default_ratio(
    resolution: str, expected: tuple[int, int, str]
) -> None:
    assert resolve_size(GPT2, None, resolution) == expected


@pytest.mark.parametrize(
    ("size", "resolution", "expected"),
    [("16:9", "2K", (2048, 1152, "2k")), (" 21:9 ", "4k", (3840, 1648, "4k"))],
)
def test_ratio_and_resolution_are_trimmed_and_case_folded(
    size: str, resolution: str, expected: tuple[int, int, str]
) -> None:
    assert resolve_size(GPT2, size, resolution) == expected


@pytest.mark.parametrize("resolution", ["8k", "hd", "2", "1080p", "k"])
@pytest.mark.parametrize("size", [None, "1:1", "1024x1024"])
def test_unknown_resolution_refused(size: str | None, resolution: str) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(GPT2, size, resolution)
    assert ei.value.param == "resolution"
    assert "1k, 2k, 4k" in str(ei.value)


@pytest.mark.parametrize("ratio", ["7:5", "1:4", "4:1", "0:0", "16:10", "2:2"])
def test_unknown_ratio_refused(ratio: str) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(GPT2, ratio, "1k")
    assert ei.value.param == "size"


def test_tier_the_model_lacks_is_refused_for_ratios() -> None:
    catalog = parse_catalog(
        {
            "models": {
                "small": {
                    "size_rule": "flexible",
                    "default_size": "1:1",
                    "n_max": {"1k": 2},
                    "qualities": ["auto"],
                    "default_quality": "auto",
                    "output_formats": ["png"],
                    "transparent_background": False,
                }
            }
        }
    )
    spec = catalog.models["small"]
    assert resolve_size(spec, "1:1", "1k") == (1024, 1024, "1k")
    with pytest.raises(SizeError) as ei:
        resolve_size(spec, "1:1", "4k")
    assert ei.value.param == "resolution"
    assert "4k" in str(ei.value)


# --------------------------------------------------------------------------- WxH parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1024x1024", (1024, 1024)),
        ("1024X1024", (1024, 1024)),
        ("1024×1024", (1024, 1024)),
        ("1536x864", (1536, 864)),
        (" 1024 x 768 ", (1024, 768)),
        ("1024*1024", (1024, 1024)),
        ("0x0", (0, 0)),
    ],
)
def test_parse_wxh_forms(text: str, expected: tuple[int, int]) -> None:
    assert parse_wxh(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "big",
        "-5x10",
        "10x",
        "x10",
        "",
        "   ",
        "1024",
        "1024x1024x3",
        "1.5x2",
        "10 10",
        "123456x10",
        "axb",
        "1024x-1024",
        # Only ASCII digits in canonical form (domain/numbers.py).
        "１０２４x１０２４",
        "𝟏𝟎𝟐𝟒x𝟏𝟎𝟐𝟒",
        "01024x1024",
        "1024x0768",
        "+1024x1024",
        "1_024x1024",
    ],
)
def test_parse_wxh_garbage(text: str) -> None:
    assert parse_wxh(text) is None


@pytest.mark.parametrize("size", ["1024x1024", "1024X1024", "1024×1024", " 1024 x 1024 "])
def test_wxh_spellings_resolve_alike(size: str) -> None:
    assert resolve_size(GPT2, size, None) == (1024, 1024, "1k")


@pytest.mark.parametrize(
    "size", ["big", "0x0", "0x1024", "1024x0", "-5x10", "10x", "x10", "1024", "1:1:1", "square"]
)
@pytest.mark.parametrize("model", [*FLEXIBLE_MODELS, "gpt-image-1", "dall-e-2"])
def test_garbage_size_refused(model: str, size: str) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(CATALOG.models[model], size, None)
    assert ei.value.param == "size"


def test_empty_size_is_treated_as_absent() -> None:
    # Judgement call kept from the code: "" (like any other empty optional field) means
    # "not sent", so it resolves to the model default instead of a 400.
    assert resolve_size(GPT2, "", None) == (1024, 1024, "1k")
    assert resolve_size(CATALOG.models["dall-e-3"], "", None) == (1024, 1024, "1k")


# --------------------------------------------------------------------------- WxH rules


@pytest.mark.parametrize(
    ("size", "tier"),
    [
        ("1024x640", "1k"),  # exactly the minimum pixel count, 655 360
        ("640x1024", "1k"),
        ("3600x2304", "4k"),  # exactly the maximum pixel count, 8 294 400 (not a table size)
        ("2304x3600", "4k"),
        ("2880x2880", "4k"),  # table size at the maximum
        ("3840x2160", "4k"),
        ("2400x800", "1k"),  # exactly 3:1, free size
        ("800x2400", "1k"),
        ("3840x1280", "4k"),  # exactly 3:1 and the longest edge
        ("1280x3840", "4k"),
        ("3840x2144", "4k"),  # longest edge exactly 3840, free size
        ("2144x3840", "4k"),
        ("1040x1040", "1k"),
        ("1920x1088", "1k"),
        ("2048x1024", "1k"),
    ],
)
@pytest.mark.parametrize("model", FLEXIBLE_MODELS)
def test_wxh_accepted_at_the_boundaries(model: str, size: str, tier: str) -> None:
    w, h = (int(x) for x in size.split("x"))
    assert resolve_size(CATALOG.models[model], size, None) == (w, h, tier)


@pytest.mark.parametrize(
    ("size", "why"),
    [
        ("1032x1024", "multiples of 16"),
        ("1024x1000", "multiples of 16"),
        ("1025x1025", "multiples of 16"),
        ("1024x1016", "multiples of 16"),
        ("3856x1296", "at most 3840"),  # ratio 2.98 and pixel count fine; only the edge is off
        ("1296x3856", "at most 3840"),
        ("4000x4000", "at most 3840"),
        ("3840x1264", "ratio"),  # just over 3:1 (3.04)
        ("1264x3840", "ratio"),
        ("2400x784", "ratio"),  # 3.06
        ("784x2400", "ratio"),
        ("2048x512", "ratio"),  # 4:1
        ("1024x624", "pixels"),  # 638 976 < 655 360
        ("1008x640", "pixels"),  # 645 120
        ("640x1008", "pixels"),
        ("512x512", "pixels"),
        ("256x256", "pixels"),
        ("3616x2304", "pixels"),  # 8 331 264 > 8 294 400
        ("2304x3616", "pixels"),
        ("2896x2896", "pixels"),
    ],
)
@pytest.mark.parametrize("model", FLEXIBLE_MODELS)
def test_wxh_refused_at_the_boundaries(model: str, size: str, why: str) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(CATALOG.models[model], size, None)
    assert ei.value.param == "size"
    assert why in str(ei.value)


@pytest.mark.parametrize(
    ("w", "h", "why"),
    [
        (0, 1024, "positive"),
        (1024, 0, "positive"),
        (-16, 1024, "positive"),
        (1030, 1024, "multiples of 16"),
        (3856, 1296, "at most 3840"),
        (3840, 1264, "ratio"),
        (1024, 624, "pixels"),
        (3616, 2304, "pixels"),
    ],
)
def test_check_flexible_names_the_broken_rule(w: int, h: int, why: str) -> None:
    with pytest.raises(SizeError) as ei:
        check_flexible(w, h, FlexibleRules())
    assert why in str(ei.value)


def test_flexible_rules_defaults_match_design() -> None:
    r = FlexibleRules()
    assert (r.multiple, r.max_edge, r.max_ratio, r.min_pixels, r.max_pixels) == (
        16,
        3840,
        3.0,
        655_360,
        8_294_400,
    )


@pytest.mark.parametrize("size", SEED_1K_VARIANTS)
def test_seed_table_variants_accepted_as_1k(size: str) -> None:
    w, h = (int(x) for x in size.split("x"))
    assert resolve_size(GPT2, size, None) == (w, h, "1k")


def test_seed_variant_swaps_are_accepted_too() -> None:
    assert resolve_size(GPT2, "836x1881", None) == (836, 1881, "1k")
    assert resolve_size(GPT2, "1402x1122", None) == (1402, 1122, "1k")


def test_non_table_size_off_the_16_grid_is_still_refused() -> None:
    with pytest.raises(SizeError):
        resolve_size(GPT2, "1882x836", None)


# --------------------------------------------------------------------------- tier inference


@pytest.mark.parametrize(
    ("w", "h", "tier"),
    [
        (1024, 640, "1k"),
        (1536, 1536, "1k"),  # 2 359 296: the 1k ceiling itself
        (1536, 1552, "2k"),  # just above it
        (1920, 1088, "1k"),
        (2576, 2032, "2k"),  # 5 234 432, just under 2560x2048
        (2560, 2048, "2k"),  # 5 242 880: the 2k ceiling itself
        (2576, 2048, "4k"),  # 5 275 648
        (3600, 2304, "4k"),
    ],
)
def test_tier_for_pixels(w: int, h: int, tier: str) -> None:
    assert tier_for_pixels(w, h) == tier


@pytest.mark.parametrize(
    ("size", "tier"),
    [
        ("1536x1536", "1k"),
        ("1536x1552", "2k"),
        ("2576x2032", "2k"),
        ("2576x2048", "4k"),
        ("3600x2304", "4k"),
        # Table sizes keep the table's tier even where pixel counts overlap: 3840x1280 has
        # fewer pixels than 2560x2048 but is a 4k entry.
        ("3840x1280", "4k"),
        ("2560x2048", "2k"),
        ("2048x1152", "2k"),
        ("2048x1024", "1k"),
    ],
)
def test_free_wxh_tier_is_inferred(size: str, tier: str) -> None:
    assert resolve_size(GPT2, size, None)[2] == tier


@pytest.mark.parametrize("resolution", ["1k", "2k", "4k"])
def test_wxh_tier_comes_from_the_pixels_not_resolution(resolution: str) -> None:
    # The pixel size decides what is billed and what `n` is limited by.
    assert resolve_size(GPT2, "1024x1024", resolution) == (1024, 1024, "1k")
    assert resolve_size(GPT2, "3840x2160", resolution) == (3840, 2160, "4k")


# --------------------------------------------------------------------------- enumerated models

ENUMERATED_SIZES = {
    "gpt-image-1.5": ("1024x1024", "1536x1024", "1024x1536"),
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536"),
    "gpt-image-1-mini": ("1024x1024", "1536x1024", "1024x1536"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
ALL_ENUMERATED = sorted({s for sizes in ENUMERATED_SIZES.values() for s in sizes})
ENUM_ACCEPT = [(m, s) for m, sizes in ENUMERATED_SIZES.items() for s in sizes]
ENUM_REFUSE = [
    (m, s)
    for m, sizes in ENUMERATED_SIZES.items()
    for s in [*ALL_ENUMERATED, "2048x2048", "1536x864", "3840x2160", "1024x640"]
    if s not in sizes
]


@pytest.mark.parametrize(("model", "size"), ENUM_ACCEPT)
def test_enumerated_sizes_accepted(model: str, size: str) -> None:
    w, h = (int(x) for x in size.split("x"))
    assert resolve_size(CATALOG.models[model], size, None) == (w, h, "1k")
    assert resolve_size(CATALOG.models[model], size.upper(), None) == (w, h, "1k")
    assert resolve_size(CATALOG.models[model], size.replace("x", "×"), None) == (w, h, "1k")


@pytest.mark.parametrize(("model", "size"), ENUM_REFUSE)
def test_other_sizes_refused_for_enumerated_models(model: str, size: str) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(CATALOG.models[model], size, None)
    assert ei.value.param == "size"
    for allowed in ENUMERATED_SIZES[model]:
        assert allowed in str(ei.value)


@pytest.mark.parametrize(
    ("model", "ratio", "resolution", "expected"),
    [
        ("gpt-image-1", "1:1", None, (1024, 1024)),
        ("gpt-image-1", "1:1", "1k", (1024, 1024)),
        ("gpt-image-1", "3:2", "1k", (1536, 1024)),
        ("gpt-image-1", "2:3", None, (1024, 1536)),
        ("gpt-image-1.5", "3:2", None, (1536, 1024)),
        ("gpt-image-1-mini", "2:3", "1k", (1024, 1536)),
        ("dall-e-3", "1:1", None, (1024, 1024)),
        ("dall-e-2", "1:1", "1k", (1024, 1024)),
        ("gpt-image-1", "auto", None, (1024, 1024)),
        ("dall-e-3", "auto", None, (1024, 1024)),
        ("dall-e-2", None, None, (1024, 1024)),
    ],
)
def test_ratios_mapping_to_an_enumerated_size_work(
    model: str, ratio: str | None, resolution: str | None, expected: tuple[int, int]
) -> None:
    assert resolve_size(CATALOG.models[model], ratio, resolution) == (*expected, "1k")


@pytest.mark.parametrize(
    ("model", "ratio", "resolution"),
    [
        ("gpt-image-1", "16:9", None),
        ("gpt-image-1", "4:3", "1k"),
        ("gpt-image-1", "1:1", "2k"),
        ("gpt-image-1", "3:2", "4k"),
        ("gpt-image-1.5", "21:9", None),
        ("gpt-image-1-mini", "1:3", None),
        ("dall-e-3", "3:2", None),
        ("dall-e-3", "16:9", None),
        ("dall-e-3", "1:1", "4k"),
        ("dall-e-2", "2:1", None),
        ("dall-e-2", "1:1", "2k"),
    ],
)
def test_ratios_without_an_enumerated_size_refused(
    model: str, ratio: str, resolution: str | None
) -> None:
    with pytest.raises(SizeError) as ei:
        resolve_size(CATALOG.models[model], ratio, resolution)
    assert ei.value.param == "size"
    for allowed in ENUMERATED_SIZES[model]:
        assert allowed in str(ei.value)


# --------------------------------------------------------------------------- property


def _obeys_rules(w: int, h: int) -> bool:
    return (
        w % 16 == 0
        and h % 16 == 0
        and max(w, h) <= 3840
        and max(w, h) <= 3 * min(w, h)
        and 655_360 <= w * h <= 8_294_400
    )


def _resolve_or_error(spec: ModelSpec, size: str) -> tuple[int, int, str] | SizeError:
    try:
        return resolve_size(spec, size, None)
    except SizeError as exc:
        return exc


@settings(max_examples=400, database=None, deadline=None)
@given(
    w=st.integers(min_value=1, max_value=250).map(lambda k: k * 16),
    h=st.integers(min_value=1, max_value=250).map(lambda k: k * 16),
    sep=st.sampled_from(["x", "X", "×"]),
)
def test_property_wxh_is_exact_or_size_error(w: int, h: int, sep: str) -> None:
    result = _resolve_or_error(GPT2, f"{w}{sep}{h}")
    if isinstance(result, SizeError):
        assert result.param == "size"
        assert not _obeys_rules(w, h)
    else:
        width, height, tier = result
        assert (width, height) == (w, h)
        assert tier in ("1k", "2k", "4k")
        assert _obeys_rules(w, h)


# ------------------------------------------------- sizes from a reference image (issue 18)
# 002: "不传 `size` 时输出分辨率 = 输入图分辨率" — image-to-image without `size` keeps the
# input's resolution, snapped to the model's WxH rules. Expected sizes are written out.

REFERENCE_SHAPES: list[tuple[str, tuple[int, int], tuple[int, int], str]] = [
    # name, reference, expected output, tier
    ("landscape, a table size", (1536, 1024), (1536, 1024), "1k"),
    ("portrait, a table size", (1024, 1536), (1024, 1536), "1k"),
    ("a 2k table size", (2048, 1360), (2048, 1360), "2k"),
    ("a seed 1k variant (not a multiple of 16)", (1881, 836), (1881, 836), "1k"),
    ("valid free WxH, kept", (1920, 1088), (1920, 1088), "1k"),
    ("non-multiple of 16, 4:3: the exact 4:3 nearby", (1000, 750), (1024, 768), "1k"),
    ("non-multiple of 16, 10:7", (1000, 700), (1008, 704), "1k"),
    ("non-multiple of 16, 16:9 photo", (1920, 1080), (1936, 1088), "1k"),
    ("non-multiple of 16, square", (1001, 1001), (1008, 1008), "1k"),
    ("tiny 3:2: up to the pixel floor, exact 3:2", (96, 64), (1008, 672), "1k"),
    ("tiny 2:3", (64, 96), (672, 1008), "1k"),
    ("tiny 4:3", (640, 480), (960, 720), "1k"),
    ("one pixel", (1, 1), (816, 816), "1k"),
    ("huge 4:3: down to the pixel ceiling", (8000, 6000), (3312, 2480), "4k"),
    ("huge 3:4", (6000, 8000), (2480, 3312), "4k"),
    ("huge square", (5000, 5000), (2880, 2880), "4k"),
    ("6 MP 3:2, non-multiple", (3000, 2000), (2976, 1984), "4k"),
    ("4:1: the ratio clamped to 3:1", (4000, 1000), (3456, 1152), "2k"),
    ("huge 16:3: clamped to 3:1 and the longest edge", (16000, 3000), (3840, 1280), "4k"),
    ("1:100 sliver", (10, 1000), (480, 1424), "1k"),
]


@pytest.mark.parametrize(("reference", "expected", "tier"),
                         [s[1:] for s in REFERENCE_SHAPES], ids=[s[0] for s in REFERENCE_SHAPES])
@pytest.mark.parametrize("model", FLEXIBLE_MODELS)
def test_size_for_reference_flexible(model: str, reference: tuple[int, int],
                                     expected: tuple[int, int], tier: str) -> None:
    spec = CATALOG.models[model]
    assert size_for_reference(spec, *reference) == (*expected, tier)


@pytest.mark.parametrize(("reference", "resolution", "expected"), [
    ((1536, 1024), "2k", (2048, 1360)),  # a table ratio: the table's size at that tier
    ((1536, 1024), "4k", (3520, 2336)),
    ((96, 64), "2k", (2048, 1360)),
    ((8000, 6000), "1k", (1024, 768)),
    ((2048, 1360), "2k", (2048, 1360)),  # already that tier: kept
    ((1881, 836), "1k", (1881, 836)),
    ((2048, 1360), "1k", (1280, 848)),  # not a table ratio: scaled to 1024² pixels
    ((100, 60), "2k", (2640, 1584)),  # 5:3 at 2048² pixels
    ((4000, 1000), "4k", (3840, 1280)),
    ((4000, 1000), "1k", (1776, 592)),
])
def test_size_for_reference_at_a_resolution(reference: tuple[int, int], resolution: str,
                                            expected: tuple[int, int]) -> None:
    """With `resolution` (and no size) the reference's shape is made at that tier."""
    assert size_for_reference(GPT2, *reference, resolution) == (*expected, resolution)


@pytest.mark.parametrize(("model", "reference", "expected"), [
    ("gpt-image-1", (1536, 1024), (1536, 1024)),
    ("gpt-image-1", (96, 64), (1536, 1024)),  # nearest in aspect
    ("gpt-image-1", (64, 96), (1024, 1536)),
    ("gpt-image-1", (700, 700), (1024, 1024)),
    ("gpt-image-1", (2000, 500), (1536, 1024)),
    ("dall-e-2", (300, 300), (256, 256)),  # all square: nearest in pixels
    ("dall-e-2", (700, 700), (512, 512)),
    ("dall-e-2", (1536, 1024), (1024, 1024)),
    ("dall-e-3", (1536, 1024), (1792, 1024)),
    ("dall-e-3", (64, 96), (1024, 1792)),
])
def test_size_for_reference_enumerated(model: str, reference: tuple[int, int],
                                       expected: tuple[int, int]) -> None:
    """Enumerated models: the listed size nearest in aspect, then in pixels; always 1k."""
    spec = CATALOG.models[model]
    assert size_for_reference(spec, *reference) == (*expected, "1k")
    assert size_for_reference(spec, *reference, "1k") == (*expected, "1k")


def test_size_for_reference_refuses_a_tier_the_model_lacks() -> None:
    spec = parse_catalog({"models": {"small": {
        "size_rule": "flexible", "default_size": "1:1", "n_max": {"1k": 2},
        "qualities": ["auto"], "default_quality": "auto", "output_formats": ["png"],
        "transparent_background": False}}}).models["small"]
    assert size_for_reference(spec, 1000, 1000) == (992, 992, "1k")
    with pytest.raises(SizeError, match="does not offer"):
        size_for_reference(spec, 4000, 3000)


def test_snap_keeps_a_valid_shape_and_nearest_listed_ties() -> None:
    rules = FlexibleRules()
    assert snap_flexible(1536, 1024, rules) == (1536, 1024)
    assert snap_flexible(1536, 1024, rules, pixels=TIER_PIXELS["2k"]) == (2496, 1664)
    assert nearest_listed(500, 500, ("256x256", "512x512", "1024x1024")) == (512, 512)
    with pytest.raises(SizeError):
        snap_flexible(0, 10, rules)


@settings(max_examples=400, database=None, deadline=None)
@given(w=st.integers(min_value=1, max_value=16384), h=st.integers(min_value=1, max_value=16384),
       resolution=st.sampled_from([None, "1k", "2k", "4k"]))
def test_property_reference_sizes_are_always_accepted_sizes(w: int, h: int,
                                                            resolution: str | None) -> None:
    """Whatever the input's shape, the output is a size the model accepts as `size`, of the
    tier it is billed at, as close to the input's aspect as the 3:1 limit allows."""
    width, height, tier = size_for_reference(GPT2, w, h, resolution)
    if (width, height) not in table_sizes():
        assert _obeys_rules(width, height)
        assert tier == (resolution or tier_for_pixels(width, height))
    else:
        assert tier == (resolution or table_sizes()[(width, height)])
    want = min(max(w / h, 1 / 3), 3)
    assert abs(math.log((width / height) / want)) < 0.05
