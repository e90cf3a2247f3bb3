"""JSON Schemas of the API's bodies, for the OpenAPI document (`api/openapi.py` assembles it).

Nothing here validates a request or serializes a response: bodies are checked by
`domain.normalize` and built by hand, so the hot paths never go through pydantic. These
schemas *describe* that code, and `tests/api/test_schemathesis.py` holds them to it: a value a
schema forbids must be refused (400), and a response must match its schema.

Request schemas follow normalization field by field — types, `null` meaning "the default",
the case-insensitive and whitespace-tolerant spellings it accepts, bounds — and take the
model names, qualities and styles from the catalog the server runs with. What JSON Schema
cannot say (a model's own sizes and `n` per tier, `transparent` needing png or webp, a
reference that must be a real image) is in the descriptions, and answers 400.
"""

from __future__ import annotations

import re
from typing import Any

from imagegate.domain.catalog import Catalog
from imagegate.domain.normalize import REFERENCE_FIELDS
from imagegate.domain.sizes import RATIOS, TIERS

REF = "#/components/schemas/"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF + name}


def nullable(schema: Schema) -> Schema:
    """`schema` or JSON null: normalization reads a null field as an absent one."""
    return {"anyOf": [schema, {"type": "null"}]}


def _insensitive(word: str) -> str:
    """A regex for `word` in any letter case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


def choice(values: tuple[str, ...] | list[str], description: str = "") -> Schema:
    """A field read by `normalize._choice`: one of `values` in any case, surrounding
    whitespace allowed, or "" / null for the default."""
    alternatives = "|".join(_insensitive(v) for v in values)
    return nullable({
        "type": "string",
        "pattern": rf"^(?:\s*(?:{alternatives})\s*)?$",
        "examples": list(values),
        "description": (description + " " if description else "")
        + "Any letter case; empty or null means the default.",
    })


# `true`/`false` as JSON booleans or as strings in any case (`normalize.opt_bool`).
BOOLEAN_LIKE: Schema = {"anyOf": [
    {"type": "boolean"},
    {"type": "string", "pattern": f"^(?:{_insensitive('true')}|{_insensitive('false')})$"},
    {"type": "null"},
]}

_WXH = r"[0-9]{1,5}\s*[xX×*]\s*[0-9]{1,5}"
_SIZE: Schema = nullable({
    "type": "string",
    "pattern": r"^(?:\s*(?:" + "|".join([_insensitive("auto"), *map(re.escape, RATIOS), _WXH])
    + r")\s*)?$",
    "examples": ["auto", "1:1", "16:9", "1024x1024"],
    "description": "`auto`, a ratio (" + ", ".join(RATIOS) + ") or `WxH`; empty or null "
    "means the model's default. Which sizes a model offers is in `GET /v1/models` "
    "(`capabilities`); others answer 400.",
})
_RESOLUTION = choice(TIERS, "The tier a ratio resolves at.")
_OUTPUT_FORMAT = choice(("png", "jpeg", "jpg", "webp"), "`jpg` means jpeg.")

# An input image as `normalize._reference_value` reads it: a non-blank string (an http(s)
# URL, a data: URL or bare base64; never a browser blob: URL), or an object carrying one in
# `url`, `image_url`, `b64_json` or `data`, directly or as `{"url": …}`.
_IMAGE_STRING: Schema = {"type": "string", "pattern": r"\S",
                         "not": {"pattern": r"^\s*" + _insensitive("blob:")}}
_IMAGE_INNER: Schema = {"anyOf": [
    {"type": "string"},
    {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}},
]}
_IMAGE_OBJECT: Schema = {
    "type": "object",
    "anyOf": [{"required": [key], "properties": {key: _IMAGE_INNER}}
              for key in ("url", "image_url", "b64_json", "data")],
}
IMAGE_INPUT: Schema = {"anyOf": [_IMAGE_STRING, _IMAGE_OBJECT]}
REFERENCE: Schema = {
    "anyOf": [
        {"type": "null"},
        {"type": "string", "maxLength": 0},
        IMAGE_INPUT,
        {"type": "array", "items": IMAGE_INPUT},
    ],
    "description": "Reference images: an http(s) URL, a data: URL or bare base64, as a string, "
    "a list, `{url}`, `{image_url}` or `{image_url: {url}}`. Empty or null means none. Each "
    "must be a PNG, JPEG or WebP image; the count is limited per model "
    "(`max_reference_images`).",
}

# A tiny real PNG, so the request examples (and schemathesis's example phase) make images.
EXAMPLE_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAACXBIWXMAA"
               "APoAAAD6AG1e1JrAAAAEUlEQVQI12PQqDiBFTEMLQkAAtVaAdSAaJkAAAAASUVORK5CYII=")


def _request_properties(catalog: Catalog) -> dict[str, Schema]:
    specs = list(catalog.models.values())
    qualities = sorted({q for s in specs for q in s.qualities})
    styles = sorted({st for s in specs for st in s.styles} | {"vivid", "natural"})
    return {
        "model": {"anyOf": [{"type": "string", "enum": [*catalog.names(), ""]},
                            {"type": "null"}],
                  "default": catalog.default_model,
                  "description": "A model of `GET /v1/models`; empty or null means the "
                  "default. An unknown name answers 404 `model_not_found`."},
        "prompt": {"type": "string", "minLength": 1, "pattern": r"\S",
                   "maxLength": max(s.max_prompt_chars for s in specs),
                   "description": "Required, not blank; at most the model's "
                   "`max_prompt_chars`."},
        "n": nullable({"type": "integer", "minimum": 1,
                       "maximum": max(n for s in specs for n in s.n_max.values()),
                       "default": 1,
                       "description": "Images to make; the model's `n_max` for the tier "
                       "bounds it."}),
        "size": _SIZE,
        "resolution": _RESOLUTION,
        "output_format": _OUTPUT_FORMAT,
        "output_compression": nullable({
            "type": "integer", "minimum": 0, "maximum": 100,
            "description": "jpeg and webp only (with png only 100, the default, is accepted)."}),
        "background": choice(("auto", "transparent", "opaque"),
                             "`transparent` needs a model that offers it and png or webp."),
        "quality": choice(qualities, "The model's `qualities`."),
        "moderation": choice(("auto", "low")),
        "style": choice(styles, "For models with `styles`."),
        "user": nullable({"type": "string"}),
        "response_format": choice(("url", "b64_json", "data_url")),
        "wait_for_result": BOOLEAN_LIKE,
        "stream": BOOLEAN_LIKE,
        "partial_images": nullable({"type": "integer", "minimum": 0, "maximum": 3,
                                    "description": "1-3 with `stream: true`."}),
        "official_fallback": BOOLEAN_LIKE,
        "webhook_url": nullable({"type": "string",
                                 "description": "An absolute http(s) URL without credentials."}),
        "webhook_events": {
            "anyOf": [{"type": "null"},
                      {"type": "array", "items": {"type": "string", "enum": [
                          "started", "progress", "completed"]}},
                      {"type": "string", "pattern": "^ *(started|progress|completed)"
                       "( *, *(started|progress|completed))* *$"}],
            "description": "Which task events go to the webhook (completed always does; "
                           "progress at most every 2 s); a form sends them comma-separated."},
        "deadline_seconds": nullable({
            "type": "number", "exclusiveMinimum": 0,
            "description": "Cancel (and refund) the task if it has not finished this many "
            "seconds after submission; at most the server's `max_deadline_seconds` (else "
            "400). The `Cancel-After` header (`90s`, `5m`, `1h` or seconds) does the same."}),
        "mask_url": {"anyOf": [{"type": "null"}, {"type": "string"}, _IMAGE_OBJECT],
                     "description": "A mask for the first reference image (needs one)."},
        "mask": {"anyOf": [{"type": "null"}, IMAGE_INPUT]},
        **{name: REFERENCE for name in REFERENCE_FIELDS},
    }


def image_request(catalog: Catalog, description: str) -> Schema:
    return {
        "type": "object",
        "required": ["prompt"],
        "properties": _request_properties(catalog),
        # Vendor extras are ignored (and recorded), as clients send them.
        "additionalProperties": True,
        "description": description,
    }


# The apimart profile drops these before normalizing (the seed's service has none of them),
# so any value is accepted.
APIMART_IGNORED = ("response_format", "style", "wait_for_result", "stream", "partial_images")


def apimart_request(catalog: Catalog, description: str) -> Schema:
    schema = image_request(catalog, description)
    props = dict(schema["properties"])
    for name in APIMART_IGNORED:
        props[name] = {"description": "Accepted and ignored by this profile."}
    return {**schema, "properties": props}


def edit_form(catalog: Catalog, *, apimart: bool = False) -> Schema:
    """`multipart/form-data` edits: every text field as `form_to_request` converts it."""
    props = {k: v for k, v in _request_properties(catalog).items()
             if k not in REFERENCE_FIELDS and k not in ("mask_url", "mask")}
    if apimart:
        props.update({name: {"description": "Accepted and ignored by this profile."}
                      for name in APIMART_IGNORED})
    files = {"type": "array", "items": {"type": "string", "format": "binary"}}
    return {
        "type": "object",
        "required": ["prompt"],
        "properties": {
            **props,
            "image": {"type": "string", "format": "binary"},
            "image[]": files,
            "images[]": files,
            "mask": {"type": "string", "format": "binary"},
        },
        "description": "Images as files under image, image[], images, images[] or "
        "image_1…image_N (or their URLs as text), the mask under mask.",
    }


def _variation_properties(catalog: Catalog) -> dict[str, Schema]:
    offering = [s for s in catalog.models.values() if s.variations]
    props = _request_properties(catalog)
    return {
        "model": {"anyOf": [{"type": "string", "enum": [*(s.name for s in offering), ""]},
                            {"type": "null"}],
                  "description": "A model that offers variations (`capabilities.variations` "
                  "in `GET /v1/models`); empty or null means the first such model."},
        "n": props["n"],
        "size": choice(sorted({size for s in offering for size in s.sizes}),
                       "The model's enumerated sizes."),
        "response_format": props["response_format"],
        "user": props["user"],
        "wait_for_result": props["wait_for_result"],
        "webhook_url": props["webhook_url"],
        "webhook_events": props["webhook_events"],
        "deadline_seconds": props["deadline_seconds"],
    }


def variation_request(catalog: Catalog) -> Schema:
    """A variation in JSON: the one input image under `image`, no prompt."""
    return {"type": "object", "required": ["image"],
            "properties": {**_variation_properties(catalog), "image": IMAGE_INPUT},
            "additionalProperties": True,
            "description": "A variation of one image (a URL, data: URL or base64)."}


def variation_form(catalog: Catalog) -> Schema:
    """OpenAI's createImageVariation form: one `image` file and the fields as text."""
    return {"type": "object", "required": ["image"],
            "properties": {**_variation_properties(catalog),
                           "image": {"type": "string", "format": "binary"}},
            "description": "The image as a file (or its URL as text) under `image`; no mask."}


