"""What the OpenAI Images API accepts, as the 003 and 004 seeds state it, for the fake in
`openai_api`. Written out from the seeds on purpose, not imported from imagegate: a fake that
shared the gateway's rules could never catch the gateway disagreeing with the service.

003 (the official reference, as a reseller republishes it; its `CreateImageRequest`):
- `size`: gpt-image-1 one of 1024x1024, 1536x1024, 1024x1536 or `auto`; dall-e-2 one of
  256x256, 512x512, 1024x1024; dall-e-3 one of 1024x1024, 1792x1024, 1024x1792.
- `n` 1–10, dall-e-3 only 1; `prompt` at most 32000 characters (gpt-image-1), 1000
  (dall-e-2), 4000 (dall-e-3).
- `quality`: `auto` (the default, for every model), gpt-image-1 high/medium/low, dall-e-3
  hd/standard, dall-e-2 standard. `background` transparent/opaque/auto and `output_format`
  png/jpeg/webp, `output_compression` 0–100, `moderation` low/auto, `stream`,
  `partial_images` 0–3: gpt-image-1 only. `style` vivid/natural: dall-e-3 only.
  `response_format` url/b64_json: DALL·E only. A transparent background needs png or webp.

004 (a gpt-image-2 reseller):
- Custom sizes: every edge a multiple of 16, each edge ≤ 3840px, aspect ratio < 3:1 (strictly
  less), total pixels in [655 360, 8 294 400]; its listed sizes (1024x1024 … 3840x2160,
  2160x3840) and `auto` all fit those rules.
- gpt-image-2 has no transparent background; `stream` needs `partial_images` ≥ 1, else 400
  "Streaming must have non-zero partial images" with `code: null`.
- Errors are `{"error": {message, type, param, code}}`; an unknown model is a 404.

Variations (POST /images/variations, OpenAI's createImageVariation; the 003 seed republishes
only createImage, so the fields and the input rule come from OpenAI's own reference, and the
dall-e-2 rules above — sizes, `n` 1–10, `response_format` — apply as they are):
- multipart with one `image` file: a PNG, square, less than 4 MB; no prompt, no mask;
- fields `model` (dall-e-2 only, also the default), `n`, `size` (default 1024x1024),
  `response_format`, `user`; anything else is `unknown_parameter`.
"""

from __future__ import annotations

import re
from typing import Any

Family = str  # "gpt" (gpt-image-1 class), "gpt2" (gpt-image-2 class), "dall-e-3", "dall-e-2"

GPT_SIZES = frozenset({"1024x1024", "1536x1024", "1024x1536", "auto"})
DALLE3_SIZES = frozenset({"1024x1024", "1792x1024", "1024x1792"})
DALLE2_SIZES = frozenset({"256x256", "512x512", "1024x1024"})
# 004's custom-size rules for gpt-image-2.
FLEX_MULTIPLE = 16
FLEX_MAX_EDGE = 3840
FLEX_RATIO_BELOW = 3  # long:short must stay under 3:1; exactly 3:1 is refused
FLEX_MIN_PIXELS = 655_360
FLEX_MAX_PIXELS = 8_294_400

MAX_N = 10
MAX_PROMPT = {"gpt": 32_000, "gpt2": 32_000, "dall-e-3": 4_000, "dall-e-2": 1_000}
QUALITIES: dict[Family, frozenset[str]] = {
    "gpt": frozenset({"auto", "low", "medium", "high"}),
    "gpt2": frozenset({"auto", "low", "medium", "high"}),
    "dall-e-3": frozenset({"auto", "standard", "hd"}),
    "dall-e-2": frozenset({"auto", "standard"}),
}
CHOICES: dict[str, frozenset[str]] = {  # parameter -> its values, for every model taking it
    "background": frozenset({"transparent", "opaque", "auto"}),
    "output_format": frozenset({"png", "jpeg", "webp"}),
    "moderation": frozenset({"low", "auto"}),
    "style": frozenset({"vivid", "natural"}),
    "response_format": frozenset({"url", "b64_json"}),
}
MAX_PARTIAL_IMAGES = 3

_GPT_ENUMERATED = frozenset({"gpt-image-1", "gpt-image-1.5", "gpt-image-1-mini"})
GPT_PARAMS = frozenset({
    "model", "prompt", "n", "size", "quality", "background", "output_format",
    "output_compression", "moderation", "user", "stream", "partial_images",
})
GPT_EDIT_PARAMS = (GPT_PARAMS - {"moderation"}) | {"input_fidelity", "image", "image[]", "mask"}
DALLE_PARAMS: dict[Family, frozenset[str]] = {
    "dall-e-3": frozenset({"model", "prompt", "n", "size", "quality", "style",
                           "response_format", "user"}),
    "dall-e-2": frozenset({"model", "prompt", "n", "size", "quality", "response_format",
                           "user"}),
}
DALLE2_EDIT_PARAMS = DALLE_PARAMS["dall-e-2"] | {"image", "mask"}
FILE_FIELDS = frozenset({"image", "image[]", "mask"})
# The model OpenAI assumes when a request names none.
DEFAULT_MODEL = "dall-e-2"

