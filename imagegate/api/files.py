"""`GET /p/img/{task_id}/{index}?exp=&sig=`: image bytes behind a signed, expiring URL.

No bearer token: the URL is the credential, which is what lets `<img src>` and plain
downloads work. Expired and tampered URLs look the same from outside: 403.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from imagegate.api import openapi
from imagegate.api.deps import LinksDep, TasksDep
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
async def get_image(task_id: str, index: int, request: Request, links: LinksDep,
                    tasks: TasksDep, exp: str = "", sig: str = "") -> Response:
    try:
        exp_ms = int(exp)
    except ValueError:
        raise _forbidden() from None
    if not sig or not links.verify(task_id, index, exp_ms, sig):
        raise _forbidden()
    gone = NotFoundError("This image no longer exists", code="image_not_found")
    task = await tasks.lookup(task_id)
    if task is None or task.status is not TaskStatus.SUCCEEDED:
        raise gone
    images = task.images
    if not 0 <= index < len(images):
        raise gone
    image = images[index]
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
    return Response(content=data, media_type=image.content_type, headers=headers)