# -- responses ---------------------------------------------------------------------------------

INT: Schema = {"type": "integer"}
STR: Schema = {"type": "string"}
NULLABLE_STR: Schema = {"type": ["string", "null"]}
NULLABLE_INT: Schema = {"type": ["integer", "null"]}
AMOUNT: Schema = {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]+$",
          "description": "A decimal amount in the configured currency."}


def obj(properties: dict[str, Schema], *, optional: tuple[str, ...] = (),
        **extra: Any) -> Schema:
    """An object whose properties are all present except `optional`."""
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional], **extra}


# What a response reports is what was produced, never `auto` (the 003 seed's enums).
PRODUCED_QUALITY: Schema = {"type": "string", "enum": ["low", "medium", "high", "standard", "hd"]}
PRODUCED_BACKGROUND: Schema = {"type": "string", "enum": ["transparent", "opaque"]}
ERROR_OBJECT = obj({"message": STR, "type": STR, "param": NULLABLE_STR, "code": NULLABLE_STR},
                   description="What went wrong: program against `type` and `code`.")
ERROR = obj({"error": ref("ErrorObject")}, description="OpenAI's error shape.")
APIMART_ERROR_INNER = obj({"code": INT, "message": STR, "type": STR})
APIMART_ERROR = obj({"error": APIMART_ERROR_INNER},
                    description="The apimart profile's error shape.")

