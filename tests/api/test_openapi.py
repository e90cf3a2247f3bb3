"""The OpenAPI document tells the truth (`imagegate/api/openapi.py`, `imagegate/api/schemas.py`):
response schemas on every JSON route, every error status with its profile's error shape, no
422, image bytes on the signed-URL route, and request schemas that accept and refuse what
normalization accepts and refuses. `test_schemathesis.py` then holds a served app to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from imagegate.api.openapi import KEYED_PREFIXES
from imagegate.api.profiles import apimart
from imagegate.api.schemas import APIMART_IGNORED
from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.domain.catalog import load_catalog
from imagegate.domain.normalize import normalize
from imagegate.errors import InvalidRequestError, ModelNotFoundError

DEFAULTS: dict[str, Any] = {}  # mypy does not see defaults given as Field(default, ...)
DOCUMENT: dict[str, Any] = build_app(Settings(**DEFAULTS)).openapi()
CATALOG = load_catalog()
ERROR = {"$ref": "#/components/schemas/Error"}
APIMART_ERROR = {"$ref": "#/components/schemas/ApimartError"}


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


OPERATIONS = sorted((m, p) for m, p, _ in operations())


def operation(method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = DOCUMENT["paths"][path][method.lower()]
    return found


def test_no_422_anywhere() -> None:
    """The app answers 400 for what FastAPI would call a validation error (app.py)."""
    for method, path, op in operations():
        assert "422" not in op["responses"], f"{method} {path} declares 422"
    assert "HTTPValidationError" not in json.dumps(DOCUMENT)


@pytest.mark.parametrize("method_path", OPERATIONS, ids=" ".join)
def test_every_response_is_described(method_path: tuple[str, str]) -> None:
    method, path = method_path
    responses = operation(method, path)["responses"]
    assert "500" in responses, "every route can answer the JSON 500 of the middleware"
    for status, response in responses.items():
        content = response.get("content", {})
        if status in ("202", "302", "304"):  # no body: a task id header, a Location, a cache hit
            continue
        json_schema = content.get("application/json", {}).get("schema")
        if int(status) >= 400:
            wanted = APIMART_ERROR if path.startswith("/apimart/") else ERROR
            assert json_schema == wanted, f"{method} {path} {status}: {json_schema}"
        elif path.startswith("/p/img/"):
            assert set(content) == {"image/png", "image/jpeg", "image/webp"}
        elif path.endswith("/events"):  # Server-Sent Events only
            assert set(content) == {"text/event-stream"}
        else:
            assert json_schema is not None and "$ref" in json_schema, (
                f"{method} {path} {status} declares no response schema: {json_schema}")


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("POST", "/v1/images/generations",
     {200, 202, 400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503}),
    ("POST", "/v1/images/edits",
     {200, 202, 400, 401, 402, 403, 404, 409, 413, 415, 429, 500, 502, 503}),
    ("POST", "/openai/v1/images/generations",
     {200, 400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503, 504}),
    ("POST", "/apimart/v1/images/edits",
     {200, 400, 401, 402, 403, 404, 409, 413, 415, 429, 500, 503}),
    ("GET", "/v1/tasks/{task_id}", {200, 401, 404, 500}),
    ("GET", "/v1/usage", {200, 400, 401, 500}),
    ("POST", "/v1/webhooks/deliveries/{delivery_id}/retry", {200, 401, 404, 409, 500}),
    # 206 for a Range, 302 to S3 with s3_presigned_redirect, 416 for a Range outside it.
    ("GET", "/p/img/{task_id}/{index}", {200, 206, 302, 304, 400, 403, 404, 416, 500}),
])
def test_declared_statuses(method: str, path: str, statuses: set[int]) -> None:
    assert {int(s) for s in operation(method, path)["responses"]} == statuses


def test_keyed_routes_declare_security() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer",
                                 "description": "Authorization: Bearer ig_…"}
    for method, path, op in operations():
        if path.startswith(KEYED_PREFIXES):
            assert op["security"] == [{"bearer": []}, {"x-api-key": []}, {"api-key": []}]
            assert "401" in op["responses"], f"{method} {path}"
        else:
            assert "security" not in op, f"{method} {path}: the URL is the credential"


def test_the_image_route_declares_bytes_and_cache_headers() -> None:
    responses = operation("GET", "/p/img/{task_id}/{index}")["responses"]
    for media in ("image/png", "image/jpeg", "image/webp"):
        assert responses["200"]["content"][media]["schema"] == {"type": "string",
                                                                "format": "binary"}
    assert "content" not in responses["304"]
    assert set(responses["304"]["headers"]) == {"ETag", "Cache-Control"}


def test_queries_read_by_the_routes_are_declared() -> None:
    def names(method: str, path: str) -> dict[str, Any]:
        return {p["name"]: p["schema"] for p in operation(method, path)["parameters"]}

    usage = names("GET", "/v1/usage")
    assert set(usage) == {"since", "until"}
    assert usage["since"]["type"] == usage["until"]["type"] == "string"
    listing = names("GET", "/v1/webhooks/deliveries")
    assert listing["limit"] == {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}
    assert set(listing) == {"limit", "after", "before", "task_id"}
    # apimart accepts (and ignores) any language, so its schema must not refuse one.
    assert "enum" not in names("GET", "/apimart/v1/tasks/{task_id}")["language"]


# -- request schemas against normalization -----------------------------------------------------

def validator(name: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"$ref": f"#/components/schemas/{name}",
                                        "components": DOCUMENT["components"]})


def accepted(body: dict[str, Any], operation: str = "generate") -> bool:
    try:
        normalize(body, CATALOG, operation=operation)
    except (InvalidRequestError, ModelNotFoundError):
        return False
    return True


def test_request_schemas_name_the_catalog() -> None:
    props = DOCUMENT["components"]["schemas"]["ImageGenerationRequest"]["properties"]
    assert props["model"]["anyOf"][0]["enum"] == [*CATALOG.names(), ""]
    assert props["model"]["default"] == CATALOG.default_model
    assert props["n"]["anyOf"][0]["maximum"] == 10
    assert props["prompt"]["maxLength"] == 32000


# Bodies whose only question is one field, each as normalize() judges it with the default
# model: the schema must agree in both directions.
FIELD_CASES: list[dict[str, Any]] = [
    {"prompt": "a"},
    {"prompt": ""},
    {"prompt": "   "},
    {"prompt": None},
    {"prompt": 5},
    {"prompt": "a", "model": ""},
    {"prompt": "a", "model": None},
    {"prompt": "a", "model": "no-such-model"},
    {"prompt": "a", "model": 3},
    {"prompt": "a", "n": 2},
    {"prompt": "a", "n": 2.0},
    {"prompt": "a", "n": None},
    {"prompt": "a", "n": 0},
    {"prompt": "a", "n": True},
    {"prompt": "a", "n": "2"},
    {"prompt": "a", "size": " AUTO "},
    {"prompt": "a", "size": "16:9"},
    {"prompt": "a", "size": "1024X1024"},
    {"prompt": "a", "size": ""},
    {"prompt": "a", "size": "huge"},
    {"prompt": "a", "size": "16/9"},
    {"prompt": "a", "resolution": "2K"},
    {"prompt": "a", "resolution": ""},
    {"prompt": "a", "resolution": "  "},
    {"prompt": "a", "resolution": "8k"},
    {"prompt": "a", "output_format": "JPG"},
    {"prompt": "a", "output_format": "gif"},
    {"prompt": "a", "output_compression": 101},
    {"prompt": "a", "quality": ""},
    {"prompt": "a", "quality": " High"},
    {"prompt": "a", "quality": "  "},
    {"prompt": "a", "quality": "ultra"},
    {"prompt": "a", "moderation": "LOW"},
    {"prompt": "a", "moderation": "none"},
    {"prompt": "a", "response_format": "b64_json"},
    {"prompt": "a", "response_format": "png"},
    {"prompt": "a", "wait_for_result": "FALSE"},
    {"prompt": "a", "wait_for_result": "no"},
    {"prompt": "a", "wait_for_result": 0},
    {"prompt": "a", "partial_images": 4},
    {"prompt": "a", "user": 7},
    {"prompt": "a", "image_urls": []},
    {"prompt": "a", "image_urls": ""},
    {"prompt": "a", "image_urls": 5},
    {"prompt": "a", "image_urls": [{}]},
    {"prompt": "a", "image_urls": ["  "]},
    {"prompt": "a", "image_urls": "blob:https://example.com/1"},
    {"prompt": "a", "image_urls": "https://example.com/a.png"},
    {"prompt": "a", "images": [{"image_url": "https://example.com/a.png"}]},
    {"prompt": "a", "image": {"image_url": {"url": "https://example.com/a.png"}}},
    {"prompt": "a", "image": {"image_url": {"href": "https://example.com/a.png"}}},
    {"prompt": "a", "image_urls": ["https://example.com/a.png"], "mask_url": 5},
]


@pytest.mark.parametrize("body", FIELD_CASES, ids=json.dumps)
def test_generation_schema_agrees_with_normalization(body: dict[str, Any]) -> None:
    assert validator("ImageGenerationRequest").is_valid(body) == accepted(body)


def test_apimart_schemas_leave_its_ignored_fields_free() -> None:
    assert APIMART_IGNORED == apimart._NOT_APIMART
    body = {"prompt": "a", "style": 5, "stream": "maybe", "response_format": []}
    assert validator("ApimartGenerationRequest").is_valid(body)
    assert not validator("ImageGenerationRequest").is_valid(body)
    form = DOCUMENT["components"]["schemas"]["ApimartEditForm"]["properties"]
    assert all("type" not in form[name] and "anyOf" not in form[name]
               for name in APIMART_IGNORED)


def test_examples_are_valid_requests() -> None:
    for method, path, op in operations():
        media = op.get("requestBody", {}).get("content", {}).get("application/json", {})
        if "examples" not in media:
            continue
        check = jsonschema_rs.validator_for({**media["schema"],
                                             "components": DOCUMENT["components"]})
        for example in media["examples"].values():
            assert check.is_valid(example["value"]), f"{method} {path}: {example}"
            operation = ("variation" if path.endswith("/variations")
                         else "edit" if path.endswith("/edits") else "generate")
            assert accepted(example["value"], operation)
