"""`GET /v1/tasks/{id}/events`: one task's life as Server-Sent Events — `task.queued`,
`task.started`, `task.progress`, `task.partial_image`, then exactly one of `task.succeeded`,
`task.failed`, `task.cancelled`, after which the stream ends.

Every event is built from the row (`tasks/timeline.py` derives the ids), so resuming with
`Last-Event-ID` in any process sends what the client missed and nothing twice. The event bus
only says *when* to look: the stream subscribes before it reads the row (nothing between the
read and the wait is missed) and re-reads the row every poll interval anyway (an event lost
with Redis away costs latency, not an event). Partial images come from the bus only.

A plain Starlette route like the other task routes (see `api/tasks.py`); its OpenAPI entry
is in `api/openapi.py`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from imagegate.api import deps
from imagegate.api.deps import api_key
from imagegate.api.profiles import native
from imagegate.api.stream import sse
from imagegate.api.tasks import not_found
from imagegate.domain.images import PartialImage
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task
from imagegate.storage.links import ResultLinks
from imagegate.tasks import timeline
from imagegate.tasks.events import EventKind, Subscription
from imagegate.tasks.service import TaskService

router = APIRouter(tags=["tasks"])

KEEPALIVE = b": keep-alive\n\n"


class _Follower:
    """What one stream has sent: the last id (nothing at or below it is sent again) and how
    many previews it numbered after each progress step."""

    def __init__(self, service: TaskService, links: ResultLinks, last_id: int) -> None:
        self.service = service
        self.links = links
        self.last_id = last_id
        self._partials: dict[int, int] = {}

    async def marks(self, task: Task) -> AsyncIterator[bytes]:
        for mark in timeline.marks(task):
            if mark.id <= self.last_id:
                continue
            data: dict[str, Any] = {"type": mark.name, "task_id": task.id}
            if mark.progress is not None:
                data["progress"] = mark.progress
            # With queue position and estimate, as a poll shows it (the UI's progress bar).
            data["task"] = await native.task_object(self.links, task,
                                                    await self.service.outlook(task))
            self.last_id = mark.id
            yield sse(mark.name, data, event_id=mark.id)

    def partial(self, task: Task, partial: PartialImage) -> bytes | None:
        """A preview heard on the bus while the row was `task`; None when it has no place
        (the task is not running, too many at one step, or the client saw past it)."""
        base = timeline.partial_base(task)
        if base is None:
            return None
        count = self._partials.get(base, 0) + 1
        event_id = base + count
        if count > timeline.MAX_PARTIALS_PER_STEP or event_id <= self.last_id:
            return None
        self._partials[base] = count
        self.last_id = event_id
        output_format = ImageRequest.from_json(task.request).output_format
        return sse(timeline.PARTIAL_IMAGE, {
            "type": timeline.PARTIAL_IMAGE, "task_id": task.id,
            "partial_image_index": partial.partial_index, "image_index": partial.image_index,
            "b64_json": base64.b64encode(partial.data).decode(),
            "output_format": output_format,
        }, event_id=event_id)


async def follow(service: TaskService, links: ResultLinks, task: Task, sub: Subscription,
                 last_id: int, keepalive: float) -> AsyncIterator[bytes]:
    """The stream of `task` (read after `sub` was opened) from after `last_id`."""
    follower = _Follower(service, links, last_id)
    sent_at = time.monotonic()
    state = task
    async for chunk in follower.marks(state):
        yield chunk
    while not state.status.terminal:
        wait = min(service.poll_interval, max(0.0, keepalive - (time.monotonic() - sent_at)))
        events = await sub.next(wait)
        partials = [e.partial for e in events
                    if e.kind is EventKind.PARTIAL_IMAGE and e.partial is not None]
        wrote = False
        # Previews first, numbered against the row they were made under: one that came
        # with the end still goes out before the terminal event.
        for partial in partials:
            preview = follower.partial(state, partial)
            if preview is not None:
                wrote = True
                yield preview
        if len(partials) < len(events) or not events:
            # A state change was announced, or none came in a poll interval (safety net).
            current = await service.lookup(task.id)
            if current is None:  # removed by retention meanwhile: nothing more to say
                return
            state = current
            async for chunk in follower.marks(state):
                wrote = True
                yield chunk
        if wrote:
            sent_at = time.monotonic()
        elif time.monotonic() - sent_at >= keepalive:
            sent_at = time.monotonic()
            yield KEEPALIVE


async def task_events(request: Request) -> StreamingResponse:
    key = await api_key(request)
    task_id: str = request.path_params["task_id"]
    service = await deps.tasks(request)
    links = await deps.links(request)
    settings = await deps.settings(request)
    last_id = timeline.parse_last_id(request.headers.get("last-event-id")
                                     or request.query_params.get("last_event_id"))
    # Subscribe before reading the row, so a change between the read and the first wait is
    # heard; another key's task is a 404 before any byte of a stream is sent.
    subscription = service.subscribe(task_id)
    sub = await subscription.__aenter__()
    try:
        task = await service.get(task_id, key.id)
        if task is None:
            raise not_found(task_id)
    except BaseException as exc:
        await subscription.__aexit__(type(exc), exc, exc.__traceback__)
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in follow(service, links, task, sub, last_id,
                                      settings.stream_keepalive_seconds):
                yield chunk
        finally:  # also on a client disconnect
            await subscription.__aexit__(None, None, None)

    return StreamingResponse(body(), media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "x-task-id": task.id})


router.add_route("/v1/tasks/{task_id}/events", task_events, methods=["GET"])