_IMAGE_ITEM = obj({"file_id": STR, "url": STR, "b64_json": STR, "revised_prompt": STR},
                  optional=("url", "b64_json", "revised_prompt"))
IMAGE_RESPONSE = obj(
    {"created": INT, "task_id": STR, "data": {"type": "array", "items": _IMAGE_ITEM},
     "size": STR, "output_format": STR, "quality": PRODUCED_QUALITY,
     "background": PRODUCED_BACKGROUND,
     "usage": {"type": "object"}},
    optional=("usage",),
    description="The images: `url` is a signed link (or a data: URL), `b64_json` the bytes.",
)
TASK_SUBMITTED = obj({"created": INT, "task_id": STR,
                      "data": {"type": "array", "maxItems": 0}},
                     description="The task was created; follow it at `Location`.")
TASK_ACCEPTED = obj({
    "created": INT, "task_id": STR, "data": {"type": "array", "maxItems": 0},
    "status": {"type": "string", "enum": ["queued", "in_progress", "succeeded", "failed",
                                          "cancelled"]},
    "poll_url": {"type": "string", "description": "Where to poll the task (absolute when "
                 "result URLs are)."},
    "expires_at": {"type": "integer", "description": "When the task and its images are "
                   "deleted (Unix seconds)."},
}, description="The task was created (the `/async` routes); poll `poll_url`.")
TASK = obj({
    "id": STR, "task_id": STR, "object": {"type": "string", "enum": ["image.task"]},
    "status": {"type": "string",
               "enum": ["queued", "in_progress", "succeeded", "failed", "cancelled"]},
    "progress": {"type": "integer", "minimum": 0, "maximum": 100},
    "model": STR, "created_at": INT, "completed_at": NULLABLE_INT,
    "expires_at": {"type": "integer",
                   "description": "When the task and its images are deleted (unix seconds)."},
    "attempts": {"type": "integer", "minimum": 0,
                 "description": "Runs started (a worker lost mid-run starts another)."},
    "queue_position": {"type": ["integer", "null"], "minimum": 0,
                       "description": "While queued: tasks that will be started before this "
                       "one (0: next). null otherwise."},
    "estimated_seconds": {"type": ["number", "null"], "minimum": 0,
                          "description": "Typical run time of the model × tier (a moving "
                          "average of finished tasks, else the catalog's figure). null once "
                          "the task has ended."},
    "deadline_at": NULLABLE_INT,
    "result": {"anyOf": [ref("ImageResponse"), {"type": "null"}]},
    "error": {"anyOf": [ref("ErrorObject"), {"type": "null"}]},
})
TASK_LIST = obj({"object": {"type": "string", "enum": ["list"]},
                 "data": {"type": "array", "items": ref("Task"),
                          "description": "Newest first. A succeeded task's `result` links "
                          "its images (`url`), never inlines their bytes."},
                 "has_more": {"type": "boolean"},
                 "last_id": {**NULLABLE_STR, "description": "`after` for the next page"}})

