"""What OpenAI's moderation endpoint accepts and answers, for the fake in `openai_api`,
written from OpenAI's API reference (`POST /v1/moderations`, "Classifies if text and/or image
inputs are potentially harmful"), not from imagegate.

Request: `{"input": ..., "model"?}`. `input` is a string, an array of strings, or an array of
multi-modal objects `{"type": "text", "text"}` / `{"type": "image_url", "image_url": {"url"}}`
(the URL an image's address or a `data:` URL of base64 image data). `model` defaults to
`omni-moderation-latest`; the `text-moderation-*` models take text only.

Answer: `{"id": "modr-…", "model", "results": [...]}`, one result per string of a string
array, one result for a multi-modal array as a whole. Each result holds `flagged`, and per
category `categories` (bool), `category_scores` (0–1) and `category_applied_input_types`
(which input kinds the score came from; image scores exist only for the violence, self-harm
and sexual categories, the others are text only).

The fake's own classifier (its stand-in for a model): a text scores a category when it
contains one of the fake's terms for it (`DEFAULT_TERMS`, replaceable per fake), an image
when its mean colour is near one of the fake's colours (`DEFAULT_COLOURS`: pure red reads as
gore); a category is flagged at a score of 0.5 or more, as OpenAI's booleans are flagged at
the model's own thresholds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagegate.testing.upstreams.openai_rules import Rejection

MODELS = frozenset({"omni-moderation-latest", "omni-moderation-2024-09-26",
                    "text-moderation-latest", "text-moderation-stable"})
DEFAULT_MODEL = "omni-moderation-latest"
IMAGE_CATEGORIES = frozenset({"self-harm", "self-harm/intent", "self-harm/instructions",
                              "sexual", "violence", "violence/graphic"})
CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
              "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
              "sexual", "sexual/minors", "violence", "violence/graphic")
FLAG_AT = 0.5
BASELINE = 0.00001

DEFAULT_TERMS: Mapping[str, Mapping[str, float]] = {
    "gore": {"violence": 0.91, "violence/graphic": 0.88},
    "massacre": {"violence": 0.97},
    "nude": {"sexual": 0.93},
    "slur": {"hate": 0.86, "harassment": 0.74},
    "borderline": {"violence": 0.45},  # scores, but under the flag
    "edgy": {"violence": 0.62},
}
DEFAULT_COLOURS: Mapping[tuple[int, int, int], Mapping[str, float]] = {
    (255, 0, 0): {"violence/graphic": 0.93, "violence": 0.81},
}
COLOUR_TOLERANCE = 40


@dataclass(frozen=True)
class Inputs:
    """A request's inputs: texts and image bytes, and whether each gets its own result."""

    texts: list[str]
    images: list[bytes]
    one_result_each: bool  # a string array: one result per string


def _data_url_bytes(url: Any) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        # The real service fetches http(s) URLs too; this fake answers only what it can
        # check offline, and imagegate only ever sends data: URLs.
        raise Rejection(400, "image_url.url must be a data: URL of base64 image data "
                        "(this fake fetches nothing)", param="input", code="invalid_value")
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(400, "image_url.url is not valid base64", param="input",
                        code="invalid_value") from None


def parse_request(body: Any) -> tuple[str, Inputs]:
    """(model, inputs) of a moderation request, or Rejection."""
    if not isinstance(body, dict) or "input" not in body:
        raise Rejection(400, "you must provide 'input'", param="input",
                        code="missing_required_parameter")
    model = body.get("model", DEFAULT_MODEL)
    if model not in MODELS:
        raise Rejection(404, f"The model '{model}' does not exist", param="model",
                        code="model_not_found")
    extra = set(body) - {"input", "model"}
    if extra:
        raise Rejection(400, f"Unrecognized request argument supplied: {sorted(extra)[0]}",
                        code="unknown_parameter")
    raw = body["input"]
    if isinstance(raw, str):
        return model, Inputs([raw], [], True)
    if not isinstance(raw, list) or not raw:
        raise Rejection(400, "'input' must be a string or a non-empty array", param="input",
                        code="invalid_type")
    if all(isinstance(item, str) for item in raw):
        return model, Inputs(list(raw), [], True)
    texts: list[str] = []
    images: list[bytes] = []
    for item in raw:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        elif kind == "image_url" and isinstance(item.get("image_url"), dict):
            images.append(_data_url_bytes(item["image_url"].get("url")))
        else:
            raise Rejection(400, "each multi-modal input must be {type: text, text} or "
                            "{type: image_url, image_url: {url}}", param="input",
                            code="invalid_type")
    if images and not model.startswith("omni-"):
        raise Rejection(400, f"{model} does not accept image inputs", param="input",
                        code="invalid_value")
    return model, Inputs(texts, images, False)


def text_scores(text: str, terms: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    lowered = text.lower()
    scores: dict[str, float] = {}
    for term, categories in terms.items():
        if term in lowered:
            for category, score in categories.items():
                scores[category] = max(scores.get(category, 0.0), score)
    return scores


def image_scores(mean: tuple[float, ...],
                 colours: Mapping[tuple[int, int, int], Mapping[str, float]]
                 ) -> dict[str, float]:
    scores: dict[str, float] = {}
    for colour, categories in colours.items():
        if all(abs(a - b) <= COLOUR_TOLERANCE for a, b in zip(mean, colour, strict=False)):
            for category, score in categories.items():
                if category in IMAGE_CATEGORIES:
                    scores[category] = max(scores.get(category, 0.0), score)
    return scores


def result(text: dict[str, float], image: dict[str, float], *, has_text: bool,
           has_image: bool) -> dict[str, Any]:
    """One result object from the scores of its text and image inputs."""
    scores = {c: max(text.get(c, BASELINE), image.get(c, BASELINE)) for c in CATEGORIES}
    flags = {c: scores[c] >= FLAG_AT for c in CATEGORIES}
    applied = {c: [kind for kind, present in (("text", has_text),
                                               ("image", has_image and c in IMAGE_CATEGORIES))
                   if present] for c in CATEGORIES}
    return {"flagged": any(flags.values()), "categories": flags, "category_scores": scores,
            "category_applied_input_types": applied}
