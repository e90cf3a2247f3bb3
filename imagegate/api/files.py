"""`GET /p/img/{task_id}/{index}?exp=&sig=`: image bytes behind a signed, expiring URL.

No bearer token: the URL is the credential, which is what lets `<img src>` and plain
downloads work. Expired and tampered URLs look the same from outside: 403, and so does an
`index` or `exp` written in any but the canonical way (`+5`, `05`, `1_0`, `５`): one image has
exactly one URL per expiry. `HEAD` answers like `GET` without the body.

The bytes stream from the blob store in chunks (an S3 object is never held whole in memory),
`Range: bytes=…` gets a 206 with that part (`ranges.py`), and `If-None-Match` a 304. With
`s3_presigned_redirect` the answer is instead a 302 to a presigned URL of the object at the
storage service, valid for `PRESIGNED_SECONDS` at most (never past the signed URL's own
expiry): the bytes then never pass through imagegate.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from starlette.responses import RedirectResponse, StreamingResponse

from imagegate.api import openapi
from imagegate.api.deps import LinksDep, SettingsDep, TasksDep
from imagegate.api.profiles.errors import render_error
from imagegate.api.ranges import RangeNotSatisfiable, requested_range
from imagegate.api.responses import JSONResponse
from imagegate.domain.numbers import parse_int
from imagegate.domain.task import TaskStatus
from imagegate.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from imagegate.storage.base import BlobNotFoundError

router = APIRouter(tags=["files"])

_CACHE_HEADERS = {
    "ETag": {"required": True, "schema": {"type": "string"},
             "description": "Derived from the image bytes"},
    "Cache-Control": {"required": True, "schema": {"type": "string"},
                      "description": "private, max-age=<seconds until exp>, immutable"},
}
_BYTES = {"schema": {"type": "string", "format": "binary"}}
_RESPONSES: openapi.Responses = {
    200: {"description": "The image bytes", "headers": _CACHE_HEADERS,
          "content": {media: _BYTES for media in ("image/png", "image/jpeg", "image/webp")}},
    206: {"description": "The byte range a `Range` header asked for (`Content-Range`)",
          "headers": _CACHE_HEADERS,
          "content": {media: _BYTES for media in ("image/png", "image/jpeg", "image/webp")}},
    302: {"description": "With s3_presigned_redirect: a short-lived presigned URL of the "
                         "object (`Location`)"},
    304: {"description": "If-None-Match carried the image's ETag", "headers": _CACHE_HEADERS},
    **openapi.errors((400, 403, 404, 416, 500), why={
        416: "The Range lies outside the image",
        400: "index is not an integer",
        403: "exp or sig missing, wrong or tampered with, or exp in the past",
        404: "Task unknown or not succeeded, index out of range, or image deleted",
    }),
}
PRESIGNED_SECONDS = 300


def _forbidden() -> PermissionDeniedError:
    return PermissionDeniedError("This image link is invalid or has expired",
                                 code="invalid_signature")


def _unsatisfiable(path: str, size: int) -> JSONResponse:
    exc = InvalidRequestError(f"The requested range is outside the image ({size} bytes)",
                              param="Range", code="range_not_satisfiable")
    body, status = render_error(exc, path, 416)
    return JSONResponse(body, status_code=status, headers={"Content-Range": f"bytes */{size}"})


# `response_class=Response`: the bytes are an image, not the app's default JSON.
@router.get("/p/img/{task_id}/{index}", response_class=Response, responses=_RESPONSES)
# HEAD is its own route, left out of the OpenAPI description (one operation per path and id).
@router.head("/p/img/{task_id}/{index}", include_in_schema=False)
async def get_image(task_id: str, index: str, request: Request, links: LinksDep,
                    tasks: TasksDep, settings: SettingsDep, exp: str = "", sig: str = ""
                    ) -> Response:
    # Both are read as text and parsed here: FastAPI's int conversion takes ` 5`, `+5`, `05`.
    position, exp_ms = parse_int(index), parse_int(exp)
    if position is None or exp_ms is None or not sig:
        raise _forbidden()
    if not links.verify(task_id, position, exp_ms, sig):
        raise _forbidden()
    gone = NotFoundError("This image no longer exists", code="image_not_found")
    task = await tasks.lookup(task_id)
    if task is None or task.status is not TaskStatus.SUCCEEDED:
        raise gone
    images = task.images
    if not position < len(images):
        raise gone
    image = images[position]
    etag = f'"{image.etag}"'
    max_age = max(0, int(exp_ms / 1000 - time.time()))
    headers = {
        "ETag": etag,
        # The bytes behind a URL never change, so caches may keep them until the URL expires.
        "Cache-Control": f"private, max-age={max_age}, immutable",
        "Accept-Ranges": "bytes",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if settings.s3_presigned_redirect:
        url = await links.presigned(image, min(PRESIGNED_SECONDS, max(1, max_age)))
        if url is not None:
            # The redirect itself must not outlive the presigned URL in any cache.
            return RedirectResponse(url, status_code=302,
                                    headers={"Cache-Control": "private, no-store"})
    size = image.size
    try:
        part = requested_range(request.headers.get("range"), size,
                               if_range=request.headers.get("if-range"), etag=etag)
    except RangeNotSatisfiable:
        return _unsatisfiable(request.url.path, size)
    start, end = (0, None) if part is None else (part.start, part.end)
    try:
        # HEAD reads one byte: enough to know the blob is still there (a 404 otherwise),
        # without fetching a whole object from S3 for nothing.
        head = request.method == "HEAD" and start < size
        chunks = await links.open(image, start, start + 1 if head else end)
    except BlobNotFoundError:
        raise gone from None
    status = 200
    headers["Content-Length"] = str(size)
    if part is not None:
        status = 206
        headers["Content-Range"] = part.content_range(size)
        headers["Content-Length"] = str(part.length)
    if request.method == "HEAD":
        return Response(status_code=status, media_type=image.content_type, headers=headers)
    return StreamingResponse(chunks, status_code=status, media_type=image.content_type,
                             headers=headers)
