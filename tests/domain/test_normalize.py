"""`normalize`: raw body -> ImageRequest, or a 400 that names `param` (DESIGN §2)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from imagegate.domain.catalog import load_catalog, parse_catalog
from imagegate.domain.limits import (
    FIELD_CHARS,
    IGNORED_FIELD_CHARS,
    IGNORED_FIELDS,
    REFERENCE_URL_CHARS,
)
from imagegate.domain.normalize import (
    collect_references,
    normalize,
    record_ignored,
    settle_reference_size,
)
from imagegate.domain.request import ImageRequest, ReferenceSource, StoredReference
from imagegate.errors import InvalidRequestError, ModelNotFoundError, NotFoundError

CATALOG = load_catalog()
ALL_MODELS = (
    "gpt-image-2",
    "gpt-image-2-pro",
    "gpt-image-2-2026-04-21",
    "gpt-image-1.5",
    "gpt-image-1",
    "gpt-image-1-mini",
    "dall-e-3",
    "dall-e-2",
)
FLEXIBLE = ("gpt-image-2", "gpt-image-2-pro", "gpt-image-2-2026-04-21")
GPT_IMAGE = ("gpt-image-1.5", "gpt-image-1", "gpt-image-1-mini")
ALIASES = (
    "image_urls",
    "reference_images",
    "images",
    "image",
    "image_url",
    "input_image",
    "input_images",
)
URL = "https://example.com/ref.png"
URL2 = "https://example.com/other.jpg"
DATA_URL = "data:image/png;base64,iVBORw0KGgo="
BARE_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
    "DwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def norm(**fields: Any) -> ImageRequest:
    body: dict[str, Any] = {"prompt": "a cat"}
    body.update(fields)
    return normalize(body, CATALOG)


def refused(body: Any, param: str, code: str | None = None, **kw: Any) -> InvalidRequestError:
    """Assert `normalize(body)` is a 400 naming `param` with an OpenAI error body."""
    with pytest.raises(InvalidRequestError) as ei:
        normalize(body, CATALOG, **kw)
    err = ei.value
    assert type(err) is InvalidRequestError
    assert err.status_code == 400
    assert err.param == param
    assert err.message
    assert err.to_body() == {
        "error": {
            "message": err.message,
            "type": "invalid_request_error",
            "param": param,
            "code": err.code,
        }
    }
    if code is not None:
        assert err.code == code
    return err


def refuse(param: str, code: str | None = None, **fields: Any) -> InvalidRequestError:
    body: dict[str, Any] = {"prompt": "a cat"}
    body.update(fields)
    return refused(body, param, code)


# --------------------------------------------------------------------------- defaults


def test_minimal_body_defaults() -> None:
    req = normalize({"prompt": "a cat"}, CATALOG)
    assert req == ImageRequest(
        operation="generate",
        model="gpt-image-2",
        prompt="a cat",
        n=1,
        width=1024,
        height=1024,
        tier="1k",
        size_label="1024x1024",
        output_format="png",
        output_compression=None,
        background="auto",
        # Issue 18: `auto` (the default) resolves to what is made; relays still pass `auto`.
        quality="medium",
        quality_auto=True,
        moderation="auto",
        style=None,
        user=None,
        response_format="url",
    )
    assert req.content_type == "image/png"


@pytest.mark.parametrize(
    ("model", "quality", "auto"),
    [
        ("gpt-image-2", "medium", True),
        ("gpt-image-1", "medium", True),
        ("dall-e-3", "standard", False),
        ("dall-e-2", "standard", False),
    ],
)
def test_defaults_per_model(model: str, quality: str, auto: bool) -> None:
    req = norm(model=model)
    assert (req.model, req.width, req.height, req.tier, req.quality, req.quality_auto) == (
        model,
        1024,
        1024,
        "1k",
        quality,
        auto,
    )


def test_explicit_nulls_are_defaults() -> None:
    nulls = dict.fromkeys(
        [
            "model",
            "n",
            "size",
            "resolution",
            "output_format",
            "output_compression",
            "background",
            "quality",
            "moderation",
            "style",
            "user",
            "response_format",
            "wait_for_result",
            "mask_url",
            *ALIASES,
        ],
    )
    assert norm(**nulls) == norm()


# --------------------------------------------------------------------------- sizes via normalize


@pytest.mark.parametrize(
    ("size", "resolution", "w", "h", "tier"),
    [
        ("16:9", "2k", 2048, 1152, "2k"),  # the 000 seed's example
        ("16:9", "4k", 3840, 2160, "4k"),
        ("9:16", "4k", 2160, 3840, "4k"),
        ("21:9", "1k", 2016, 864, "1k"),
        ("3:4", "2k", 1536, 2048, "2k"),
        ("auto", "2k", 2048, 2048, "2k"),
        (None, "4k", 2880, 2880, "4k"),
        ("3840x2160", None, 3840, 2160, "4k"),
        ("1881x836", None, 1881, 836, "1k"),
        ("1024X1536", None, 1024, 1536, "1k"),
    ],
)
def test_size_fields(size: str | None, resolution: str | None, w: int, h: int, tier: str) -> None:
    req = norm(size=size, resolution=resolution)
    assert (req.width, req.height, req.tier, req.size_label) == (w, h, tier, f"{w}x{h}")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"size": "big"}, "size"),
        ({"size": "0x0"}, "size"),
        ({"size": "-5x10"}, "size"),
        ({"size": "10x"}, "size"),
        ({"size": "1032x1024"}, "size"),
        ({"size": "3616x2304"}, "size"),
        ({"size": "1:1", "resolution": "8k"}, "resolution"),
        ({"size": 1024}, "size"),
        ({"size": ["1:1"]}, "size"),
        ({"resolution": 2}, "resolution"),
        ({"model": "gpt-image-1", "size": "16:9"}, "size"),
        ({"model": "gpt-image-1", "size": "2048x2048"}, "size"),
        ({"model": "dall-e-3", "size": "1536x1024"}, "size"),
        ({"model": "dall-e-2", "size": "1792x1024"}, "size"),
    ],
)
def test_size_errors_name_the_field(fields: dict[str, Any], param: str) -> None:
    refuse(param, **fields)


def test_wrong_size_type_is_invalid_type() -> None:
    refuse("size", "invalid_type", size=1024)


@pytest.mark.parametrize(
    ("model", "allowed"),
    [
        ("gpt-image-1", ("1024x1024", "1536x1024", "1024x1536")),
        ("gpt-image-1.5", ("1024x1024", "1536x1024", "1024x1536")),
        ("gpt-image-1-mini", ("1024x1024", "1536x1024", "1024x1536")),
        ("dall-e-3", ("1024x1024", "1792x1024", "1024x1792")),
        ("dall-e-2", ("256x256", "512x512", "1024x1024")),
    ],
)
@pytest.mark.parametrize("size", ["1280x720", "2048x2048", "16:9"])
def test_enumerated_refusal_lists_allowed_sizes(
    model: str, allowed: tuple[str, ...], size: str
) -> None:
    err = refuse("size", model=model, size=size)
    for s in allowed:
        assert s in err.message
    for s in allowed:
        req = norm(model=model, size=s)
        assert req.size_label == s
        assert req.tier == "1k"


# --------------------------------------------------------------------------- n

N_LIMITS = {
    "gpt-image-2": {"1k": 10, "2k": 4, "4k": 4},
    "gpt-image-2-pro": {"1k": 10, "2k": 4, "4k": 4},
    "gpt-image-2-2026-04-21": {"1k": 10, "2k": 10, "4k": 10},
    "gpt-image-1.5": {"1k": 10},
    "gpt-image-1": {"1k": 10},
    "gpt-image-1-mini": {"1k": 10},
    "dall-e-3": {"1k": 1},
    "dall-e-2": {"1k": 10},
}
N_CASES = [(m, t, lim) for m, tiers in N_LIMITS.items() for t, lim in tiers.items()]


def _tier_fields(model: str, tier: str) -> dict[str, Any]:
    if model in FLEXIBLE:
        return {"model": model, "size": "1:1", "resolution": tier}
    return {"model": model}


def test_n_limits_literal_matches_catalog() -> None:
    for model, tiers in N_LIMITS.items():
        assert CATALOG.models[model].n_max == tiers


@pytest.mark.parametrize(("model", "tier", "limit"), N_CASES)
def test_n_within_limit(model: str, tier: str, limit: int) -> None:
    for n in sorted({1, limit}):
        req = norm(n=n, **_tier_fields(model, tier))
        assert (req.n, req.tier) == (n, tier)


@pytest.mark.parametrize(("model", "tier", "limit"), N_CASES)
def test_n_over_limit(model: str, tier: str, limit: int) -> None:
    err = refuse("n", "invalid_value", n=limit + 1, **_tier_fields(model, tier))
    assert str(limit) in err.message
    assert tier in err.message


@pytest.mark.parametrize("n", [0, -1, -100, 1000])
@pytest.mark.parametrize("model", ALL_MODELS)
def test_n_out_of_range(model: str, n: int) -> None:
    refuse("n", "invalid_value", model=model, n=n)


def test_n_at_free_wxh_uses_inferred_tier() -> None:
    assert norm(size="3840x2160", n=4).n == 4
    refuse("n", size="3840x2160", n=5)
    assert norm(size="1024x1024", n=10).n == 10


@pytest.mark.parametrize("n", ["2", True, False, 2.5, [2], {"n": 2}, float("nan"), "two"])
def test_n_wrong_type(n: Any) -> None:
    refuse("n", "invalid_type", n=n)


def test_n_integral_float_accepted() -> None:
    assert norm(n=2.0).n == 2
    assert isinstance(norm(n=2.0).n, int)


# --------------------------------------------------------------------------- prompt

PROMPT_MAX = {
    "gpt-image-2": 32000,
    "gpt-image-2-pro": 32000,
    "gpt-image-2-2026-04-21": 32000,
    "gpt-image-1.5": 32000,
    "gpt-image-1": 32000,
    "gpt-image-1-mini": 32000,
    "dall-e-3": 4000,
    "dall-e-2": 1000,
}


@pytest.mark.parametrize("body", [{}, {"prompt": None}, {"prompt": ""}, {"prompt": "   \n"}])
def test_prompt_missing_or_empty(body: dict[str, Any]) -> None:
    refused(body, "prompt", "missing_required_parameter")


@pytest.mark.parametrize("prompt", [123, ["a cat"], {"text": "a cat"}, True])
def test_prompt_wrong_type(prompt: Any) -> None:
    refused({"prompt": prompt}, "prompt", "invalid_type")


@pytest.mark.parametrize(("model", "limit"), sorted(PROMPT_MAX.items()))
def test_prompt_max_length(model: str, limit: int) -> None:
    assert norm(model=model, prompt="x" * limit).prompt == "x" * limit
    err = refuse("prompt", model=model, prompt="x" * (limit + 1))
    assert str(limit) in err.message


def test_prompt_kept_verbatim() -> None:
    assert norm(prompt="  一只橘猫 \n").prompt == "  一只橘猫 \n"


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("model", ["gpt-image-3", "dall-e-4", "GPT-IMAGE-2", "sora"])
def test_unknown_model(model: str) -> None:
    with pytest.raises(ModelNotFoundError) as ei:
        normalize({"prompt": "a cat", "model": model}, CATALOG)
    err = ei.value
    assert isinstance(err, NotFoundError)
    assert not isinstance(err, InvalidRequestError)
    assert err.status_code == 404
    assert err.param == "model"
    assert err.code == "model_not_found"
    body = err.to_body()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "model_not_found"
    assert body["error"]["param"] == "model"
    assert model in body["error"]["message"]
    assert "gpt-image-2" in body["error"]["message"]  # lists what is available


def test_unknown_model_checked_before_prompt() -> None:
    with pytest.raises(ModelNotFoundError):
        normalize({"model": "nope"}, CATALOG)


@pytest.mark.parametrize("model", [42, ["gpt-image-2"], True])
def test_model_wrong_type(model: Any) -> None:
    refuse("model", "invalid_type", model=model)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_catalog_model_normalizes(model: str) -> None:
    assert norm(model=model).model == model
    assert norm(model=f" {model} ").model == model


# --------------------------------------------------------------------------- output_format


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("png", "png"),
        ("jpeg", "jpeg"),
        ("webp", "webp"),
        ("jpg", "jpeg"),
        ("JPG", "jpeg"),
        (" PNG ", "png"),
        ("Jpeg", "jpeg"),
        ("", "png"),
        (None, "png"),
    ],
)
@pytest.mark.parametrize("model", [*FLEXIBLE, *GPT_IMAGE])
def test_output_format_accepted(model: str, value: str | None, expected: str) -> None:
    req = norm(model=model, output_format=value)
    assert req.output_format == expected
    assert req.content_type == f"image/{expected}"


@pytest.mark.parametrize("value", ["gif", "bmp", "tiff", "jpe", "image/png", "   "])
def test_output_format_bad_value(value: str) -> None:
    err = refuse("output_format", "invalid_value", output_format=value)
    assert "png" in err.message


@pytest.mark.parametrize("value", [1, ["png"], True])
def test_output_format_wrong_type(value: Any) -> None:
    refuse("output_format", "invalid_type", output_format=value)


@pytest.mark.parametrize(
    ("model", "value"),
    [
        ("dall-e-3", "webp"),
        ("dall-e-3", "jpeg"),
        ("dall-e-3", "jpg"),
        ("dall-e-2", "webp"),
        ("dall-e-2", "jpeg"),
    ],
)
def test_output_format_the_model_lacks(model: str, value: str) -> None:
    err = refuse("output_format", model=model, output_format=value)
    assert model in err.message
    assert norm(model=model, output_format="png").output_format == "png"


# --------------------------------------------------------------------------- output_compression


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "jpg"])
@pytest.mark.parametrize("value", [0, 1, 50, 99, 100, 75.0])
def test_output_compression_accepted(fmt: str, value: Any) -> None:
    req = norm(output_format=fmt, output_compression=value)
    assert req.output_compression == int(value)


@pytest.mark.parametrize("value", [-1, 101, 1000, -100])
@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_output_compression_out_of_range(fmt: str, value: int) -> None:
    refuse("output_compression", "invalid_value", output_format=fmt, output_compression=value)


@pytest.mark.parametrize("value", ["50", True, 50.5, [50]])
def test_output_compression_wrong_type(value: Any) -> None:
    refuse("output_compression", "invalid_type", output_format="jpeg", output_compression=value)


@pytest.mark.parametrize("fmt", ["png", None])
@pytest.mark.parametrize("value", [0, 50, 99])
def test_output_compression_with_png_refused(fmt: str | None, value: int) -> None:
    refuse("output_compression", output_format=fmt, output_compression=value)


@pytest.mark.parametrize("fmt", ["png", None])
def test_output_compression_100_with_png_accepted_and_dropped(fmt: str | None) -> None:
    req = norm(output_format=fmt, output_compression=100)
    assert req.output_format == "png"
    assert req.output_compression is None


# --------------------------------------------------------------------------- background


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [("auto", "auto"), ("opaque", "opaque"), ("OPAQUE", "opaque"), (None, "auto"), ("", "auto")],
)
def test_background_auto_and_opaque(model: str, value: str | None, expected: str) -> None:
    assert norm(model=model, background=value).background == expected


@pytest.mark.parametrize("model", GPT_IMAGE)
@pytest.mark.parametrize("fmt", ["png", "webp", None])
def test_transparent_on_gpt_image_1_family(model: str, fmt: str | None) -> None:
    req = norm(model=model, background="transparent", output_format=fmt)
    assert req.background == "transparent"


def test_transparent_gpt_image_15_with_png() -> None:
    req = norm(model="gpt-image-1.5", background="Transparent", output_format="png")
    assert (req.background, req.output_format) == ("transparent", "png")


@pytest.mark.parametrize("model", GPT_IMAGE)
@pytest.mark.parametrize("fmt", ["jpeg", "jpg"])
def test_transparent_with_jpeg_refused(model: str, fmt: str) -> None:
    err = refuse("background", model=model, background="transparent", output_format=fmt)
    assert "png" in err.message and "webp" in err.message


@pytest.mark.parametrize("model", [*FLEXIBLE, "dall-e-3", "dall-e-2"])
@pytest.mark.parametrize("fmt", ["png", None])
def test_transparent_refused_where_catalog_says_no(model: str, fmt: str | None) -> None:
    err = refuse("background", model=model, background="transparent", output_format=fmt)
    assert model in err.message


@pytest.mark.parametrize("value", ["clear", "white", "none", "alpha"])
def test_background_bad_value(value: str) -> None:
    refuse("background", "invalid_value", background=value)


def test_background_wrong_type() -> None:
    refuse("background", "invalid_type", background=False)


# --------------------------------------------------------------------------- quality

QUALITY_OK = [
    *[(m, q) for m in (*FLEXIBLE, *GPT_IMAGE) for q in ("auto", "low", "medium", "high")],
    ("dall-e-3", "standard"),
    ("dall-e-3", "hd"),
    ("dall-e-3", "HD"),
    ("dall-e-2", "standard"),
]
QUALITY_BAD = [
    *[(m, q) for m in (*FLEXIBLE, *GPT_IMAGE) for q in ("hd", "standard", "ultra")],
    ("dall-e-3", "high"),
    ("dall-e-2", "hd"),
    ("dall-e-2", "high"),
]


@pytest.mark.parametrize(("model", "quality"), QUALITY_OK)
def test_quality_accepted(model: str, quality: str) -> None:
    req = norm(model=model, quality=quality)
    if quality.lower() == "auto":  # resolved to what the model makes (issue 18)
        assert (req.quality, req.quality_auto) == ("medium", True)
    else:
        assert (req.quality, req.quality_auto) == (quality.lower(), False)


# 003: "auto（默认值）将自动为给定模型选择最佳质量": accepted for every model, DALL·E too.
@pytest.mark.parametrize(("model", "made"), [
    *[(m, "medium") for m in (*FLEXIBLE, *GPT_IMAGE)],
    ("dall-e-3", "standard"), ("dall-e-2", "standard"),
])
@pytest.mark.parametrize("value", ["auto", "AUTO"])
def test_quality_auto_for_every_model(model: str, made: str, value: str) -> None:
    req = norm(model=model, quality=value)
    assert (req.quality, req.quality_auto) == (made, True)
    assert req.quality != "auto"


def test_quality_auto_of_a_catalog_that_does_not_list_it() -> None:
    """An operator's catalog may list only concrete qualities: `auto` is still accepted."""
    cat = parse_catalog({"models": {"m": {
        "size_rule": "enumerated", "default_size": "512x512", "sizes": ["512x512"],
        "n_max": {"1k": 1}, "qualities": ["draft", "final"], "default_quality": "final",
        "output_formats": ["png"], "transparent_background": False}}})
    req = normalize({"prompt": "p", "quality": "auto"}, cat)
    assert (req.quality, req.quality_auto) == ("final", True)
    with pytest.raises(InvalidRequestError):
        normalize({"prompt": "p", "quality": "medium"}, cat)


