"""Task events the client makes itself: from what changed between two polls of a server
without an event stream, and from stream events that carry only what changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from imagegate.client.models import Task, TaskEvent, opt_float, opt_int

# Event types by the status they leave a task in (for events that carry no task object).
EVENT_STATUS = {"task.queued": "queued", "task.started": "in_progress",
                "task.progress": "in_progress", "task.partial_image": "in_progress",
                "task.succeeded": "succeeded", "task.failed": "failed",
                "task.cancelled": "cancelled"}


def transitions(last: Task | None, task: Task) -> list[TaskEvent]:
    """The events between two polls of a task, as its event stream would have sent them."""
    def event(kind: str) -> TaskEvent:
        return TaskEvent(type=kind, task=task)

    if task.done:
        return [event(f"task.{task.status}")]
    if last is None or last.status != task.status:
        return [event("task.started" if task.status == "in_progress" else "task.queued")]
    if (last.progress, last.queue_position) != (task.progress, task.queue_position):
        return [event("task.progress")]
    return []


def task_object(data: dict[str, Any]) -> dict[str, Any] | None:
    """The task object an event carries: the data itself, or under `task` / `data`."""
    for candidate in (data, data.get("task"), data.get("data")):
        if isinstance(candidate, dict) and "status" in candidate and (
                "id" in candidate or "task_id" in candidate):
            return candidate
    return None


def merge(last: Task, kind: str, data: dict[str, Any]) -> Task:
    """The task after an event that carries only what changed."""
    progress = opt_int(data.get("progress"))
    position = opt_int(data.get("queue_position"))
    estimate = opt_float(data.get("estimated_seconds"))
    return replace(last, status=EVENT_STATUS.get(kind, last.status),
                   progress=last.progress if progress is None else progress,
                   queue_position=position if "queue_position" in data else last.queue_position,
                   estimated_seconds=last.estimated_seconds if estimate is None else estimate)
