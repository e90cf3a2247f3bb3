"""`POST /v1/images/generations`: sync by default, async on any of the four triggers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from imagegate.accounts.keys import ApiKey
from imagegate.api import openapi
from imagegate.api.creation import Creation, CreationDep, idempotency_key, with_deadline
from imagegate.api.deps import api_key, json_body
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse
from imagegate.api.stream import stream_response
from imagegate.domain.normalize import normalize, opt_bool
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, TaskStatus

router = APIRouter()

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def wants_async(request: Request, body: dict[str, Any]) -> bool:
    """Any one trigger is enough (000 seed): ?async=true, ?wait_for_result=false,
    `Prefer: respond-async`, or `"wait_for_result": false` in the body."""
    q = request.query_params
    if q.get("async", "").lower() in _TRUE:
        return True
    if q.get("wait_for_result", "").lower() in _FALSE:
        return True
    if "respond-async" in request.headers.get("prefer", "").lower():
        return True
    return opt_bool(body, "wait_for_result") is False


def accepted(retry_after: int, task: Task) -> Response:
    return JSONResponse(
        native.submit_response(task),
        status_code=202,
        headers={"Location": f"/v1/tasks/{task.id}", "Retry-After": str(retry_after)},
    )


async def run_request(request: Request, run: Creation, key: ApiKey, body: dict[str, Any],
                      image_request: ImageRequest) -> Response:
    """The native answer, shared by generations and edits: 202 with the task, or wait."""
    image_request = with_deadline(request, image_request, run.settings)
    if image_request.stream:
        return await stream_response(run, key, image_request,
                                     idempotency_key=idempotency_key(request),
                                     route=request.url.path)
    retry_after = run.settings.retry_after_seconds
    if wants_async(request, body):
        task = await run.intake.create(key, image_request,
                                       idempotency_key=idempotency_key(request),
                                       route=request.url.path)
        return accepted(retry_after, task)
    # The client waits: this process runs the task itself when it can (tasks/inline.py).
    task, job = await run.intake.create_and_run(key, image_request,
                                                idempotency_key=idempotency_key(request),
                                                route=request.url.path)
    done = await run.tasks.result(task, job)
    if done.status is TaskStatus.SUCCEEDED:
        return JSONResponse(await native.image_response(run.links, done))
    # Still running after sync_wait_seconds: hand over the task instead of holding the line.
    return accepted(retry_after, done)


@router.post("/v1/images/generations", tags=["images"],
             openapi_extra=openapi.json_body(openapi.GENERATION_REQUEST,
                                             examples=openapi.GENERATION_EXAMPLES),
             responses=openapi.responses(
                 {200: openapi.images_ok("ImageResponse", "The images (or, with `stream: "
                                         "true`, Server-Sent Events)"),
                  202: openapi.ACCEPTED},
                 openapi.CREATE))
async def create_generation(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body = await json_body(request)
    image_request = normalize(body, run.catalog, operation="generate")
    return await run_request(request, run, key, body, image_request)
