"""The OpenAPI document: what each route declares, and the finishing of FastAPI's output.

Bodies are parsed by `domain.normalize` and built by hand (see `api/schemas.py`), not by
FastAPI models, so every route declares its request and response schemas here — schemas
only: FastAPI never validates or serializes a body through them. Every error status a route
can answer is declared with the error shape of its profile; 422, which FastAPI would add to
any route with parameters, is removed, because the app answers 400 instead (`app.py`,
`_validation_error`).
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

from imagegate.api.schemas import EXAMPLE_PNG, components, ref

__all__ = ["ref"]
from imagegate.domain.catalog import Catalog

Responses = dict[int | str, dict[str, Any]]

# Why each error status happens, in general; a route's own reasons are in docs/api.md.
_WHY: dict[int, str] = {
    400: "Invalid request: a field has a wrong type or value, the body is not JSON, a "
         "reference image is unusable, or the upstream refused the request",
    401: "Missing, unknown, revoked or expired API key",
    402: "The key's balance cannot cover the hold (price × n); nothing was created",
    403: "The key may not use this model",
    404: "Not found",
    409: "Conflict: an Idempotency-Key reused with another body, or the task was cancelled "
         "while the request waited",
    413: "The body, or an input image, is larger than the server accepts",
    415: "The Content-Type is neither multipart/form-data nor JSON",
    429: "Rate limit: requests per minute or concurrent tasks (see Retry-After)",
    500: "Unexpected server error; the message carries the request id",
    502: "The upstream (or the sandbox) failed after retries and failover",
    503: "No channel of the model is healthy, or none serves it",
    504: "The image was not ready within sync_wait_seconds; the task keeps running",
}

# The statuses of each kind of route. Every route can answer 500 (the last line of defence in
# api/middleware.py turns anything unexpected into one).
KEYED = (401, 500)
READ = (401, 404, 500)
# Creating a task: normalization (400, 404 unknown model), the key's models (403), the
# Idempotency-Key (409), the limits (429), the balance (402), the body cap (413), a
# model no channel serves (404/503). A synchronous answer also carries the error the task
# ended with: 409 cancelled, 500 worker lost, 502 upstream failed, 503 no healthy channel.
CREATE = (400, 401, 402, 403, 404, 409, 413, 429, 500, 502, 503)
EDIT = (*CREATE, 415)
# The openai profile also answers 504 when the image is not ready in time.
OPENAI_CREATE = (*CREATE, 504)
OPENAI_EDIT = (*EDIT, 504)
# The apimart profile submits only (no waiting), and spells 502 as 503 (the seed's statuses).
APIMART_CREATE = (400, 401, 402, 403, 404, 409, 413, 429, 500, 503)
APIMART_EDIT = (*APIMART_CREATE, 415)


def errors(statuses: tuple[int, ...], *, apimart: bool = False,
           why: dict[int, str] | None = None) -> Responses:
    """The error responses of a route, each with its profile's error schema."""
    body = ref("ApimartError" if apimart else "Error")
    reasons = {**_WHY, **(why or {})}
    return {status: {"description": reasons.get(status, HTTPStatus(status).phrase),
                     "content": {"application/json": {"schema": body}}}
            for status in statuses}


def json_ok(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref(schema)}}}


def responses(ok: Responses, statuses: tuple[int, ...], *, apimart: bool = False,
              why: dict[int, str] | None = None) -> Responses:
    return {**ok, **errors(statuses, apimart=apimart, why=why)}


# A created task answered before it finished (native routes).
ACCEPTED: dict[str, Any] = {
    **json_ok("TaskSubmitted", "Accepted: the task runs on; poll the Location"),
    "headers": {
        "Location": {"required": True, "schema": {"type": "string"},
                     "description": "/v1/tasks/{task_id}"},
        "Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                        "description": "Seconds to wait before the first poll"},
        "Preference-Applied": {"required": False, "schema": {"type": "string"},
                               "description": "`wait=N` (it waited N s) and/or "
                               "`respond-async`, when the request's `Prefer` asked for them"},
    },
}


