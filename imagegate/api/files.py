"""`GET /p/img/{task_id}/{index}?exp=&sig=`: image bytes behind a signed, expiring URL.

No bearer token: the URL is the credential, which is what lets `<img src>` and plain
downloads work. Expired and tampered URLs look the same from outside: 403, and so does an
`index` or `exp` written in any but the canonical way (`+5`, `05`, `1_0`, `５`): one image has
exactly one URL per expiry. `HEAD` answers like `GET` without the body.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from imagegate.api import openapi
from imagegate.api.deps import LinksDep, TasksDep
from imagegate.domain.numbers import parse_int
from imagegate.domain.task import TaskStatus
from imagegate.errors import NotFoundError, PermissionDeniedError
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
    304: {"description": "If-None-Match carried the image's ETag", "headers": _CACHE_HEADERS},
    **openapi.errors((400, 403, 404, 500), why={
        400: "index is not an integer",
        403: "exp or sig missing, wrong or tampered with, or exp in the past",
        404: "Task unknown or not succeeded, index out of range, or image deleted",
    }),
}


def _forbidden() -> PermissionDeniedError:
    return PermissionDeniedError("This image link is invalid or has expired",
                                 code="invalid_signature")


# `response_class=Response`: the bytes are an image, not the app's default JSON.
@router.get("/p/img/{task_id}/{index}", response_class=Response, responses=_RESPONSES)
# HEAD is its own route, left out of the OpenAPI description (one operation per path and id).
@router.head("/p/img/{task_id}/{index}", include_in_schema=False)
async def get_image(task_id: str, index: str, request: Request, links: LinksDep,
                    tasks: TasksDep, exp: str = "", sig: str = "") -> Response:
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
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    try:
        data = await links.read(image)
    except BlobNotFoundError:
        raise gone from None
    if request.method == "HEAD":
        # The same answer as GET (the blob is read, so a deleted image is a 404 here too),
        # with GET's Content-Length and no body.
        headers["Content-Length"] = str(len(data))
        return Response(media_type=image.content_type, headers=headers)
    return Response(content=data, media_type=image.content_type, headers=headers)