@pytest.mark.parametrize(("model", "quality"), QUALITY_BAD)
def test_quality_refused(model: str, quality: str) -> None:
    refuse("quality", "invalid_value", model=model, quality=quality)


def test_quality_wrong_type() -> None:
    refuse("quality", "invalid_type", quality=3)


# ------------------------------------------------------------------ moderation, style, user


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", "auto"), ("low", "low"), ("LOW", "low"), (None, "auto")]
)
def test_moderation_accepted(value: str | None, expected: str) -> None:
    assert norm(moderation=value).moderation == expected


@pytest.mark.parametrize("value", ["high", "none", "off"])
def test_moderation_bad_value(value: str) -> None:
    refuse("moderation", "invalid_value", moderation=value)


def test_moderation_wrong_type() -> None:
    refuse("moderation", "invalid_type", moderation=0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("vivid", "vivid"), ("natural", "natural"), ("Natural", "natural"), (None, None)],
)
def test_style_dall_e_3(value: str | None, expected: str | None) -> None:
    assert norm(model="dall-e-3", style=value).style == expected


@pytest.mark.parametrize("model", ["dall-e-3", "gpt-image-2"])
@pytest.mark.parametrize("value", ["bright", "anime"])
def test_style_bad_value(model: str, value: str) -> None:
    refuse("style", "invalid_value", model=model, style=value)


