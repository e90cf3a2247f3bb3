"""OpenAPI fragments for routes that read their body themselves.

Bodies are parsed by `domain.normalize` (one place for every check, with OpenAI-style errors),
not by FastAPI models, so the request schema is declared here for /docs and client generators.
"""

from __future__ import annotations

from typing import Any

from imagegate.domain.normalize import REFERENCE_FIELDS

_REFERENCE = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object"}]}},
        {"type": "object"},
    ],
    "description": "http(s) URL, data: URL or bare base64; a string, a list, or {url}",
}

GENERATION_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "model": {"type": "string", "default": "gpt-image-2"},
        "prompt": {"type": "string"},
        "n": {"type": "integer", "minimum": 1, "default": 1},
        "size": {"type": "string", "examples": ["auto", "1:1", "16:9", "1024x1024"]},
        "resolution": {"type": "string", "enum": ["1k", "2k", "4k"]},
        "output_format": {"type": "string", "enum": ["png", "jpeg", "webp"]},
        "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
        "background": {"type": "string", "enum": ["auto", "transparent", "opaque"]},
        "quality": {"type": "string", "examples": ["auto", "low", "medium", "high", "hd"]},
        "moderation": {"type": "string", "enum": ["auto", "low"]},
        "style": {"type": "string", "enum": ["vivid", "natural"]},
        "user": {"type": "string"},
        "response_format": {"type": "string", "enum": ["url", "b64_json", "data_url"]},
        "wait_for_result": {"type": "boolean", "default": True},
        "mask_url": {"type": "string"},
        **{name: _REFERENCE for name in REFERENCE_FIELDS},
    },
    "additionalProperties": True,
}


EDIT_REQUEST: dict[str, Any] = {
    **GENERATION_REQUEST,
    "properties": {
        **GENERATION_REQUEST["properties"],
        "images": {"type": "array", "items": {"type": "object", "properties": {
            "image_url": {"type": "string"}}}},
        "mask": {"type": "object", "properties": {"image_url": {"type": "string"}}},
    },
}

_MULTIPART_EDIT: dict[str, Any] = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        **{k: v for k, v in GENERATION_REQUEST["properties"].items()
           if k not in REFERENCE_FIELDS and k != "mask_url"},
        "image": {"type": "string", "format": "binary"},
        "image[]": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "images[]": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "mask": {"type": "string", "format": "binary"},
    },
}


# OpenAI's createImageVariation form: one image, no prompt. JSON works too (the image as a
# URL, data: URL or base64 under `image`).
VARIATION_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": _REFERENCE,
        "model": {"type": "string", "default": "dall-e-2"},
        "n": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "size": {"type": "string", "enum": ["256x256", "512x512", "1024x1024"],
                 "default": "1024x1024"},
        "response_format": GENERATION_REQUEST["properties"]["response_format"],
        "user": {"type": "string"},
        "wait_for_result": GENERATION_REQUEST["properties"]["wait_for_result"],
        "webhook_url": {"type": "string"},
    },
    "additionalProperties": True,
}


def variation_body() -> dict[str, Any]:
    multipart = {**VARIATION_REQUEST, "properties": {
        **VARIATION_REQUEST["properties"], "image": {"type": "string", "format": "binary"}}}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": multipart},
        "application/json": {"schema": VARIATION_REQUEST},
    }}}


def json_body(schema: dict[str, Any], *, multipart: bool = False) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if multipart:
        content["multipart/form-data"] = {"schema": _MULTIPART_EDIT}
    return {"requestBody": {"required": True, "content": content}}


_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TASK_OBJECT = {
    "description": "The task object",
    "content": {"application/json": {"schema": {
        "type": "object",
        "properties": {
            "id": {"type": "string"}, "task_id": {"type": "string"},
            "object": {"type": "string", "enum": ["image.task"]},
            "status": {"type": "string",
                       "enum": ["queued", "in_progress", "succeeded", "failed", "cancelled"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "model": {"type": "string"},
            "created_at": {"type": "integer"},
            "completed_at": {"type": ["integer", "null"]},
            "expires_at": {"type": "integer"},
            "result": {"type": ["object", "null"]},
            "error": {"type": ["object", "null"]},
        },
    }}},
}
_ERRORS = {"401": {"description": "Missing or invalid API key"},
           "404": {"description": "No such task for this key"}}


def _task_op(summary: str, op_id: str) -> dict[str, Any]:
    return {"tags": ["tasks"], "summary": summary, "operationId": op_id,
            "parameters": [_TASK_ID], "responses": {"200": _TASK_OBJECT, **_ERRORS},
            "security": [{"bearer": []}]}


# The task routes are plain Starlette routes (see api/tasks.py), so FastAPI does not
# describe them; these entries do.
TASK_PATHS: dict[str, Any] = {
    "/v1/tasks/{task_id}": {"get": _task_op("Retrieve a task", "getTask")},
    "/v1/images/tasks/{task_id}": {"get": _task_op("Retrieve a task (older path)",
                                                   "getImageTask")},
    "/v1/tasks/{task_id}/cancel": {"post": _task_op("Cancel a task", "cancelTask")},
}
