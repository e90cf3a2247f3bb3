"""The OpenAI Images wire format, shared by the `openai` and `openai_compatible` adapters:
request bodies per model family, the edits and variations multipart forms, and reading
`data[]` answers.

Pure functions of the request, so the two adapters differ only in which of these fields
they send and where (see their modules).
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import aiohttp

from imagegate.domain.catalog import Catalog, ModelSpec
from imagegate.domain.images import ReferenceImage, format_of
from imagegate.domain.request import PRODUCED_BACKGROUNDS, PRODUCED_QUALITIES, ImageRequest
from imagegate.providers.big_json import Base64Text
from imagegate.providers.upstream import bad_response

GPT_IMAGE_QUALITIES = ("auto", "low", "medium", "high")
# Quality names of the other family, mapped to the nearest this family has.
_TO_GPT_QUALITY = {"hd": "high", "standard": "medium"}
_TO_DALLE_QUALITY = {"high": "hd", "hd": "hd"}
# Fields the official Images API accepts on /images/edits (no `moderation`, no `style`).
EDIT_FIELDS = frozenset({
    "model", "prompt", "n", "size", "quality", "background", "output_format",
    "output_compression", "user", "response_format",
})

# OpenAI's rule for the variation input: a square PNG of less than 4 MB.
VARIATION_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResultItem:
    """One entry of `data[]`: the image as the upstream gave it (b64 or URL), or already
    decoded where the answer was parsed by `big_json.loads_images`."""

    value: str | Base64Text
    revised_prompt: str | None = None


def model_spec(catalog: Catalog, upstream_model: str, model: str) -> ModelSpec | None:
    """The rules of the model the upstream runs: its own name first (a channel may map our
    name to another model), else ours."""
    return catalog.get(upstream_model) or catalog.get(model)


def family(spec: ModelSpec | None, upstream_model: str) -> str:
    if spec is not None:
        return spec.family
    return "dall-e-3" if upstream_model.startswith("dall-e-3") else (
        "dall-e-2" if upstream_model.startswith("dall-e") else "gpt-image-2")


def is_dalle(fam: str) -> bool:
    return fam.startswith("dall-e")


def upstream_size(request: ImageRequest, spec: ModelSpec | None) -> str:
    """`WxH` for flexible models; for enumerated ones the offered size nearest in shape."""
    wxh = f"{request.width}x{request.height}"
    if spec is None or spec.size_rule == "flexible" or wxh in spec.sizes or not spec.sizes:
        return wxh
    want = math.log(request.width / request.height)

    def distance(size: str) -> tuple[float, int]:
        w, h = (int(v) for v in size.split("x"))
        return abs(math.log(w / h) - want), abs(w * h - request.width * request.height)

    return min(spec.sizes, key=distance)


def generation_body(request: ImageRequest, upstream_model: str,
                    spec: ModelSpec | None) -> dict[str, Any]:
    """Every field the official API accepts for this model family, as OpenAI spells it."""
    fam = family(spec, upstream_model)
    body: dict[str, Any] = {
        "model": upstream_model,
        "prompt": request.prompt,
        "n": request.n,
        "size": upstream_size(request, spec),
    }
    if is_dalle(fam):
        if fam == "dall-e-3":
            body["quality"] = _TO_DALLE_QUALITY.get(request.quality, "standard")
            if request.style:
                body["style"] = request.style
        # DALL·E answers with a 60-minute URL unless asked for base64.
        body["response_format"] = "b64_json"
    else:
        # Left to the model by the client: the upstream chooses (and reports its choice).
        quality = "auto" if request.quality_auto else _TO_GPT_QUALITY.get(request.quality,
                                                                          request.quality)
        body["quality"] = quality if quality in GPT_IMAGE_QUALITIES else "auto"
        body["background"] = request.background
        body["output_format"] = request.output_format
        if request.output_compression is not None and request.output_format != "png":
            body["output_compression"] = request.output_compression
        body["moderation"] = request.moderation or "auto"
    if request.user:
        body["user"] = request.user
    return body


def variation_body(request: ImageRequest, upstream_model: str,
                   spec: ModelSpec | None) -> dict[str, Any]:
    """The text fields of POST /images/variations (createImageVariation), as OpenAI spells
    them: no prompt, no quality, nothing but these."""
    body: dict[str, Any] = {
        "model": upstream_model,
        "n": request.n,
        "size": upstream_size(request, spec),
        # As for DALL·E generations: base64 now rather than a URL that expires in 60 minutes.
        "response_format": "b64_json",
    }
    if request.user:
        body["user"] = request.user
    return body


def variation_input_problem(image: ReferenceImage) -> str | None:
    """Why OpenAI would refuse `image` as a variation input (square PNG, < 4 MB), or None."""
    problems = []
    if image.content_type != "image/png":
        problems.append(f"it is {format_of(image.content_type) or image.content_type}")
    if image.width != image.height:
        problems.append(f"it is {image.width}x{image.height}")
    if len(image.data) >= VARIATION_MAX_BYTES:
        problems.append(f"it has {len(image.data)} bytes")
    if not problems:
        return None
    return "the image must be a square PNG of less than 4 MB; " + " and ".join(problems)


def filename(index: int, content_type: str, stem: str = "image") -> str:
    return f"{stem}_{index}.{format_of(content_type) or 'png'}"


def edit_form(body: dict[str, Any], references: tuple[ReferenceImage, ...],
              mask: ReferenceImage | None, *, image_field: str = "image[]") -> aiohttp.FormData:
    """The multipart form of POST /images/edits: text fields, `image[]` files, `mask`."""
    form = aiohttp.FormData(quote_fields=False)
    for key, value in body.items():
        form.add_field(key, str(value))
    for i, ref in enumerate(references):
        form.add_field(image_field, ref.data, filename=filename(i, ref.content_type),
                       content_type=ref.content_type)
    if mask is not None:
        form.add_field("mask", mask.data, filename=filename(0, mask.content_type, "mask"),
                       content_type=mask.content_type)
    return form


def data_url(image: ReferenceImage) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def parse_answer(answer: Any, channel: str) -> tuple[list[ResultItem], dict[str, object]]:
    """The images of an Images API answer (b64 or URL per item) and its `usage`.

    Resellers' quirks are normal input here: `b64_json: ""` beside a url, `url` as a list,
    relative or data URLs (the downloader resolves those)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
        raise bad_response(channel, "no data[] list")
    items: list[ResultItem] = []
    for entry in answer["data"]:
        if not isinstance(entry, dict):
            raise bad_response(channel, "a data[] entry is not an object")
        b64 = entry.get("b64_json")
        value = b64 if isinstance(b64, Base64Text) else (
            _first_text(b64) or _first_text(_text(entry.get("url"))))
        if not value:
            raise bad_response(channel, "a data[] entry has neither b64_json nor url")
        revised = _text(entry.get("revised_prompt"))
        items.append(ResultItem(value, revised if isinstance(revised, str) and revised else None))
    if not items:
        raise bad_response(channel, "data[] is empty")
    usage = answer.get("usage")
    return items, dict(usage) if isinstance(usage, dict) else {}


def reported_choices(answer: Any) -> tuple[str | None, str | None]:
    """The `quality` and `background` an answer says it made (GPT image models report them),
    each None when absent or not a made value (a reseller echoing `auto`)."""
    if not isinstance(answer, dict):
        return None, None
    quality, background = answer.get("quality"), answer.get("background")
    return (quality if quality in PRODUCED_QUALITIES else None,
            background if background in PRODUCED_BACKGROUNDS else None)


def _text(value: Any) -> Any:
    # Any long string of the answer may have been decoded (it looked like base64): wherever a
    # text is meant, the text it was.
    return value.text() if isinstance(value, Base64Text) else value


def _first_text(value: Any) -> str:
    # A list of URLs is mirrors of one image (as in apimart's url[]): the first will do.
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v.strip()), "")
    return value.strip() if isinstance(value, str) else ""
