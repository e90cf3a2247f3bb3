"""Streaming responses (`"stream": true` with `partial_images` 1–3): Server-Sent Events in
OpenAI's format — `image_generation.partial_image` events, then `image_generation.completed`
(`image_edit.*` for edits).

The task id goes out first (the `x-task-id` header, `Location`, and a leading comment), and
the stream only *follows* the task: a client that disconnects loses nothing, the task runs
on and stays retrievable with `GET /v1/tasks/{id}`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse

from imagegate.accounts.keys import ApiKey
from imagegate.api.creation import Creation
from imagegate.domain.images import PartialImage
from imagegate.domain.request import ImageRequest, produced_fields
from imagegate.domain.task import Task, TaskStatus
from imagegate.tasks.events import EventKind, Subscription, TaskEvent

_ZERO_USAGE = {"input_tokens": 0, "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
               "output_tokens": 0, "total_tokens": 0}


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One event; `event_id` becomes its `id:` line (what `Last-Event-ID` sends back)."""
    head = b"" if event_id is None else b"id: " + str(event_id).encode() + b"\n"
    return head + b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _common(request: ImageRequest, result: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fields every event carries: what is being made, never `auto` (the upstream's
    report once the task has a `result`, else the request's resolved values)."""
    made = produced_fields(request, result)
    return {"created_at": int(time.time()), "size": made["size"], "quality": made["quality"],
            "background": made["background"], "output_format": made["output_format"]}


def _partial_event(prefix: str, request: ImageRequest, partial: PartialImage,
                   extras: bool) -> bytes:
    data = {
        "type": f"{prefix}.partial_image",
        "b64_json": base64.b64encode(partial.data).decode(),
        "partial_image_index": partial.partial_index,
        **_common(request),
    }
    if extras:
        data["image_index"] = partial.image_index
    return sse(f"{prefix}.partial_image", data)


async def _final_events(run: Creation, prefix: str, request: ImageRequest, task: Task,
                        extras: bool) -> AsyncIterator[bytes]:
    if task.status is not TaskStatus.SUCCEEDED:
        error = task.error or {"message": f"The task ended {task.status.value}",
                               "type": "server_error", "param": None, "code": None}
        yield sse("error", {"type": "error", "error": error})
        return
    usage = (task.result or {}).get("usage") or _ZERO_USAGE
    for index, image in enumerate(task.images):
        event = {
            "type": f"{prefix}.completed",
            "b64_json": await run.links.b64(image),
            "usage": usage,
            **_common(request, task.result),
        }
        if extras:
            event["image_index"] = index
        yield sse(f"{prefix}.completed", event)


def _partials(events: list[TaskEvent]) -> list[PartialImage]:
    return [e.partial for e in events
            if e.kind is EventKind.PARTIAL_IMAGE and e.partial is not None]


# What ends a stream's wait early: a preview to send, or the task's end to read.
_WAKE = frozenset({EventKind.PARTIAL_IMAGE, EventKind.TERMINAL})


async def _follow(run: Creation, task: Task, sub: Subscription, prefix: str,
                  request: ImageRequest, extras: bool) -> AsyncIterator[bytes]:
    yield f": task_id={task.id}\n\n".encode()
    keepalive = run.settings.stream_keepalive_seconds
    deadline = time.monotonic() + run.tasks.sync_wait_seconds
    last_sent = time.monotonic()
    pending: list[TaskEvent] = []
    while True:
        for partial in _partials(pending):
            yield _partial_event(prefix, request, partial, extras)
            last_sent = time.monotonic()
        pending = []
        current = await run.tasks.lookup(task.id)
        if current is None or current.status.terminal:
            # Previews that arrived between the last wake-up and the end.
            for partial in _partials(await sub.next(0)):
                yield _partial_event(prefix, request, partial, extras)
            async for chunk in _final_events(run, prefix, request, current or task, extras):
                yield chunk
            return
        if time.monotonic() > deadline:
            yield sse("error", {"type": "error", "error": {
                "message": f"The image is still being generated; retrieve it later with "
                           f"GET /v1/tasks/{task.id}",
                "type": "timeout", "param": None, "code": "stream_timeout"}})
            return
        # Wake on a preview or the end; re-read at least every poll interval in case an
        # event was lost (another process, Redis away).
        reread = time.monotonic() + min(keepalive, run.tasks.poll_interval)
        while (left := reread - time.monotonic()) > 0:
            events = await sub.next(left)
            pending.extend(events)
            if any(e.kind in _WAKE for e in events):
                break
        if time.monotonic() - last_sent >= keepalive:
            yield b": keep-alive\n\n"
            last_sent = time.monotonic()


async def stream_response(run: Creation, key: ApiKey, request: ImageRequest, *,
                          openai_fields_only: bool = False, idempotency_key: str | None = None,
                          route: str = "") -> StreamingResponse:
    """`openai_fields_only` leaves out the native extras (`image_index`) for the openai
    profile; the task id still travels in a header and an SSE comment, which clients skip."""
    prefix = "image_edit" if request.operation == "edit" else "image_generation"
    task_id = run.intake.new_task_id()
    # Subscribe before the task exists, so not even its first partial image can be missed.
    subscription = run.tasks.subscribe(task_id)
    sub = await subscription.__aenter__()
    try:
        task = await run.intake.create(key, request, task_id, idempotency_key=idempotency_key,
                                       route=route)
        if task.id != task_id:  # an idempotent replay: follow the earlier task instead
            await subscription.__aexit__(None, None, None)
            subscription = run.tasks.subscribe(task.id)
            sub = await subscription.__aenter__()
    except BaseException as exc:
        await subscription.__aexit__(type(exc), exc, exc.__traceback__)
        raise

    # As stored (an idempotent replay's is the earlier task's): what the events describe.
    stored = ImageRequest.from_json(task.request)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in _follow(run, task, sub, prefix, stored,
                                       not openai_fields_only):
                yield chunk
        finally:  # also on client disconnect: the task itself is not touched
            await subscription.__aexit__(None, None, None)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"x-task-id": task.id, "Location": f"/v1/tasks/{task.id}",
                 "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