VARIATION_MODELS = frozenset({"dall-e-2"})
VARIATION_PARAMS = frozenset({"model", "n", "size", "response_format", "user", "image"})
VARIATION_DEFAULT_SIZE = "1024x1024"
VARIATION_MAX_BYTES = 4 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_WXH = re.compile(r"^([1-9][0-9]{0,4})x([1-9][0-9]{0,4})$")


class Rejection(Exception):
    """A request the service refuses: the HTTP status and the error body's fields."""

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 code: str | None = None, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.error_type = error_type

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type,
                          "param": self.param, "code": self.code}}


def family(model: str) -> Family | None:
    if model in ("dall-e-3", "dall-e-2"):
        return model
    if model in _GPT_ENUMERATED:
        return "gpt"
    if model.startswith("gpt-image-2"):  # 004: gpt-image-2, -pro, -2026-04-21
        return "gpt2"
    return None


def parse_wxh(size: str) -> tuple[int, int] | None:
    """`WxH` exactly as the seeds write it (lowercase `x`, no spaces)."""
    m = _WXH.match(size)
    return (int(m.group(1)), int(m.group(2))) if m else None


def flexible_size_problem(width: int, height: int) -> str | None:
    """Which of 004's custom-size rules `width`x`height` breaks; None when it keeps them."""
    if width % FLEX_MULTIPLE or height % FLEX_MULTIPLE:
        return f"each edge must be a multiple of {FLEX_MULTIPLE}"
    if max(width, height) > FLEX_MAX_EDGE:
        return f"each edge must be at most {FLEX_MAX_EDGE}px"
    if max(width, height) >= FLEX_RATIO_BELOW * min(width, height):
        return f"the aspect ratio must be less than {FLEX_RATIO_BELOW}:1"
    if not FLEX_MIN_PIXELS <= width * height <= FLEX_MAX_PIXELS:
        return f"the total pixels must be between {FLEX_MIN_PIXELS} and {FLEX_MAX_PIXELS}"
    return None


def check_size(fam: Family, model: str, size: str) -> None:
    bad = f"Invalid size '{size}' for {model}"
    if fam == "gpt2":
        if size == "auto":
            return
        wh = parse_wxh(size)
        why = "sizes are WxH" if wh is None else flexible_size_problem(*wh)
        if why is not None:
            raise Rejection(400, f"{bad}: {why}.", param="size", code="invalid_value")
        return
    allowed = {"gpt": GPT_SIZES, "dall-e-3": DALLE3_SIZES}.get(fam, DALLE2_SIZES)
    if size not in allowed:
        raise Rejection(400, f"{bad}.", param="size", code="invalid_value")


def allowed_params(fam: Family, *, edit: bool, accepted_fields: frozenset[str] | None,
                   reseller: bool) -> frozenset[str]:
    """The fields this request may carry: the model's (003), or a reseller's own list."""
    if accepted_fields is not None:
        allowed = accepted_fields | (FILE_FIELDS if edit else frozenset())
    elif fam in DALLE_PARAMS:
        allowed = DALLE2_EDIT_PARAMS if edit else DALLE_PARAMS[fam]
    else:
        allowed = GPT_EDIT_PARAMS if edit else GPT_PARAMS
    if reseller and not edit:
        allowed = allowed | {"image"}  # 004: reference images ride on generations
    return allowed


def validate(params: dict[str, Any], *, edit: bool, has_image: bool,
             accepted_fields: frozenset[str] | None = None,
             reseller: bool = False) -> tuple[str, Family, str, int]:
    """Check a generation or edit request; returns (model, family, size, n) or raises
    Rejection with the status and body the service would answer."""
    model = str(params.get("model") or DEFAULT_MODEL)
    fam = family(model)
    if fam is None:
        raise Rejection(404, f"The model `{model}` does not exist or you do not have "
                        "access to it.", code="model_not_found")
    allowed = allowed_params(fam, edit=edit, accepted_fields=accepted_fields,
                             reseller=reseller)
    for key in params:
        if key not in allowed:
            raise Rejection(400, f"Unknown parameter: '{key}'.", param=key,
                            code="unknown_parameter")
    prompt = params.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Rejection(400, "Missing required parameter: 'prompt'.", param="prompt",
                        code="missing_required_parameter")
    if len(prompt) > MAX_PROMPT[fam]:
        raise Rejection(400, f"Invalid 'prompt': string too long. Expected a string with "
                        f"maximum length {MAX_PROMPT[fam]}, but got a string with length "
                        f"{len(prompt)} instead.", param="prompt",
                        code="string_above_max_length")
    n = integer(params.get("n", 1), "n")
    if not 1 <= n <= MAX_N or (fam == "dall-e-3" and n != 1):
        raise Rejection(400, f"Invalid 'n': {n}.", param="n", code="invalid_value")
    size = str(params.get("size") or "auto")
    check_size(fam, model, size)
    quality = params.get("quality")
    if quality is not None and quality not in QUALITIES[fam]:
        raise Rejection(400, f"Invalid value: '{quality}'.", param="quality",
                        code="invalid_value")
    _check_choices(params, fam)
    _check_stream(params)
    if edit and not has_image:
        raise Rejection(400, "Missing required parameter: 'image'.", param="image",
                        code="missing_required_parameter")
    return model, fam, size, n


