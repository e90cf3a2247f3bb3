"""What a dialect is: how one service spells creating images, reading a task and its other
task routes, as pure functions from requests to `Call`s and from answers to `Task`s. The
I/O, retries and waiting live in `ops.py`, the same for every dialect.

`Dialect` itself is the imagegate native API (`/v1`): the other dialects override what their
service spells differently and switch off what it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import orjson

from imagegate.client.errors import UnexpectedResponseError, UnsupportedError
from imagegate.client.inputs import ImageFile, ImageURL, Loaded
from imagegate.client.models import Task, TaskPage, opt_float, opt_int
from imagegate.client.multipart import encode
from imagegate.client.steps import Answer, Call, RetryKind

Operation = Literal["generate", "edit", "variation"]
ASYNC = {"async": "true"}


@dataclass(frozen=True)
class CreateRequest:
    operation: Operation
    fields: dict[str, Any]  # prompt, model, size, … (only what the caller set)
    images: list[Loaded]
    mask: Loaded | None
    idempotency_key: str

    @property
    def has_urls(self) -> bool:
        every = [*self.images, *([self.mask] if self.mask is not None else [])]
        return any(isinstance(image, ImageURL) for image in every)


class Dialect:
    name: ClassVar[str] = "imagegate"
    tasks: ClassVar[bool] = True  # creates answer a task id (False: a synchronous API)
    can_cancel: ClassVar[bool] = True
    can_list: ClassVar[bool] = True
    has_events: ClassVar[bool] = True
    can_vary: ClassVar[bool] = True
    dedupes_creates: ClassVar[bool] = True  # honours Idempotency-Key

    # ------------------------------------------------------------------ create

    def create_call(self, req: CreateRequest) -> Call:
        headers = {"Idempotency-Key": req.idempotency_key}
        retry: RetryKind = "create_keyed" if self.dedupes_creates else "create"
        if req.operation == "generate":
            return Call("POST", "/v1/images/generations", params=ASYNC, json=req.fields,
                        headers=headers, retry=retry)
        if req.operation == "edit":
            return multipart_call("/v1/images/edits", req.fields, edit_parts(req, "image[]"),
                                  params=ASYNC, headers=headers, retry=retry)
        return multipart_call("/v1/images/variations", req.fields,
                              [("image", i) for i in req.images], params=ASYNC,
                              headers=headers, retry=retry)

    def read_created(self, answer: Answer) -> Task:
        body = json_object(answer)
        task_id = body.get("task_id") or body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise UnexpectedResponseError(f"{answer.url} answered without a task id: "
                                          f"{answer.content[:200]!r}")
        data = body.get("data")
        if answer.status == 200 and isinstance(data, list) and data:
            # The server answered synchronously after all: the result is here.
            return Task(id=task_id, status="succeeded", progress=100,
                        created_at=opt_int(body.get("created")), result=body, raw=body)
        return Task(id=task_id, status="queued", created_at=opt_int(body.get("created")),
                    expires_at=opt_int(body.get("expires_at")), raw=body)

    # ------------------------------------------------------------------ tasks

    def task_call(self, task_id: str) -> Call:
        return Call("GET", f"/v1/tasks/{quote(task_id, safe='')}")

    def read_task(self, answer: Answer) -> Task:
        return self.task_from(json_object(answer), answer.url)

    def task_from(self, body: dict[str, Any], where: str = "the server") -> Task:
        task_id = body.get("id") or body.get("task_id")
        status = body.get("status")
        if not isinstance(task_id, str) or not isinstance(status, str):
            raise UnexpectedResponseError(f"{where} answered something that is not a task: "
                                          f"{orjson.dumps(body)[:200]!r}")
        result, error = body.get("result"), body.get("error")
        return Task(
            id=task_id, status=status, progress=opt_int(body.get("progress")) or 0,
            model=body.get("model") if isinstance(body.get("model"), str) else None,
            created_at=opt_int(body.get("created_at")),
            completed_at=opt_int(body.get("completed_at")),
            expires_at=opt_int(body.get("expires_at")),
            queue_position=opt_int(body.get("queue_position")),
            estimated_seconds=opt_float(body.get("estimated_seconds")),
            attempts=opt_int(body.get("attempts")),
            result=result if isinstance(result, dict) else None,
            error=error if isinstance(error, dict) else None, raw=body)

    def cancel_call(self, task_id: str) -> Call:
        return Call("POST", f"/v1/tasks/{quote(task_id, safe='')}/cancel")

    def list_call(self, query: dict[str, str]) -> Call:
        return Call("GET", "/v1/tasks", params=query)

    def read_list(self, answer: Answer) -> TaskPage:
        body = json_object(answer)
        data = body.get("data")
        if not isinstance(data, list):
            raise UnexpectedResponseError(f"{answer.url} answered a list without `data`")
        tasks = [self.task_from(item, answer.url) for item in data if isinstance(item, dict)]
        last = body.get("last_id")
        return TaskPage(tasks, bool(body.get("has_more")),
                        last if isinstance(last, str) else (tasks[-1].id if tasks else None))

    def events_call(self, task_id: str, last_event_id: str | None) -> Call:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        # Read timeouts are the reconnect signal of a stream gone quiet, not an error.
        return Call("GET", f"/v1/tasks/{quote(task_id, safe='')}/events", headers=headers)

    def refuse(self, what: str) -> UnsupportedError:
        return UnsupportedError(f"the {self.name} dialect has no {what}")


def multipart_call(path: str, fields: dict[str, Any], images: list[tuple[str, Loaded]], *,
                   headers: dict[str, str], retry: RetryKind,
                   params: dict[str, str] | None = None, timeout: float | None = None) -> Call:
    """A multipart POST: the text fields, files as files and URLs as text values under the
    same field name."""
    text = [(name, form_value(value)) for name, value in fields.items()]
    files: list[tuple[str, ImageFile]] = []
    for name, image in images:
        if isinstance(image, ImageFile):
            files.append((name, image))
        else:
            text.append((name, image.url))
    content, content_type = encode(text, files)
    return Call("POST", path, params=params, content=content,
                headers={**headers, "Content-Type": content_type}, retry=retry,
                timeout=timeout)


def edit_parts(req: CreateRequest, name: str) -> list[tuple[str, Loaded]]:
    """The image parts of an edit: every image under `name`, then the mask as `mask`."""
    return [(name, i) for i in req.images] + ([("mask", req.mask)] if req.mask else [])


def form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def json_object(answer: Answer) -> dict[str, Any]:
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        snippet = answer.content[:200].decode("utf-8", "replace")
        raise UnexpectedResponseError(f"{answer.url} answered {answer.status} with something "
                                      f"that is not a JSON object: {snippet!r}")
    return body