def async_accepted() -> dict[str, Any]:
    """The `/async` aliases' 202 (`api/async_aliases.py`)."""
    headers = {k: v for k, v in ACCEPTED["headers"].items() if k != "Preference-Applied"}
    return {**json_ok("TaskAccepted", "Accepted: poll `poll_url`"), "headers": headers}


# The native create routes read `Prefer` (RFC 7240, `api/prefer.py`).
PREFER = {"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
          "description": "`wait=N`: wait up to N seconds (at most `sync_wait_seconds`), 200 "
          "when done, else 202. `respond-async`: 202 at once (with `wait=N`: wait first). "
          "Other preferences are ignored."}
# `stream: true` answers Server-Sent Events instead (api/stream.py).
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}


def images_ok(schema: str, description: str) -> dict[str, Any]:
    ok = json_ok(schema, description)
    ok["content"].update(_SSE)
    return ok


def preferred(ok: dict[str, Any]) -> dict[str, Any]:
    """A native create route's 200, which names the `wait=N` it honoured."""
    return {**ok, "headers": {"Preference-Applied": ACCEPTED["headers"]["Preference-Applied"]}}


def json_body(schema: dict[str, Any], *, multipart: bool = False, form: str = "ImageEditForm",
              examples: dict[str, Any] | None = None, prefer: bool = False
              ) -> dict[str, Any]:
    """`openapi_extra` declaring a route's request body (the route reads it itself), and
    with `prefer` the `Prefer` header it reads."""
    media: dict[str, Any] = {"schema": schema}
    if examples:
        media["examples"] = {name: {"value": value} for name, value in examples.items()}
    content: dict[str, Any] = {"application/json": media}
    if multipart:
        content["multipart/form-data"] = {"schema": ref(form)}
    extra: dict[str, Any] = {"requestBody": {"required": True, "content": content}}
    if prefer:
        extra["parameters"] = [PREFER]
    return extra


GENERATION_REQUEST = ref("ImageGenerationRequest")
EDIT_REQUEST = ref("ImageEditRequest")
VARIATION_REQUEST = ref("ImageVariationRequest")
APIMART_GENERATION_REQUEST = ref("ApimartGenerationRequest")
APIMART_EDIT_REQUEST = ref("ApimartEditRequest")
GENERATION_EXAMPLES: dict[str, Any] = {
    "ratio_and_tier": {"prompt": "a lighthouse at dusk", "size": "16:9", "resolution": "1k"},
    "asynchronous": {"prompt": "a red bicycle", "n": 2, "wait_for_result": False},
    "with_reference": {"prompt": "keep the subject, add snow", "image_urls": [EXAMPLE_PNG],
                       "output_format": "webp"},
}
VARIATION_EXAMPLES: dict[str, Any] = {
    "one_image": {"image": EXAMPLE_PNG, "n": 2, "size": "256x256"},
}
EDIT_EXAMPLES: dict[str, Any] = {
    "images": {"prompt": "make it look like a watercolour",
               "images": [{"image_url": EXAMPLE_PNG}]},
}

# A parameter FastAPI does not see because the route reads it from the request.
def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TASK_OK = json_ok("Task", "The task object")
_TASK_WHY = {404: "No such task for this key"}


def _task_op(summary: str, op_id: str) -> dict[str, Any]:
    return {"tags": ["tasks"], "summary": summary, "operationId": op_id,
            "parameters": [_TASK_ID],
            "responses": _string_keys(responses({200: _TASK_OK}, READ, why=_TASK_WHY))}


def _string_keys(table: Responses) -> dict[str, Any]:
    return {str(k): v for k, v in table.items()}


