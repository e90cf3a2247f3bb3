"""The `apimart` profile at `/apimart/v1` (the 002 seed), so its clients work with only the
base URL and key changed. A presentation layer over the native core: the same normalize →
`create_task` path, answered and renamed the seed's way.

- Submitting is always asynchronous (the seed's service has no sync mode): 200 with
  `{"code": 200, "data": [{"status": "submitted", "task_id": …}]}`.
- `response_format` and `style` are ignored, as the seed says, and so are the native-only
  `wait_for_result`, `stream` and `partial_images`; `official_fallback` reaches routing (it
  lets the request fall back to channels marked `official`).
- Tasks read as `{"code": 200, "data": {…}}` with the seed's status names; errors as
  `{"error": {"code", "message", "type"}}` (see `profiles/errors.py`).
- `language` (zh/en/ko/ja) is accepted on every route and ignored: messages are English.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request

from imagegate.accounts.keys import ApiKey
from imagegate.api import deps, openapi
from imagegate.api.creation import Creation, CreationDep, idempotency_key, with_deadline
from imagegate.api.deps import LinksDep, SettingsDep, TasksDep, api_key, json_body
from imagegate.api.edits import read_edit_input
from imagegate.api.profiles.errors import apimart_error
from imagegate.api.responses import JSONResponse
from imagegate.api.tasks import not_found, owned_task
from imagegate.domain.catalog import Catalog
from imagegate.domain.normalize import normalize, record_ignored
from imagegate.domain.request import ImageRequest, ReferenceSource
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import InvalidRequestError, error_from_json
from imagegate.storage.links import ResultLinks

PREFIX = "/apimart/v1"
router = APIRouter(tags=["apimart"])
OPENAPI_TAG = {"name": "apimart", "description": "The `apimart` profile at /apimart/v1: "
               "asynchronous submit, `{code, data}` bodies and the seed's task statuses."}

STATUS_NAMES: dict[TaskStatus, str] = {
    TaskStatus.QUEUED: "submitted",  # the 002 seed's table has no "pending"
    TaskStatus.IN_PROGRESS: "processing",
    TaskStatus.SUCCEEDED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "cancelled",
}
# Typical seconds per tier, from the 000 seed's table: what `estimated_time` reports when
# the server has no estimate of its own (`TaskService.estimate`).
ESTIMATED_SECONDS: dict[str, int] = {"1k": 60, "2k": 120, "4k": 180}
MAX_BATCH = 100
# Fields the seed's service does not have: dropped before normalizing, recorded as ignored.
_NOT_APIMART = ("response_format", "style", "wait_for_result", "stream", "partial_images")


def _cost_micros(task: Task) -> int:
    if task.charge_state == "settled":
        return task.charged_amount
    if task.charge_state == "held":
        return task.hold_amount
    return 0


def task_cost(task: Task) -> float:
    """What the task cost the caller, from billing: the settled charge once it succeeded
    (the images produced), the hold while it runs, nothing after a refund (failed or
    cancelled)."""
    return _cost_micros(task) / 1_000_000


def credits_cost(task: Task, credits_per_unit: float) -> float:
    """`cost` in credits (the seed's `credits_cost`: 0.05279 → 0.5279 at 10 per unit),
    computed in decimal so it is exactly `cost` × `credits_per_unit`, without binary
    rounding (0.05279 × 10 in floats is 0.5278999999999999)."""
    credits = Decimal(_cost_micros(task)) * Decimal(repr(credits_per_unit)) / 1_000_000
    return float(credits)


def _prepare(catalog: Catalog, body: dict[str, Any], operation: str,
             refs: tuple[ReferenceSource, ...] | None = None,
             mask: ReferenceSource | None = None) -> ImageRequest:
    dropped = [k for k in _NOT_APIMART if k in body]
    kept = {k: v for k, v in body.items() if k not in _NOT_APIMART}
    # The seed's image-to-image rule: without `size`, the output keeps the input's size.
    image_request = normalize(kept, catalog, operation=operation, references=refs,
                              mask=mask, size_from_reference=True)
    ignored = record_ignored([*dropped, *image_request.ignored_fields])
    return replace(image_request, ignored_fields=ignored)


async def _submit(request: Request, run: Creation, key: ApiKey,
                  image_request: ImageRequest) -> JSONResponse:
    image_request = with_deadline(request, image_request, run.settings)
    task = await run.intake.create(key, image_request, idempotency_key=idempotency_key(request),
                                   route=request.url.path)
    return JSONResponse({"code": 200, "data": [{"status": "submitted", "task_id": task.id}]})


_SUBMITTED: openapi.Responses = {
    200: openapi.json_ok("ApimartSubmitted", "Submitted; poll GET /apimart/v1/tasks/{task_id}"),
}


@router.post(f"{PREFIX}/images/generations",
             openapi_extra=openapi.json_body(openapi.APIMART_GENERATION_REQUEST,
                                             examples=openapi.GENERATION_EXAMPLES),
             responses=openapi.responses(_SUBMITTED, openapi.APIMART_CREATE, apimart=True))
async def apimart_create_generation(request: Request, run: CreationDep) -> JSONResponse:
    key = await api_key(request)
    body = await json_body(request)
    return await _submit(request, run, key, _prepare(run.catalog, body, "generate"))


@router.post(f"{PREFIX}/images/edits",
             openapi_extra=openapi.json_body(openapi.APIMART_EDIT_REQUEST, multipart=True,
                                             form="ApimartEditForm",
                                             examples=openapi.EDIT_EXAMPLES),
             responses=openapi.responses(_SUBMITTED, openapi.APIMART_EDIT, apimart=True))
async def apimart_create_edit(request: Request, run: CreationDep) -> JSONResponse:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    return await _submit(request, run, key, _prepare(run.catalog, body, "edit", refs, mask))


async def _image(links: ResultLinks, task: Task, index: int) -> dict[str, Any]:
    """One result image: its URL (as a one-element list, the seed's shape) and expiry (s)."""
    url, exp_ms = await links.url(task, index)
    return {"url": [url], "expires_at": exp_ms // 1000}


def estimated_time(task: Task, estimate: float | None) -> int:
    """`estimated_time` (whole seconds): the server's estimate for the task's model × tier,
    else the seed's figure for its tier."""
    if estimate is not None:
        return max(1, round(estimate))
    return ESTIMATED_SECONDS.get(str(task.request.get("tier")), ESTIMATED_SECONDS["1k"])


async def task_data(links: ResultLinks, task: Task, credits_per_unit: float,
                    estimate: float | None = None) -> dict[str, Any]:
    """A task in the seed's shape. As the seed documents, `completed` and `actual_time`
    appear once the task has ended, `result` only when it completed, `error` only when it
    carries one (failed, or cancelled with a reason). `estimate`: `TaskService.estimate`."""
    data: dict[str, Any] = {
        "id": task.id,
        "status": STATUS_NAMES[task.status],
        "progress": task.progress,
        "created": int(task.created_at),
        "estimated_time": estimated_time(task, estimate),
        "cost": task_cost(task),
        "credits_cost": credits_cost(task, credits_per_unit),
    }
    if task.status.terminal and task.completed_at is not None:
        data["completed"] = int(task.completed_at)
        # From the two reported integers, so a client's `completed - created` agrees.
        data["actual_time"] = int(task.completed_at) - int(task.created_at)
    if task.status is TaskStatus.SUCCEEDED:
        data["result"] = {"images": [await _image(links, task, i)
                                     for i in range(len(task.images))]}
    if task.error is not None:
        data["error"], _ = apimart_error(error_from_json(task.error))
    return data


async def get_task(request: Request) -> JSONResponse:
    """`GET /apimart/v1/tasks/{task_id}`. A plain Starlette route like the native poll (the
    hottest path; see `api/tasks.py`). Another key's task is the same 404 as none."""
    task = await owned_task(request)
    per_unit = (await deps.settings(request)).credits_per_unit
    estimate = await (await deps.tasks(request)).estimate(task)
    return JSONResponse({"code": 200, "data": await task_data(await deps.links(request), task,
                                                              per_unit, estimate)})


def _task_ids(body: dict[str, Any]) -> list[str]:
    ids = body.get("task_ids")
    if not isinstance(ids, list) or not ids:
        raise InvalidRequestError("'task_ids' must be a non-empty list of task ids",
                                  param="task_ids",
                                  code="missing_required_parameter" if ids is None
                                  else "invalid_type")
    if len(ids) > MAX_BATCH:
        raise InvalidRequestError(
            f"'task_ids' lists {len(ids)} ids; at most {MAX_BATCH} per request",
            param="task_ids",
        )
    for i, value in enumerate(ids):
        if not isinstance(value, str) or not value:
            raise InvalidRequestError(f"task_ids[{i}] must be a task id string",
                                      param=f"task_ids[{i}]", code="invalid_type")
    return ids


@router.post(f"{PREFIX}/tasks/batch",
             openapi_extra=openapi.json_body(openapi.ref("ApimartBatchRequest")),
             responses=openapi.responses(
                 {200: openapi.json_ok("ApimartBatch", "`data[i]` answers `task_ids[i]`")},
                 (400, 401, 413, 500), apimart=True))
async def apimart_batch_tasks(request: Request, tasks: TasksDep, links: LinksDep,
                              settings: SettingsDep) -> JSONResponse:
    """Up to 100 tasks in one call: `data[i]` answers `task_ids[i]` (duplicates included), so
    a client can zip the two lists. An id that does not exist, or belongs to another key,
    answers `{"id", "status": "failed", "progress": 0, "error": {"code": 404, …}}`: an ended
    entry with the reason, so a client polling until every entry has ended stops, instead of
    waiting forever for an entry that will never come."""
    key = await api_key(request)
    ids = _task_ids(await json_body(request))
    found = await tasks.get_many(ids, key.id)
    data: list[dict[str, Any]] = []
    for task_id in ids:
        task = found.get(task_id)
        if task is None:
            error, _ = apimart_error(not_found(task_id))
            data.append({"id": task_id, "status": "failed", "progress": 0, "error": error})
        else:
            data.append(await task_data(links, task, settings.credits_per_unit,
                                        await tasks.estimate(task)))
    return JSONResponse({"code": 200, "data": data})


router.add_route(f"{PREFIX}/tasks/{{task_id}}", get_task, methods=["GET"])

_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
# Any value is accepted (and ignored), so the schema allows any; the seed's values are examples.
_LANGUAGE = {"name": "language", "in": "query", "required": False,
             "schema": {"type": "string", "examples": ["zh", "en", "ko", "ja"]},
             "description": "Accepted for compatibility; messages are in English"}
# The task route is a plain Starlette route, so FastAPI does not describe it; this does.
OPENAPI_PATHS: dict[str, Any] = {
    f"{PREFIX}/tasks/{{task_id}}": {"get": {
        "tags": ["apimart"], "summary": "Retrieve a task (apimart shape)",
        "operationId": "apimartGetTask", "parameters": [_TASK_ID, _LANGUAGE],
        "responses": {str(status): response for status, response in openapi.responses(
            {200: openapi.json_ok("ApimartTask", "The task in apimart's shape")},
            openapi.READ, apimart=True, why={404: "No such task for this key"}).items()},
    }},
}
