"""The `openai` profile at `/openai/v1`: exactly OpenAI's Images API, for code that expects
nothing more (DESIGN §1).

Over the native routes' core (normalize → `create_task` → `wait_for_result`) it differs
only in presentation:
- always synchronous (or streaming with `stream: true`, as OpenAI streams): OpenAI has no
  async switch, so none of the native triggers apply;
- GPT image models always answer `b64_json`, and refuse `response_format` the way OpenAI
  does (400 `unknown_parameter`); DALL·E models honour `url` (default) or `b64_json`;
- bodies carry only OpenAI's fields: no `task_id`, no `file_id`, and `size`, `quality`,
  `output_format`, `background`, `usage` only for GPT image models, as OpenAI sends them;
- errors in OpenAI's shape (the native one).

A task still running after `sync_wait_seconds` answers **504** `code: "timeout"` with the task
id in the message (the image is not lost: `GET /v1/tasks/{id}` on the native API has it) and
`x-should-retry: false`, which the official SDKs honour: their automatic retry of a 5xx would
start and bill a second generation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from imagegate.accounts.keys import ApiKey
from imagegate.api import openapi
from imagegate.api.creation import Creation, CreationDep, idempotency_key, with_deadline
from imagegate.api.deps import CatalogDep, api_key, json_body
from imagegate.api.edits import read_edit_input
from imagegate.api.profiles import native
from imagegate.api.profiles.errors import render_error
from imagegate.api.responses import JSONResponse, json_response
from imagegate.api.stream import stream_response
from imagegate.config import Settings
from imagegate.domain.catalog import ModelSpec
from imagegate.domain.limits import FIELD_CHARS
from imagegate.domain.normalize import (
    normalize,
    resolve_model,
    resolve_variation_model,
    too_long,
)
from imagegate.domain.request import ReferenceSource
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import (
    ImagegateError,
    InvalidRequestError,
    ModelNotFoundError,
    TaskCancelledError,
)
from imagegate.storage.links import ResultLinks

PREFIX = "/openai/v1"
router = APIRouter(tags=["openai"])
OPENAPI_TAG = {"name": "openai", "description": "The `openai` profile at /openai/v1: exactly "
               "OpenAI's Images API (synchronous; GPT image models answer b64_json)."}

# Top-level fields OpenAI sends for GPT image models only (DALL·E answers created + data).
_GPT_IMAGE_FIELDS = ("background", "output_format", "quality", "size", "usage")
_OPENAI_RESPONSE_FORMATS = ("url", "b64_json")

def is_gpt_image(spec: ModelSpec) -> bool:
    """GPT image models (the catalog's gpt-image* families) answer base64 only."""
    return spec.family.startswith("gpt-image")


def openai_body(body: dict[str, Any], spec: ModelSpec) -> dict[str, Any]:
    """OpenAI's own refusals, then the body normalize() sees (GPT image: base64 results)."""
    # (`stream` on a model that does not stream is normalize()'s refusal, on every profile.)
    value = body.get("response_format")
    if is_gpt_image(spec):
        if value is not None:
            raise InvalidRequestError("Unknown parameter: 'response_format'.",
                                      param="response_format", code="unknown_parameter")
        return {**body, "response_format": "b64_json"}
    if isinstance(value, str) and len(value) > FIELD_CHARS["response_format"]:
        raise too_long("response_format", len(value), FIELD_CHARS["response_format"])
    if value is not None and value not in _OPENAI_RESPONSE_FORMATS:
        raise InvalidRequestError(
            f"Invalid value: {value!r:.100}. Supported values are: 'url' and 'b64_json'.",
            param="response_format", code="invalid_value",
        )
    return body


async def image_response(links: ResultLinks, task: Task, spec: ModelSpec) -> dict[str, Any]:
    """The native response with every field OpenAI does not send left out (base64 as
    `InlineImage`s: the body is sent by `json_response`)."""
    full = await native.image_response(links, task, streamed=True)
    wanted = "b64_json" if task.request.get("response_format") == "b64_json" else "url"
    data = [{k: item[k] for k in (wanted, "revised_prompt") if k in item}
            for item in full["data"]]
    body: dict[str, Any] = {"created": full["created"], "data": data}
    if is_gpt_image(spec):
        body.update({k: full[k] for k in _GPT_IMAGE_FIELDS if k in full})
    return body


def _still_running(request: Request, settings: Settings, task: Task) -> JSONResponse:
    exc = ImagegateError(
        f"The image was not ready within {settings.sync_wait_seconds:g} s. It is still "
        f"being made as task {task.id}: fetch it with GET /v1/tasks/{task.id} instead of "
        "retrying, which would start a second generation.",
        code="timeout",
    )
    body, status = render_error(exc, request.url.path, 504)
    return JSONResponse(body, status_code=status, headers={"x-should-retry": "false"})


async def _run(request: Request, run: Creation, key: ApiKey, body: dict[str, Any],
               operation: str, refs: tuple[ReferenceSource, ...] | None = None,
               mask: ReferenceSource | None = None) -> Response:
    # A variation's model is checked first (and defaults to dall-e-2, as OpenAI's does), so a
    # GPT image model named there is refused for what it is, not for its response_format.
    if operation == "variation":
        spec = resolve_variation_model(body, run.catalog)
    else:
        spec = resolve_model(body, run.catalog)
    image_request = with_deadline(
        request, normalize(openai_body(body, spec), run.catalog, operation=operation,
                           references=refs, mask=mask), run.settings)
    if image_request.stream:
        return await stream_response(run, key, image_request, openai_fields_only=True,
                                     idempotency_key=idempotency_key(request),
                                     route=request.url.path)
    task, job = await run.intake.create_and_run(key, image_request,
                                                idempotency_key=idempotency_key(request),
                                                route=request.url.path)
    done = await run.tasks.result(task, job)
    if done.status is TaskStatus.CANCELLED:  # cancelled with no error recorded
        raise TaskCancelledError(f"Task {done.id} was cancelled before it finished")
    if done.status is not TaskStatus.SUCCEEDED:
        return _still_running(request, run.settings, done)
    return await json_response(await image_response(run.links, done, spec))


_IMAGES_OK: openapi.Responses = {
    200: openapi.images_ok("OpenAIImageResponse",
                           "The images (or, with `stream: true`, Server-Sent Events)"),
}
_WHY = {400: "As on /v1, and OpenAI's own refusals: `response_format` with a GPT image "
             "model, streaming a DALL·E model"}


@router.post(f"{PREFIX}/images/generations",
             openapi_extra=openapi.json_body(openapi.GENERATION_REQUEST,
                                             examples=openapi.GENERATION_EXAMPLES),
             responses=openapi.responses(_IMAGES_OK, openapi.OPENAI_CREATE, why=_WHY))
async def openai_create_generation(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    return await _run(request, run, key, await json_body(request), "generate")


@router.post(f"{PREFIX}/images/edits",
             openapi_extra=openapi.json_body(openapi.EDIT_REQUEST, multipart=True,
                                             examples=openapi.EDIT_EXAMPLES),
             responses=openapi.responses(_IMAGES_OK, openapi.OPENAI_EDIT, why=_WHY))
async def openai_create_edit(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    return await _run(request, run, key, body, "edit", refs, mask)


@router.post(f"{PREFIX}/images/variations",
             openapi_extra=openapi.json_body(openapi.VARIATION_REQUEST, multipart=True,
                                             form="ImageVariationForm",
                                             examples=openapi.VARIATION_EXAMPLES),
             responses=openapi.responses({200: openapi.json_ok("OpenAIImageResponse",
                                                               "The images")},
                                         openapi.OPENAI_EDIT, why=_WHY))
async def openai_create_variation(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    return await _run(request, run, key, body, "variation", refs, mask)


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "imagegate"}


@router.get(f"{PREFIX}/models", responses=openapi.responses(
    {200: openapi.json_ok("OpenAIModelList", "Every model of the catalog")}, openapi.KEYED))
async def openai_list_models(request: Request, catalog: CatalogDep) -> JSONResponse:
    await api_key(request)
    names = catalog.names()
    return JSONResponse({"object": "list", "data": [_model(n) for n in names]})


@router.get(f"{PREFIX}/models/{{model}}", responses=openapi.responses(
    {200: openapi.json_ok("OpenAIModel", "The model")}, openapi.READ,
    why={404: "No such model (`model_not_found`)"}))
async def openai_retrieve_model(request: Request, model: str, catalog: CatalogDep
                                ) -> JSONResponse:
    await api_key(request)
    if catalog.get(model) is None:
        raise ModelNotFoundError(f"The model '{model}' does not exist", param="model")
    return JSONResponse(_model(model))