def validate_variation(params: dict[str, Any], image: bytes | None, *,
                       accepted_fields: frozenset[str] | None = None) -> tuple[str, str, int]:
    """Check a variation request (its text fields, and the `image` file's bytes or None when
    no file came); returns (model, size, n) or raises Rejection as the service answers."""
    model = str(params.get("model") or DEFAULT_MODEL)
    if family(model) is None:
        raise Rejection(404, f"The model `{model}` does not exist or you do not have "
                        "access to it.", code="model_not_found")
    if model not in VARIATION_MODELS:
        raise Rejection(400, f"Invalid value: '{model}'. Variations are only supported for "
                        f"{', '.join(sorted(VARIATION_MODELS))}.", param="model",
                        code="invalid_value")
    allowed = VARIATION_PARAMS if accepted_fields is None else accepted_fields | {"image"}
    for key in params:
        if key not in allowed:
            raise Rejection(400, f"Unknown parameter: '{key}'.", param=key,
                            code="unknown_parameter")
    if image is None:
        raise Rejection(400, "Missing required parameter: 'image'.", param="image",
                        code="missing_required_parameter")
    _check_variation_image(image)
    n = integer(params.get("n", 1), "n")
    if not 1 <= n <= MAX_N:
        raise Rejection(400, f"Invalid 'n': {n}.", param="n", code="invalid_value")
    size = str(params.get("size") or VARIATION_DEFAULT_SIZE)
    if size not in DALLE2_SIZES:
        raise Rejection(400, f"Invalid size '{size}' for {model}.", param="size",
                        code="invalid_value")
    value = params.get("response_format")
    if value is not None and value not in CHOICES["response_format"]:
        raise Rejection(400, f"Invalid value: '{value}'. Supported values are: "
                        f"{', '.join(sorted(CHOICES['response_format']))}.",
                        param="response_format", code="invalid_value")
    return model, size, n


def _check_variation_image(image: bytes) -> None:
    """A PNG under 4 MB, square, read from the PNG header alone (IHDR: width, height)."""
    if not image.startswith(_PNG_SIGNATURE) or len(image) >= VARIATION_MAX_BYTES:
        raise Rejection(400, "Uploaded image must be a PNG and less than 4 MB.",
                        param="image", code="invalid_image")
    if len(image) < 24 or image[12:16] != b"IHDR":
        raise Rejection(400, "Invalid image file.", param="image", code="invalid_image")
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    if width != height:
        raise Rejection(400, f"Uploaded image must be square; got {width}x{height}.",
                        param="image", code="invalid_image")


def _check_choices(params: dict[str, Any], fam: Family) -> None:
    for name, values in CHOICES.items():
        value = params.get(name)
        if value is not None and value not in values:
            raise Rejection(400, f"Invalid value: '{value}'. Supported values are: "
                            f"{', '.join(sorted(values))}.", param=name, code="invalid_value")
    background = params.get("background")
    if background == "transparent" and fam == "gpt2":
        raise Rejection(400, "Transparent background is not supported for this model.",
                        param="background", code="invalid_value")
    if background == "transparent" and (params.get("output_format") or "png") not in (
            "png", "webp"):
        raise Rejection(400, "Transparent background requires output_format png or webp.",
                        param="background", code="invalid_value")
    compression = params.get("output_compression")
    if compression is not None and not 0 <= integer(compression, "output_compression") <= 100:
        raise Rejection(400, f"Invalid 'output_compression': {compression}.",
                        param="output_compression", code="invalid_value")


def _check_stream(params: dict[str, Any]) -> None:
    partial = params.get("partial_images")
    count = 0 if partial is None else integer(partial, "partial_images")
    if not 0 <= count <= MAX_PARTIAL_IMAGES:
        raise Rejection(400, f"Invalid 'partial_images': {count}.", param="partial_images",
                        code="invalid_value")
    stream = params.get("stream")
    if (stream is True or str(stream).lower() == "true") and count < 1:
        # 004's message and type word for word, with its `code: null`.
        raise Rejection(400, "Streaming must have non-zero partial images")


def integer(value: Any, param: str) -> int:
    """An integer field (multipart sends it as text); `true` is not a number."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise Rejection(400, f"Invalid type for '{param}'.", param=param, code="invalid_type")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Rejection(400, f"Invalid type for '{param}'.", param=param,
                        code="invalid_type") from None
