"""The native presentation of tasks and results (DESIGN §1): the 000/001 seeds' shapes.

Other profiles (openai, apimart) will rename and wrap these; none holds business logic.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from imagegate.domain.request import ImageRequest
from imagegate.domain.task import StoredImage, Task, TaskStatus
from imagegate.services import Services


def file_id(task_id: str, index: int) -> str:
    return f"file_{task_id.removeprefix('img_')}_{index}"


def signed_url(svc: Services, task: Task, index: int) -> tuple[str, int]:
    """The signed URL of result image `index` (relative, or absolute when configured) and
    its expiry in ms. Other profiles present the same URL, so it is built in one place."""
    settings = svc.settings
    exp = svc.signer.expiry(not_after=task.expires_at)
    path = svc.signer.path(task.id, index, exp)
    if settings.url_mode == "absolute" and settings.public_base_url:
        path = settings.public_base_url + path
    return path, exp


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _image_item(
    svc: Services, task: Task, index: int, image: StoredImage, response_format: str
) -> dict[str, Any]:
    settings = svc.settings
    item: dict[str, Any] = {"file_id": file_id(task.id, index)}
    if response_format == "b64_json" or response_format == "data_url" or \
            settings.url_mode == "data":
        data = await svc.blobs.get(image.key)
        # A 4K PNG is ~10 MB: encoding it inline would stall every other request meanwhile.
        encoded = (base64.b64encode(data).decode() if len(data) < 256 * 1024
                   else await asyncio.to_thread(_b64, data))
        if response_format == "b64_json":
            item["b64_json"] = encoded
        else:
            item["url"] = f"data:{image.content_type};base64,{encoded}"
    if "url" not in item:
        item["url"], _ = signed_url(svc, task, index)
    if image.revised_prompt:
        item["revised_prompt"] = image.revised_prompt
    return item


async def image_response(svc: Services, task: Task) -> dict[str, Any]:
    """The synchronous response body (also a succeeded task's `result`)."""
    request = ImageRequest.from_json(task.request)
    data = [
        await _image_item(svc, task, i, image, request.response_format)
        for i, image in enumerate(task.images)
    ]
    body: dict[str, Any] = {
        "created": int(task.created_at),
        "task_id": task.id,
        "data": data,
        "size": request.size_label,
        "output_format": request.output_format,
        "quality": request.quality,
        "background": request.background,
    }
    usage = (task.result or {}).get("usage")
    if usage:
        body["usage"] = usage
    return body


def submit_response(task: Task) -> dict[str, Any]:
    return {"created": int(task.created_at), "task_id": task.id, "data": []}


async def task_object(svc: Services, task: Task) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.id,
        "task_id": task.id,
        "object": "image.task",
        "status": task.status.value,
        "progress": task.progress,
        "model": task.model,
        "created_at": int(task.created_at),
        "completed_at": int(task.completed_at) if task.completed_at else None,
        "expires_at": int(task.expires_at),
        "result": None,
        "error": None,
    }
    if task.status is TaskStatus.SUCCEEDED:
        body["result"] = await image_response(svc, task)
    elif task.error is not None:
        body["error"] = task.error
    return body