def test_style_on_models_without_styles_is_tolerated() -> None:
    # Judgement call kept from the code: models that list no styles still accept the two
    # OpenAI values (the 002 seed says `style` is ignored there) rather than 400.
    assert norm(model="gpt-image-2", style="vivid").style == "vivid"


def test_style_wrong_type() -> None:
    refuse("style", "invalid_type", model="dall-e-3", style=1)


def test_user() -> None:
    assert norm(user="user-123").user == "user-123"
    assert norm().user is None


@pytest.mark.parametrize("value", [123, ["u"], {"id": "u"}, True])
def test_user_wrong_type(value: Any) -> None:
    refuse("user", "invalid_type", user=value)


# --------------------------------------------------------------------------- response_format


@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("url", "url"),
        ("b64_json", "b64_json"),
        ("data_url", "data_url"),
        ("B64_JSON", "b64_json"),
        (None, "url"),
        ("", "url"),
    ],
)
def test_response_format_accepted(model: str, value: str | None, expected: str) -> None:
    assert norm(model=model, response_format=value).response_format == expected


@pytest.mark.parametrize("value", ["base64", "json", "b64", "png", "data-url"])
def test_response_format_bad_value(value: str) -> None:
    refuse("response_format", "invalid_value", response_format=value)


def test_response_format_wrong_type() -> None:
    refuse("response_format", "invalid_type", response_format=1)