_CAPABILITIES = obj({
    "size_rule": {"type": "string", "enum": ["flexible", "enumerated"]},
    "default_size": STR,
    "n_max": {"type": "object", "additionalProperties": INT},
    "qualities": {"type": "array", "items": STR},
    "output_formats": {"type": "array", "items": STR},
    "transparent_background": {"type": "boolean"},
    "max_reference_images": INT,
    "max_prompt_chars": INT,
    "edits": {"type": "boolean"},
    "pricing": obj({"per_image": {"type": "object", "additionalProperties": STR},
                    "per_image_by_quality": {"type": "object", "additionalProperties": {
                        "type": "object", "additionalProperties": STR}}}),
    "sizes": {"type": "array", "items": STR},
    "styles": {"type": "array", "items": STR},
    "ratios_and_tiers": {"type": "boolean"},
    "ratio_sizes": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": STR}},
    "wxh_rules": obj({"multiple_of": INT, "max_edge": INT, "max_ratio": {"type": "number"},
                      "min_pixels": INT, "max_pixels": INT}),
}, optional=("pricing", "sizes", "styles", "ratios_and_tiers", "ratio_sizes", "wxh_rules"))
MODEL_LIST = obj({
    "object": {"type": "string", "enum": ["list"]},
    "data": {"type": "array", "items": obj({
        "id": STR, "object": {"type": "string", "enum": ["model"]}, "created": INT,
        "owned_by": STR, "description": STR, "provider": NULLABLE_STR,
        "capabilities": _CAPABILITIES,
    })},
})

