"""`POST /v1/images/generations`: sync by default, async on any of the four triggers, and
`Prefer: wait=N` to wait a bounded time (`api/prefer.py`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from imagegate.accounts.keys import ApiKey
from imagegate.api import openapi
from imagegate.api.creation import (
    Creation,
    CreationDep,
    creation_of,
    idempotency_key,
    with_deadline,
)
from imagegate.api.deps import api_key, json_body
from imagegate.api.prefer import Preferences, preferences
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse, json_response
from imagegate.api.stream import stream_response
from imagegate.domain.normalize import normalize, opt_bool
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, TaskStatus

router = APIRouter()

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def wants_async(request: Request, body: dict[str, Any], prefs: Preferences) -> bool:
    """Any one trigger is enough (000 seed): ?async=true, ?wait_for_result=false,
    `Prefer: respond-async`, or `"wait_for_result": false` in the body."""
    q = request.query_params
    if q.get("async", "").lower() in _TRUE:
        return True
    if q.get("wait_for_result", "").lower() in _FALSE:
        return True
    if prefs.respond_async:
        return True
    return opt_bool(body, "wait_for_result") is False


def accepted(retry_after: int, task: Task, applied: str | None = None) -> Response:
    headers = {"Location": f"/v1/tasks/{task.id}", "Retry-After": str(retry_after)}
    if applied:
        headers["Preference-Applied"] = applied
    return JSONResponse(native.submit_response(task), status_code=202, headers=headers)


def wait_seconds(prefs: Preferences, sync_wait_seconds: float) -> int | None:
    """`Prefer: wait=N` capped at `sync_wait_seconds` (whole seconds, as the header
    speaks), or None without one."""
    if prefs.wait is None:
        return None
    return min(prefs.wait, int(sync_wait_seconds))


async def run_request(request: Request, run: Creation, key: ApiKey, body: dict[str, Any],
                      image_request: ImageRequest) -> Response:
    """The native answer, shared by generations and edits: 202 with the task, or wait."""
    image_request = with_deadline(request, image_request, run.settings)
    if image_request.stream:
        return await stream_response(run, key, image_request,
                                     idempotency_key=idempotency_key(request),
                                     route=request.url.path)
    retry_after = run.settings.retry_after_seconds
    prefs = preferences(request.headers)
    # `wait=N` bounds the wait even beside an async trigger: `respond-async, wait=5` means
    # "wait up to 5 s, then hand over the task" (RFC 7240 §4.3).
    wait = wait_seconds(prefs, run.settings.sync_wait_seconds)
    if wait is None and wants_async(request, body, prefs):
        task = await run.intake.create(key, image_request,
                                       idempotency_key=idempotency_key(request),
                                       route=request.url.path)
        return accepted(retry_after, task, prefs.applied(None, answered_async=True))
    # The client waits: this process runs the task itself when it can (tasks/inline.py).
    task, job = await run.intake.create_and_run(key, image_request,
                                                idempotency_key=idempotency_key(request),
                                                route=request.url.path)
    done = await run.tasks.result(task, job, timeout=wait)
    if done.status is TaskStatus.SUCCEEDED:
        applied = prefs.applied(wait, answered_async=False)
        return await json_response(await native.image_response(run.links, done, streamed=True),
                                   headers={"Preference-Applied": applied} if applied else None)
    # Still running after the wait: hand over the task instead of holding the line.
    return accepted(retry_after, done, prefs.applied(wait, answered_async=True))


@router.post("/v1/images/generations", tags=["images"],
             openapi_extra=openapi.json_body(openapi.GENERATION_REQUEST,
                                             examples=openapi.GENERATION_EXAMPLES, prefer=True),
             responses=openapi.responses(
                 {200: openapi.preferred(openapi.images_ok(
                     "ImageResponse", "The images (or, with `stream: true`, Server-Sent "
                     "Events)")),
                  202: openapi.ACCEPTED},
                 openapi.CREATE))
async def create_generation(request: Request, run: CreationDep) -> Response:
    key = await api_key(request)
    body = await json_body(request)
    image_request = normalize(body, run.catalog, operation="generate")
    return await run_request(request, run, key, body, image_request)


async def hot_create_generation(request: Request) -> Response:
    """`create_generation` as `HotRoutesMiddleware` serves it, ahead of FastAPI's router."""
    return await create_generation(request, await creation_of(request))


# For HotRoutesMiddleware, which serves these POSTs before the router (same endpoint).
HOT_POSTS = {"/v1/images/generations": hot_create_generation}