# ------------------------------------------------------------------ wait_for_result, stream


@pytest.mark.parametrize("value", [True, False, "true", "false", "TRUE", "False"])
def test_wait_for_result_accepted(value: Any) -> None:
    norm(wait_for_result=value)


@pytest.mark.parametrize("value", [1, 0, "yes", "no", "", [], {"x": 1}])
def test_wait_for_result_wrong_type(value: Any) -> None:
    refuse("wait_for_result", "invalid_type", wait_for_result=value)


def test_stream_needs_partial_images() -> None:
    with pytest.raises(InvalidRequestError) as info:
        norm(stream=True)
    assert info.value.message == "Streaming must have non-zero partial images"
    assert info.value.param == "partial_images" and info.value.code is None
    assert norm(stream=True, partial_images=2).partial_images == 2
    assert norm(stream=False).stream is False
    refuse("stream", "invalid_type", stream="maybe")
    refuse("partial_images", "invalid_value", partial_images=4)
    refuse("partial_images", "invalid_value", partial_images=-1)


# 003: "此参数仅支持 gpt-image-1": streaming is for GPT image models only (the catalog's
# `streaming`), with or without partial_images, on every profile.
@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2"])
@pytest.mark.parametrize("extra", [{"partial_images": 2}, {}, {"partial_images": 0}])
def test_stream_refused_for_models_that_do_not_stream(model: str,
                                                       extra: dict[str, Any]) -> None:
    err = refuse("stream", "unsupported_value", model=model, stream=True, **extra)
    assert err.message == f"Streaming is not supported for the model {model}."
    assert norm(model=model, stream=False).stream is False