_USAGE_TOTALS: dict[str, Schema] = {"tasks": INT, "images": INT, "spend": AMOUNT, "refunds": AMOUNT,
                 "holds_outstanding": AMOUNT}
USAGE = obj({
    "object": {"type": "string", "enum": ["usage"]}, "key_id": STR, "name": STR,
    "currency": STR, "since": STR, "until": STR,
    "balance": {"anyOf": [AMOUNT, {"type": "null"}],
                "description": "null: postpaid (never refused for want of balance)."},
    **_USAGE_TOTALS, "topups": AMOUNT, "adjustments": AMOUNT,
    "models": {"type": "array", "items": obj({"model": STR, **_USAGE_TOTALS})},
})

WEBHOOK_SETTINGS = obj({"object": {"type": "string", "enum": ["webhook_settings"]},
                        "url": NULLABLE_STR, "secret": STR})
DELIVERY = obj({
    "id": STR, "object": {"type": "string", "enum": ["webhook.delivery"]}, "task_id": STR,
    "event": STR, "url": STR,
    "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
    "attempts": INT, "last_status_code": NULLABLE_INT, "last_error": NULLABLE_STR,
    "created_at": INT, "delivered_at": NULLABLE_INT, "next_attempt_at": NULLABLE_INT,
})
DELIVERY_LIST = obj({"object": {"type": "string", "enum": ["list"]},
                     "data": {"type": "array", "items": ref("WebhookDelivery")},
                     "has_more": {"type": "boolean"},
                     "first_id": NULLABLE_STR, "last_id": NULLABLE_STR})

# -- the openai profile
OPENAI_IMAGE_RESPONSE = obj(
    {"created": INT,
     "data": {"type": "array", "items": obj({"url": STR, "b64_json": STR,
                                             "revised_prompt": STR},
                                            optional=("url", "b64_json", "revised_prompt"))},
     "background": PRODUCED_BACKGROUND, "output_format": STR, "quality": PRODUCED_QUALITY,
     "size": STR,
     "usage": {"type": "object"}},
    optional=("background", "output_format", "quality", "size", "usage"),
    description="OpenAI's images response: GPT image models answer `b64_json` with the "
    "top-level fields, DALL·E models `url` (or `b64_json`) alone.",
)
OPENAI_MODEL = obj({"id": STR, "object": {"type": "string", "enum": ["model"]},
                    "created": INT, "owned_by": STR})