_UNIX_SECONDS = r"^(?:[0-9]{1,12}(?:\.[0-9]{1,6})?)?$"
_TASK_LIST_PARAMETERS = [
    query("status", {"type": "string", "enum": ["queued", "in_progress", "succeeded",
                                                "failed", "cancelled", ""]},
          "Only tasks in this status; empty: any"),
    query("model", {"type": "string"}, "Only tasks of this model"),
    query("created_after", {"type": "string", "pattern": _UNIX_SECONDS},
          "Only tasks created after this time (Unix seconds); empty: no bound"),
    query("created_before", {"type": "string", "pattern": _UNIX_SECONDS},
          "Only tasks created before this time (Unix seconds); empty: no bound"),
    query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
          "Tasks per page"),
    query("after", {"type": "string"},
          "The `last_id` of the previous page: continue with older tasks"),
]
# One Server-Sent Event of `GET /v1/tasks/{task_id}/events` (api/task_events.py): `data` is one
# JSON object whose `type` is the event's name (docs/api.md lists their fields).
_TASK_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": [
            "task.queued", "task.started", "task.progress", "task.partial_image",
            "task.succeeded", "task.failed", "task.cancelled"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}

# The task routes are plain Starlette routes (see api/tasks.py), so FastAPI does not
# describe them; these entries do.
TASK_PATHS: dict[str, Any] = {
    "/v1/tasks": {"get": {
        "tags": ["tasks"], "summary": "List the key's tasks, newest first",
        "operationId": "listTasks", "parameters": _TASK_LIST_PARAMETERS,
        "responses": _string_keys(responses(
            {200: json_ok("TaskList", "A page of tasks, newest first")}, (400, 401, 500),
            why={400: "limit out of range, an unknown status, a time that is not Unix "
                      "seconds, or an `after` that is not a task of this key"}))}},
    "/v1/tasks/{task_id}": {"get": _task_op("Retrieve a task", "getTask")},
    "/v1/images/tasks/{task_id}": {"get": _task_op("Retrieve a task (older path)",
                                                   "getImageTask")},
    "/v1/tasks/{task_id}/cancel": {"post": _task_op("Cancel a task", "cancelTask")},
    "/v1/tasks/{task_id}/events": {"get": {
        "tags": ["tasks"], "summary": "Follow a task's events (Server-Sent Events)",
        "operationId": "getTaskEvents",
        "description": "task.queued, task.started, task.progress, task.partial_image, then "
                       "one of task.succeeded / task.failed / task.cancelled; each event has "
                       "an id, and Last-Event-ID (or last_event_id) resumes after it.",
        "parameters": [
            _TASK_ID,
            {"name": "Last-Event-ID", "in": "header", "required": False,
             "schema": {"type": "string"},
             "description": "The id of the last event received: resume after it"},
            query("last_event_id", {"type": "string"},
                  "Same as the Last-Event-ID header, for clients that cannot set headers"),
        ],
        "responses": _string_keys(responses(
            {200: {"description": "The event stream; it ends after the terminal event",
                   "content": {"text/event-stream": {"schema": _TASK_EVENT}}}},
            READ, why=_TASK_WHY)),
    }},
}

# Every operation under these prefixes needs an API key; the other published ones
# (`/p/img/...`) carry their credential in the URL.
KEYED_PREFIXES = ("/v1/", "/openai/v1/", "/apimart/v1/")
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer ig_…"},
    "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "api-key": {"type": "apiKey", "in": "header", "name": "api-key"},
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def finish(schema: dict[str, Any], catalog: Catalog, extra_paths: dict[str, Any]) -> None:
    """Complete FastAPI's document in place: the paths it does not know, the named schemas
    (request ones from `catalog`), security, and no 422 anywhere."""
    # Copies: the loop below edits operations, and these tables are shared by every app.
    schema["paths"].update(copy.deepcopy(extra_paths))
    parts = schema.setdefault("components", {})
    named = parts.setdefault("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        named.pop(name, None)
    named.update(copy.deepcopy(components(catalog)))
    parts["securitySchemes"] = copy.deepcopy(SECURITY_SCHEMES)
    for path, item in schema["paths"].items():
        for operation in item.values():
            operation["responses"].pop("422", None)
            if path.startswith(KEYED_PREFIXES):
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