@pytest.mark.parametrize("model", [*FLEXIBLE, *GPT_IMAGE])
def test_gpt_image_models_stream(model: str) -> None:
    assert norm(model=model, stream=True, partial_images=1).stream is True


# 003: `revised_prompt` "仅适用于 dall-e-3".
@pytest.mark.parametrize("model", sorted(CATALOG.models))
def test_only_dalle3_revises_its_prompt(model: str) -> None:
    assert norm(model=model).revises_prompt is (model == "dall-e-3")


def test_partial_images_type_checked() -> None:
    norm(partial_images=2)
    refuse("partial_images", "invalid_type", partial_images="2")


# --------------------------------------------------------------------------- unknown fields, body


def test_unknown_fields_ignored_but_listed() -> None:
    req = norm(official_fallback=True, seed=5, aspect="wide", negative_prompt="dogs")
    assert req.ignored_fields == ("aspect", "negative_prompt", "seed")
    assert req.official_fallback is True  # understood now: it reaches routing
    assert norm(size="1:1", n=1).ignored_fields == ()


def test_known_fields_are_not_listed_as_ignored() -> None:
    req = norm(
        model="gpt-image-2",
        n=1,
        size="1:1",
        resolution="1k",
        output_format="png",
        background="auto",
        quality="auto",
        moderation="auto",
        style="vivid",
        user="u",
        response_format="url",
        wait_for_result=True,
        stream=False,
        partial_images=0,
        image_urls=[URL],
        mask_url=DATA_URL,
    )
    assert req.ignored_fields == ()


@pytest.mark.parametrize("body", [[], ["prompt"], "a cat", None, 42, b"{}"])
def test_non_dict_body(body: Any) -> None:
    refused(body, "body", "invalid_type")


# --------------------------------------------------------------------------- references

REF_FORMS: list[tuple[str, Any, list[str]]] = [
    ("string", URL, [URL]),
    ("string-data-url", DATA_URL, [DATA_URL]),
    ("string-bare-b64", BARE_B64, [BARE_B64]),
    ("string-padded", f"  {URL}\n", [URL]),
    ("list-one", [URL], [URL]),
    ("list-mixed", [URL, DATA_URL, BARE_B64], [URL, DATA_URL, BARE_B64]),
    ("object-url", {"url": URL}, [URL]),
    ("object-image_url", {"image_url": URL}, [URL]),
    ("object-image_url-url", {"image_url": {"url": URL}}, [URL]),
    ("object-b64_json", {"b64_json": BARE_B64}, [BARE_B64]),
    (
        "list-of-objects",
        [{"url": URL}, {"image_url": URL2}, {"image_url": {"url": DATA_URL}}],
        [URL, URL2, DATA_URL],
    ),
    ("list-objects-and-strings", [{"url": URL}, URL2], [URL, URL2]),
]


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize(("form", "value", "expected"), REF_FORMS, ids=[f[0] for f in REF_FORMS])
def test_collect_references_every_alias_and_form(
    alias: str, form: str, value: Any, expected: list[str]
) -> None:
    refs = collect_references({alias: value})
    assert refs == tuple(ReferenceSource(v, alias, i) for i, v in enumerate(expected))


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize(("form", "value", "expected"), REF_FORMS, ids=[f[0] for f in REF_FORMS])
def test_normalize_carries_references(
    alias: str, form: str, value: Any, expected: list[str]
) -> None:
    req = norm(model="gpt-image-2", **{alias: value})
    assert [r.value for r in req.references] == expected
    assert {r.field for r in req.references} == {alias}
    assert alias not in req.ignored_fields


def test_references_from_several_aliases_in_alias_order() -> None:
    body = {"input_images": [URL2], "image_urls": URL, "image": {"url": DATA_URL}}
    assert collect_references(body) == (
        ReferenceSource(URL, "image_urls", 0),
        ReferenceSource(DATA_URL, "image", 0),
        ReferenceSource(URL2, "input_images", 0),
    )


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize("empty", [None, "", []])
def test_empty_reference_fields_are_skipped(alias: str, empty: Any) -> None:
    assert collect_references({alias: empty}) == ()
    assert norm(**{alias: empty}).references == ()


def test_no_reference_fields() -> None:
    assert collect_references({"prompt": "x"}) == ()


@pytest.mark.parametrize("alias", ALIASES)
@pytest.mark.parametrize(
    "blob",
    ["blob:https://example.com/550e8400-e29b-41d4", "BLOB:http://localhost/x", " blob:null/1"],
)
def test_blob_url_refused_with_field_and_index(alias: str, blob: str) -> None:
    err = refuse(f"{alias}[1]", "invalid_value", **{alias: [URL, blob]})
    assert "upload" in err.message
    assert "data:" in err.message
    assert f"{alias}[1]" in err.message


@pytest.mark.parametrize("alias", ALIASES)
def test_blob_url_as_single_string_or_object(alias: str) -> None:
    blob = "blob:https://example.com/abc"
    refuse(f"{alias}[0]", **{alias: blob})
    refuse(f"{alias}[0]", **{alias: {"url": blob}})
    refuse(f"{alias}[2]", **{alias: [URL, URL2, {"image_url": {"url": blob}}]})


def test_blob_url_in_collect_references() -> None:
    with pytest.raises(InvalidRequestError) as ei:
        collect_references({"image_urls": [URL, "blob:https://x/y"]})
    assert ei.value.param == "image_urls[1]"


