"""`POST /v1/images/generations/async` and `POST /v1/images/edits/async`: the route shapes
other gateways give asynchronous submits (sub2api's `/async` routes), so clients written for
them work unchanged. Always asynchronous, whatever the body or `Prefer` say: **202** with
`Location` and `Retry-After`, and a body holding `task_id`, `poll_url` (absolute, like result
URLs) and `expires_at` beside the native async body's fields. The task is the native one:
poll it at `poll_url` (`GET /v1/images/tasks/{id}`) or `GET /v1/tasks/{id}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from imagegate.accounts.keys import ApiKey
from imagegate.api import openapi
from imagegate.api.creation import Creation, CreationDep, idempotency_key, with_deadline
from imagegate.api.deps import LinksDep, api_key, json_body
from imagegate.api.edits import read_edit_input
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse
from imagegate.domain.normalize import normalize
from imagegate.domain.request import ImageRequest
from imagegate.errors import InvalidRequestError
from imagegate.storage.links import ResultLinks

router = APIRouter(tags=["images"])


def _no_stream(image_request: ImageRequest) -> None:
    # Checked after normalizing (which reads `stream` in all its spellings); a stream is a
    # synchronous answer, which these routes never give.
    if image_request.stream:
        raise InvalidRequestError(
            "This route always answers asynchronously; to stream, use POST "
            "/v1/images/generations (or /edits) with stream: true",
            param="stream", code="stream_not_supported",
        )


async def _submit(request: Request, run: Creation, links: ResultLinks, key: ApiKey,
                  image_request: ImageRequest) -> Response:
    _no_stream(image_request)
    image_request = with_deadline(request, image_request, run.settings)
    task = await run.intake.create(key, image_request, idempotency_key=idempotency_key(request),
                                   route=request.url.path)
    path = f"/v1/images/tasks/{task.id}"
    body: dict[str, Any] = {**native.submit_response(task), "status": task.status.value,
                            "poll_url": links.link(path), "expires_at": int(task.expires_at)}
    return JSONResponse(body, status_code=202, headers={
        "Location": path, "Retry-After": str(run.settings.retry_after_seconds)})


_ACCEPTED: openapi.Responses = {202: openapi.async_accepted()}


@router.post("/v1/images/generations/async", status_code=202,
             openapi_extra=openapi.json_body(openapi.GENERATION_REQUEST,
                                             examples=openapi.GENERATION_EXAMPLES),
             responses=openapi.responses(_ACCEPTED, openapi.CREATE))
async def create_generation_async(request: Request, run: CreationDep, links: LinksDep
                                  ) -> Response:
    key = await api_key(request)
    body = await json_body(request)
    image_request = normalize(body, run.catalog, operation="generate")
    return await _submit(request, run, links, key, image_request)


@router.post("/v1/images/edits/async", status_code=202,
             openapi_extra=openapi.json_body(openapi.EDIT_REQUEST, multipart=True,
                                             examples=openapi.EDIT_EXAMPLES),
             responses=openapi.responses(_ACCEPTED, openapi.EDIT))
async def create_edit_async(request: Request, run: CreationDep, links: LinksDep) -> Response:
    key = await api_key(request)
    body, refs, mask = await read_edit_input(request, run.settings)
    image_request = normalize(body, run.catalog, operation="edit", references=refs, mask=mask)
    return await _submit(request, run, links, key, image_request)
