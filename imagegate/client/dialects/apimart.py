"""`dialect="apimart"`: the 002 seed's service (and imagegate's `/apimart/v1` profile).
Always asynchronous: `POST /v1/images/generations` answers `{code: 200, data: [{status,
task_id}]}`; `GET /v1/tasks/{id}` answers `{code: 200, data: {id, status, progress,
estimated_time, result: {images: [{url: [...]}]}, error}}`. Reference images travel as
`image_urls` (files as `data:` URLs); the seed has no mask, no cancel, no task list, no event
stream and no variations.
"""

from __future__ import annotations

from typing import Any

from imagegate.client.dialects.base import CreateRequest, Dialect, json_object
from imagegate.client.errors import UnexpectedResponseError
from imagegate.client.inputs import as_reference
from imagegate.client.models import Task, opt_float, opt_int
from imagegate.client.steps import Answer, Call

# The seed's statuses (and `cancelled`, which imagegate's profile adds) in imagegate's terms.
STATUS = {"submitted": "queued", "pending": "queued", "processing": "in_progress",
          "completed": "succeeded", "failed": "failed", "cancelled": "cancelled"}


class Apimart(Dialect):
    name = "apimart"
    can_cancel = False
    can_list = False
    has_events = False
    can_vary = False
    dedupes_creates = False

    def create_call(self, req: CreateRequest) -> Call:
        if req.mask is not None:
            raise self.refuse("mask (the 002 seed's API takes none)")
        body = dict(req.fields)
        if req.images:
            body["image_urls"] = [as_reference(image) for image in req.images]
        return Call("POST", "/v1/images/generations", json=body,
                    headers={"Idempotency-Key": req.idempotency_key}, retry="create")

    def read_created(self, answer: Answer) -> Task:
        data = _data(answer)
        first = data[0] if isinstance(data, list) and data else None
        task_id = first.get("task_id") if isinstance(first, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise UnexpectedResponseError(f"{answer.url} answered without a task id: "
                                          f"{answer.content[:200]!r}")
        return Task(id=task_id, status="queued", raw=json_object(answer))

    def read_task(self, answer: Answer) -> Task:
        data = _data(answer)
        if not isinstance(data, dict):
            raise UnexpectedResponseError(f"{answer.url} answered a task without `data`")
        return self.task_from(data, answer.url)

    def task_from(self, body: dict[str, Any], where: str = "the server") -> Task:
        task_id, status = body.get("id"), body.get("status")
        if not isinstance(task_id, str) or not isinstance(status, str):
            raise UnexpectedResponseError(f"{where} answered something that is not a task")
        result = body.get("result")
        images = result.get("images") if isinstance(result, dict) else None
        native_result = None
        if isinstance(images, list):
            items = []
            for image in images:
                url = image.get("url") if isinstance(image, dict) else None
                url = url[0] if isinstance(url, list) and url else url
                if isinstance(url, str):
                    items.append({"url": url, "expires_at": image.get("expires_at")})
            native_result = {"data": items}
        error = body.get("error")
        return Task(
            id=task_id, status=STATUS.get(status, status),
            progress=opt_int(body.get("progress")) or 0,
            created_at=opt_int(body.get("created")), completed_at=opt_int(body.get("completed")),
            estimated_seconds=opt_float(body.get("estimated_time")),
            result=native_result, error=_error(error), raw=body)


def _data(answer: Answer) -> Any:
    body = json_object(answer)
    code = body.get("code")
    if isinstance(code, int) and code != 200:
        raise UnexpectedResponseError(f"{answer.url} answered code {code}: "
                                      f"{answer.content[:200]!r}")
    return body.get("data")


def _error(error: Any) -> dict[str, Any] | None:
    """apimart's `{code: <status>, message, type}` as imagegate's error object (its numeric
    code is a status, not a code)."""
    if not isinstance(error, dict):
        return None
    return {"message": error.get("message"), "type": error.get("type"), "param": None,
            "code": error.get("code") if isinstance(error.get("code"), str) else None,
            "status": error.get("code") if isinstance(error.get("code"), int) else None}
