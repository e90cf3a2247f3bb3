"""The native presentation of tasks and results (DESIGN §1): the 000/001 seeds' shapes.

Other profiles (openai, apimart) will rename and wrap these; none holds business logic.
"""

from __future__ import annotations

from typing import Any

from imagegate.domain.request import ResponseShape, produced_fields
from imagegate.domain.task import StoredImage, Task, TaskStatus
from imagegate.storage.links import ResultLinks
from imagegate.tasks.service import Outlook


def file_id(task_id: str, index: int) -> str:
    return f"file_{task_id.removeprefix('img_')}_{index}"


async def _image_item(links: ResultLinks, task: Task, index: int, image: StoredImage,
                      response_format: str, inline: bool = True) -> dict[str, Any]:
    item: dict[str, Any] = {"file_id": file_id(task.id, index)}
    if not inline:
        item["url"], _ = links.signed_url(task, index)
    elif response_format == "b64_json":
        item["b64_json"] = await links.b64(image)
        item["url"], _ = links.signed_url(task, index)
    elif response_format == "data_url":
        item["url"] = await links.data_url(image)
    else:
        item["url"], _ = await links.url(task, index)
    if image.revised_prompt:
        item["revised_prompt"] = image.revised_prompt
    return item


async def image_response(links: ResultLinks, task: Task, *, inline: bool = True
                         ) -> dict[str, Any]:
    """The synchronous response body (also a succeeded task's `result`). `inline=False`
    (task lists): every image as its signed URL, never its bytes, whatever
    `response_format` asked, so a page of a hundred tasks stays small."""
    request = ResponseShape.from_json(task.request)
    data = [
        await _image_item(links, task, i, image, request.response_format, inline)
        for i, image in enumerate(task.images)
    ]
    made = produced_fields(request, task.result)
    body: dict[str, Any] = {
        "created": int(task.created_at),
        "task_id": task.id,
        "data": data,
        # What was made, never `auto` (003's ImagesResponse): the upstream's report, else
        # the request's values as the catalog resolved them.
        "size": made["size"],
        "output_format": made["output_format"],
        "quality": made["quality"],
        "background": made["background"],
    }
    usage = (task.result or {}).get("usage")
    if usage:
        body["usage"] = usage
    return body


def submit_response(task: Task) -> dict[str, Any]:
    return {"created": int(task.created_at), "task_id": task.id, "data": []}


async def task_object(links: ResultLinks, task: Task, outlook: Outlook | None = None, *,
                      inline: bool = True) -> dict[str, Any]:
    """The task as `GET /v1/tasks/{id}` shows it. `outlook` (`TaskService.outlook`): its
    queue position and estimate; without one both are null. `inline`: see
    `image_response`."""
    outlook = outlook or Outlook()
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
        "attempts": task.attempts,
        "queue_position": outlook.queue_position,
        "estimated_seconds": outlook.estimated_seconds,
        "deadline_at": int(task.deadline_at) if task.deadline_at is not None else None,
        "result": None,
        "error": None,
    }
    if task.status is TaskStatus.SUCCEEDED:
        body["result"] = await image_response(links, task, inline=inline)
    elif task.error is not None:
        body["error"] = task.error
    return body