@pytest.mark.parametrize(
    "item", [123, None, True, "", "   ", {}, {"href": URL}, {"url": 5}, [URL], {"image_url": {}}]
)
def test_bad_reference_item(item: Any) -> None:
    refuse("images[1]", "invalid_type", images=[URL, item])


MAX_REFS = {
    "gpt-image-2": 9,
    "gpt-image-2-pro": 16,
    "gpt-image-2-2026-04-21": 16,
    "gpt-image-1.5": 16,
    "gpt-image-1": 16,
    "gpt-image-1-mini": 16,
    "dall-e-2": 1,
    "dall-e-3": 0,
}


@pytest.mark.parametrize(("model", "limit"), sorted(MAX_REFS.items()))
def test_reference_count_limit(model: str, limit: int) -> None:
    urls = [f"https://example.com/{i}.png" for i in range(limit + 1)]
    if limit:
        assert len(norm(model=model, image_urls=urls[:limit]).references) == limit
    err = refuse("image_urls", "invalid_value", model=model, image_urls=urls)
    assert str(limit) in err.message
    assert str(limit + 1) in err.message


def test_reference_count_sums_over_aliases() -> None:
    assert len(norm(image_urls=[URL] * 5, images=[URL2] * 4).references) == 9
    refuse("image_urls", image_urls=[URL] * 5, images=[URL2] * 5)


def test_reference_count_uses_first_field_as_param() -> None:
    refuse("images", images=[URL] * 10)


@pytest.mark.parametrize("field", ["mask_url", "mask"])
def test_mask_without_references_refused(field: str) -> None:
    refuse(field, **{field: DATA_URL})  # the error names the field the client used


@pytest.mark.parametrize("field", ["mask_url", "mask"])
@pytest.mark.parametrize("value", [URL2, {"url": URL2}, {"image_url": {"url": URL2}}])
def test_mask_with_references(field: str, value: Any) -> None:
    req = norm(image_urls=[URL], **{field: value})
    assert req.mask == ReferenceSource(URL2, field, 0)


def test_mask_blob_refused() -> None:
    err = refuse("mask_url", image_urls=[URL], mask_url="blob:https://x/y")
    assert "upload" in err.message


def test_edit_without_image_refused() -> None:
    refused({"prompt": "a cat"}, "image", "missing_required_parameter", operation="edit")
    refused(
        {"prompt": "a cat", "image": []}, "image", "missing_required_parameter", operation="edit"
    )


def test_edit_with_image() -> None:
    req = normalize({"prompt": "a cat", "image": URL}, CATALOG, operation="edit")
    assert req.operation == "edit"
    assert req.references == (ReferenceSource(URL, "image", 0),)


def test_edit_on_a_model_without_edits_refused() -> None:
    refused({"prompt": "a cat", "model": "dall-e-3", "image": URL}, "model", operation="edit")


def test_generate_with_references_stays_generate() -> None:
    assert norm(image_urls=[URL]).operation == "generate"


def test_explicit_references_and_mask_override_body() -> None:
    uploaded = (ReferenceSource("data:image/png;base64,AAAA", "image", 0),)
    mask = ReferenceSource("data:image/png;base64,BBBB", "mask", 0)
    req = normalize(
        {"prompt": "a cat", "image_urls": [URL, URL2]},
        CATALOG,
        operation="edit",
        references=uploaded,
        mask=mask,
    )
    assert req.references == uploaded
    assert req.mask == mask


def test_explicit_references_are_counted() -> None:
    uploaded = tuple(ReferenceSource(f"data:,{i}", "image", i) for i in range(2))
    refused({"prompt": "a cat", "model": "dall-e-2"}, "image", references=uploaded)


def test_explicit_mask_without_references_refused() -> None:
    refused({"prompt": "a cat"}, "mask", mask=ReferenceSource("data:,m", "mask", 0))


# --------------------------------------------------------------------------- variations


def vary(**fields: Any) -> ImageRequest:
    return normalize({"image": URL, **fields}, CATALOG, operation="variation")


def refuse_variation(param: str, code: str | None = None, **fields: Any
                     ) -> InvalidRequestError:
    return refused({"image": URL, **fields}, param, code, operation="variation")


def test_variation_defaults_to_the_model_that_offers_it() -> None:
    req = vary()
    assert req.operation == "variation"
    assert req.model == "dall-e-2"  # not the catalog's default_model, which has none
    assert (req.prompt, req.n, req.size_label, req.response_format) == ("", 1, "1024x1024",
                                                                          "url")
    assert req.references == (ReferenceSource(URL, "image", 0),)
    assert req.mask is None


def test_variation_fields() -> None:
    req = vary(model="dall-e-2", n=10, size="256x256", response_format="b64_json", user="u1")
    assert (req.n, req.width, req.height, req.response_format, req.user) == (
        10, 256, 256, "b64_json", "u1")
    assert vary(size="512x512").size_label == "512x512"


def test_variation_prompt_is_ignored_and_recorded() -> None:
    req = vary(prompt="ignored", vendor_extra=1)
    assert req.prompt == ""
    assert req.ignored_fields == ("prompt", "vendor_extra")


def test_variation_from_an_upload() -> None:
    upload = (ReferenceSource("in.png", "image", 0, b"\x89PNG"),)
    req = normalize({}, CATALOG, operation="variation", references=upload)
    assert req.references == upload


@pytest.mark.parametrize("model", [m for m in ALL_MODELS if m != "dall-e-2"])
def test_variation_needs_a_model_that_offers_it(model: str) -> None:
    err = refuse_variation("model", "unsupported_model", model=model)
    assert "dall-e-2" in err.message  # says which model does


def test_variation_unknown_model_is_a_404() -> None:
    with pytest.raises(ModelNotFoundError) as ei:
        vary(model="dall-e-9")
    assert ei.value.param == "model"