OPENAI_MODEL_LIST = obj({"object": {"type": "string", "enum": ["list"]},
                         "data": {"type": "array", "items": ref("OpenAIModel")}})

# -- the apimart profile
_APIMART_STATUS: Schema = {"type": "string",
                   "enum": ["pending", "processing", "completed", "failed", "cancelled"]}
APIMART_SUBMITTED = obj({
    "code": {"type": "integer", "enum": [200]},
    "data": {"type": "array", "items": obj({"status": {"type": "string",
                                                        "enum": ["submitted"]},
                                             "task_id": STR})},
})
_APIMART_TASK_FIELDS: dict[str, Schema] = {
    "id": STR, "status": _APIMART_STATUS, "progress": INT, "created": INT,
    "estimated_time": INT, "cost": {"type": "number"}, "credits_cost": {"type": "number"},
    "completed": INT, "actual_time": INT,
    "result": obj({"images": {"type": "array", "items": obj({
        "url": {"type": "array", "items": STR}, "expires_at": INT})}}),
    "error": APIMART_ERROR_INNER,
}
APIMART_TASK_DATA = obj(_APIMART_TASK_FIELDS,
                        optional=("completed", "actual_time", "result", "error"))
APIMART_TASK = obj({"code": {"type": "integer", "enum": [200]},
                    "data": ref("ApimartTaskData")})
APIMART_BATCH = obj({
    "code": {"type": "integer", "enum": [200]},
    # An id that is not the caller's answers {id, status: failed, progress: 0, error} only.
    "data": {"type": "array", "items": obj(
        _APIMART_TASK_FIELDS,
        optional=tuple(k for k in _APIMART_TASK_FIELDS if k not in ("id", "status",
                                                                      "progress")))},
})
APIMART_BATCH_REQUEST: Schema = {
    "type": "object", "required": ["task_ids"],
    "properties": {"task_ids": {"type": "array", "minItems": 1, "maxItems": 100,
                                "items": {"type": "string", "minLength": 1}}},
}


def components(catalog: Catalog) -> dict[str, Schema]:
    """Every named schema of the document, the request ones from `catalog`."""
    return {
        "Error": ERROR,
        "ErrorObject": ERROR_OBJECT,
        "ApimartError": APIMART_ERROR,
        "ImageGenerationRequest": image_request(
            catalog, "A generation: the prompt, and optionally reference images."),
        "ImageEditRequest": image_request(
            catalog, "An edit in JSON: at least one image (e.g. `images: [{image_url}]`)."),
        "ImageEditForm": edit_form(catalog),
        "ImageVariationRequest": variation_request(catalog),
        "ImageVariationForm": variation_form(catalog),
        "ApimartGenerationRequest": apimart_request(catalog, "A generation, apimart's way."),
        "ApimartEditRequest": apimart_request(catalog, "An edit, apimart's way."),
        "ApimartEditForm": edit_form(catalog, apimart=True),
        "ApimartBatchRequest": APIMART_BATCH_REQUEST,
        "ImageResponse": IMAGE_RESPONSE,
        "TaskSubmitted": TASK_SUBMITTED,
        "TaskAccepted": TASK_ACCEPTED,
        "Task": TASK,
        "TaskList": TASK_LIST,
        "ModelList": MODEL_LIST,
        "Usage": USAGE,
        "WebhookSettings": WEBHOOK_SETTINGS,
        "WebhookDelivery": DELIVERY,
        "WebhookDeliveryList": DELIVERY_LIST,
        "OpenAIImageResponse": OPENAI_IMAGE_RESPONSE,
        "OpenAIModel": OPENAI_MODEL,
        "OpenAIModelList": OPENAI_MODEL_LIST,
        "ApimartSubmitted": APIMART_SUBMITTED,
        "ApimartTaskData": APIMART_TASK_DATA,
        "ApimartTask": APIMART_TASK,
        "ApimartBatch": APIMART_BATCH,
    }