def test_variation_without_a_model_that_offers_it() -> None:
    catalog = dataclasses.replace(CATALOG, models={
        name: spec for name, spec in CATALOG.models.items() if not spec.variations})
    with pytest.raises(InvalidRequestError) as ei:
        normalize({"image": URL}, catalog, operation="variation")
    assert (ei.value.param, ei.value.code) == ("model", "unsupported_model")


@pytest.mark.parametrize("body", [{}, {"image": []}, {"image": ""}, {"prompt": "a cat"}])
def test_variation_without_an_image(body: dict[str, Any]) -> None:
    refused(body, "image", "missing_required_parameter", operation="variation")


def test_variation_with_two_images() -> None:
    err = refuse_variation("image", image=[URL, URL2])
    assert "exactly one" in err.message
    # As for edits, a count names the first field the images came in (aliases in order).
    refused({"image": URL, "image_urls": [URL2]}, "image_urls", operation="variation")
    uploads = tuple(ReferenceSource(f"f{i}.png", "image", i, b"x") for i in range(2))
    refused({}, "image", operation="variation", references=uploads)


@pytest.mark.parametrize("field", ["mask", "mask_url"])
def test_variation_refuses_a_mask(field: str) -> None:
    err = refuse_variation(field, **{field: URL2})
    assert "mask" in err.message
    refused({"image": URL}, "mask", operation="variation",
            mask=ReferenceSource("m.png", "mask", 0, b"x"))


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"n": 0}, "n", None),
    ({"n": 11}, "n", None),
    ({"n": "2"}, "n", "invalid_type"),
    ({"n": True}, "n", "invalid_type"),
    ({"size": "1792x1024"}, "size", None),
    ({"size": "16:9"}, "size", None),
    ({"size": 512}, "size", "invalid_type"),
    ({"response_format": "png"}, "response_format", None),
    ({"stream": True, "partial_images": 1}, "stream", None),
    ({"stream": True}, "stream", None),
    ({"user": 5}, "user", "invalid_type"),
    ({"output_format": "webp"}, "output_format", None),
    ({"wait_for_result": "later"}, "wait_for_result", "invalid_type"),
])
def test_variation_field_errors_name_the_field(fields: dict[str, Any], param: str,
                                               code: str | None) -> None:
    refuse_variation(param, code, **fields)


def test_variation_round_trips_through_json() -> None:
    req = vary(n=3, size="512x512")
    assert ImageRequest.from_json(json.loads(json.dumps(req.to_json()))) == req


# --------------------------------------------------------------------------- ImageRequest JSON


def _full_request() -> ImageRequest:
    req = normalize(
        {
            "model": "gpt-image-1.5",
            "prompt": "保持人物主体一致",
            "n": 3,
            "size": "1536x1024",
            "output_format": "webp",
            "output_compression": 80,
            "background": "transparent",
            "quality": "high",
            "moderation": "low",
            "style": "natural",
            "user": "user-7",
            "response_format": "b64_json",
            "image_urls": [URL, {"url": DATA_URL}],
            "images": BARE_B64,
            "mask_url": URL2,
            "vendor_extra": {"a": 1},
        },
        CATALOG,
        operation="edit",
    )
    return dataclasses.replace(req, extra={"profile": "apimart", "nested": {"k": [1, 2]}})


def test_to_json_from_json_round_trip() -> None:
    req = _full_request()
    assert req.references == (
        ReferenceSource(URL, "image_urls", 0),
        ReferenceSource(DATA_URL, "image_urls", 1),
        ReferenceSource(BARE_B64, "images", 0),
    )
    assert req.ignored_fields == ("vendor_extra",)
    assert ImageRequest.from_json(req.to_json()) == req


def test_round_trip_through_json_text() -> None:
    req = _full_request()
    text = json.dumps(req.to_json())
    back = ImageRequest.from_json(json.loads(text))
    assert back == req
    assert back.to_json() == req.to_json()


@pytest.mark.parametrize("model", ALL_MODELS)
def test_round_trip_minimal(model: str) -> None:
    req = norm(model=model)
    data = json.loads(json.dumps(req.to_json()))
    assert data["mask"] is None
    assert data["references"] == []
    assert ImageRequest.from_json(data) == req


def test_from_json_tolerates_missing_optional_keys() -> None:
    data = norm().to_json()
    for key in ("style", "user", "references", "mask", "ignored_fields", "extra"):
        del data[key]
    assert ImageRequest.from_json(data) == norm()


def test_new_fields_round_trip_and_default_when_missing() -> None:
    """Issue 18's fields survive the task row; a row written before them reads as before."""
    req = normalize({"prompt": "p", "image_urls": [URL], "resolution": "2k"}, CATALOG,
                    size_from_reference=True)
    data = json.loads(json.dumps(req.to_json()))
    assert ImageRequest.from_json(data) == req
    assert (data["quality_auto"], data["size_from_reference"], data["resolution"]) == (
        True, True, "2k")
    for key in ("quality_auto", "size_from_reference", "resolution", "revises_prompt"):
        del data[key]
    old = ImageRequest.from_json(data)
    assert (old.quality_auto, old.size_from_reference, old.resolution,
            old.revises_prompt) == (False, False, None, False)


# ------------------------------------------------ the size of a reference image (issue 18)


def stored(width: int, height: int) -> StoredReference:
    return StoredReference(key="tasks/t/refs/0.png", content_type="image/png", width=width,
                           height=height, size=100)


def from_reference(body: dict[str, Any], *refs: tuple[int, int]) -> ImageRequest:
    """`body` normalized the apimart way, then "ingested" with references of these sizes."""
    req = normalize({"prompt": "p", **body}, CATALOG, size_from_reference=True)
    req = dataclasses.replace(req, references=(),
                              reference_images=tuple(stored(w, h) for w, h in refs))
    return settle_reference_size(req, CATALOG)


@pytest.mark.parametrize(("body", "flag"), [
    ({"image_urls": [URL]}, True),
    ({"image_urls": [URL], "size": ""}, True),
    ({"image_urls": [URL], "size": None}, True),
    ({"image_urls": [URL], "resolution": "4k"}, True),
    ({"image_urls": [URL], "size": "auto"}, False),  # sent: the seed's 1:1
    ({"image_urls": [URL], "size": "3:2"}, False),
    ({"image_urls": [URL], "size": "1024x1024"}, False),
    ({}, False),  # no reference: the model's default size
])
def test_size_from_reference_only_without_size_and_with_references(
        body: dict[str, Any], flag: bool) -> None:
    req = normalize({"prompt": "p", **body}, CATALOG, size_from_reference=True)
    assert req.size_from_reference is flag
    # The native rule (the 000 seed's default size) never takes it from the image.
    assert normalize({"prompt": "p", **body}, CATALOG).size_from_reference is False


def test_settle_takes_the_first_reference_and_settles_tier_and_label() -> None:
    req = from_reference({"image_urls": [URL, URL2]}, (2048, 1360), (512, 512))
    assert (req.width, req.height, req.tier, req.size_label) == (2048, 1360, "2k", "2048x1360")
    req = from_reference({"image_urls": [URL], "resolution": "4k"}, (1536, 1024))
    assert (req.width, req.height, req.tier) == (3520, 2336, "4k")
    # Nothing to settle: the request is returned as it is.
    plain = norm(image_urls=[URL])
    assert settle_reference_size(plain, CATALOG) is plain


def test_settle_checks_n_against_the_settled_tier() -> None:
    """n=10 is fine at the provisional 1k, but a 4k reference makes a 4k image (n <= 4)."""
    assert from_reference({"image_urls": [URL], "n": 4}, (8000, 6000)).tier == "4k"
    with pytest.raises(InvalidRequestError) as info:
        from_reference({"image_urls": [URL], "n": 10}, (8000, 6000))
    assert info.value.param == "n" and "3312x2480" in info.value.message


def test_to_json_shape() -> None:
    data = _full_request().to_json()
    assert data["references"][0] == [URL, "image_urls", 0]
    assert data["mask"] == [URL2, "mask_url", 0]
    assert (data["width"], data["height"], data["tier"], data["size_label"]) == (
        1536,
        1024,
        "1k",
        "1536x1024",
    )
    assert data["operation"] == "edit"
    assert data["output_compression"] == 80


# --------------------------------------------------------------------------- bounded strings


@pytest.mark.parametrize("field", sorted(FIELD_CHARS))
def test_every_string_field_has_its_cap(field: str) -> None:
    cap = FIELD_CHARS[field]
    err = refuse(field, "string_above_max_length", **{field: "x" * (cap + 1)})
    assert str(cap) in err.message and str(cap + 1) in err.message
    # At the cap the length is no reason to refuse (the value itself may still be wrong).
    try:
        norm(**{field: "x" * cap})
    except (InvalidRequestError, NotFoundError) as at_cap:
        assert at_cap.code != "string_above_max_length"


def test_user_up_to_256_characters() -> None:
    assert norm(user="u" * 256).user == "u" * 256
    refuse("user", "string_above_max_length", user="u" * 257)
    # The security review sent 95 MB; it is refused by its length alone.
    refuse("user", "string_above_max_length", user="u" * 10_000_000)


def test_a_long_model_name_is_refused_before_the_lookup() -> None:
    err = refuse("model", "string_above_max_length", model="m" * 10_000)
    assert "m" * 300 not in err.message  # never echoed back


def test_reference_urls_are_capped() -> None:
    at_cap = "https://example.com/" + "a" * (REFERENCE_URL_CHARS - 20)
    assert len(at_cap) == REFERENCE_URL_CHARS
    assert norm(image_urls=[at_cap]).references[0].value == at_cap
    refuse("image_urls[1]", "string_above_max_length", image_urls=[URL, at_cap + "a"])
    refuse("mask_url", "string_above_max_length", image_urls=[URL], mask_url=at_cap + "a")
    # Passed in by a multipart surface (text fields): the same cap.
    body = {"prompt": "a cat"}
    refused(body, "image[0]", "string_above_max_length", operation="edit",
            references=(ReferenceSource("HTTPS://x.test/" + "a" * REFERENCE_URL_CHARS,
                                        "image", 0),))
    # data: URLs and base64 are capped by bytes in ingest, not here.
    long_data = "data:image/png;base64," + "A" * (REFERENCE_URL_CHARS * 2)
    assert norm(image_urls=[long_data]).references[0].value == long_data


def test_ignored_fields_are_recorded_bounded() -> None:
    body: dict[str, Any] = {"prompt": "a cat"}
    body.update({f"{i:03d}" + "k" * 200: i for i in range(1000)})
    req = normalize(body, CATALOG)
    assert len(req.ignored_fields) == IGNORED_FIELDS
    assert all(len(name) == IGNORED_FIELD_CHARS for name in req.ignored_fields)
    assert req.ignored_fields == tuple(sorted(req.ignored_fields))
    assert req.ignored_fields[0] == ("000" + "k" * 200)[:IGNORED_FIELD_CHARS]
    assert record_ignored(["b", "a", "a"]) == ("a", "b")


@pytest.mark.parametrize("size", ["１０２４x１０２４", "𝟏𝟎𝟐𝟒x𝟏𝟎𝟐𝟒", "01024x1024", "+1024x1024",
                                  "1_024x1024", "١٠٢٤x١٠٢٤"])
def test_size_digits_are_ascii_and_canonical(size: str) -> None:
    refuse("size", "invalid_value", size=size)
    assert norm(size="1024x1024").size_label == "1024x1024"
