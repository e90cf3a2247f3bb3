"""What the client hands back: `Task`, its `ImageItem`s, `TaskEvent`s and a `TaskPage`.

Every dialect's answers are read into these (the dialect modules do the mapping), so calling
code is the same against imagegate and the seed services. `raw` keeps the body as the server
sent it, for anything the typed fields leave out.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
STATUSES = ("queued", "in_progress", *sorted(TERMINAL))


@dataclass(frozen=True)
class ImageItem:
    """One result image: a `url` (absolute, relative `/p/img/…` or `data:`) and/or `b64_json`."""

    index: int
    url: str | None = None
    b64_json: str | None = None
    file_id: str | None = None
    revised_prompt: str | None = None
    task_id: str | None = None
    output_format: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, index: int, item: dict[str, Any], *, task_id: str | None = None,
                  output_format: str | None = None) -> ImageItem:
        url = item.get("url")
        if isinstance(url, list):  # some resellers send the URL as a one-item list
            url = next((u for u in url if isinstance(u, str) and u), None)
        b64 = item.get("b64_json")
        return cls(index=index, url=url if isinstance(url, str) and url else None,
                   b64_json=b64 if isinstance(b64, str) and b64 else None,
                   file_id=_opt_str(item.get("file_id")),
                   revised_prompt=_opt_str(item.get("revised_prompt")),
                   task_id=task_id, output_format=output_format, raw=dict(item))


@dataclass(frozen=True)
class Task:
    """A task in imagegate's terms, whichever service it came from.

    `status` is one of `queued`, `in_progress`, `succeeded`, `failed`, `cancelled`. A
    synchronous dialect (openai) has no task on the server: its answer is a `succeeded`
    Task whose `id` the client made up (`sync_…`)."""

    id: str
    status: str
    progress: int = 0
    model: str | None = None
    created_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    queue_position: int | None = None
    estimated_seconds: float | None = None
    attempts: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def images(self) -> list[ImageItem]:
        """The result images (empty unless `succeeded`)."""
        if not self.result:
            return []
        data = self.result.get("data")
        fmt = _opt_str(self.result.get("output_format"))
        return [ImageItem.from_dict(i, item, task_id=self.id, output_format=fmt)
                for i, item in enumerate(data if isinstance(data, list) else [])
                if isinstance(item, dict)]

    def to_dict(self) -> dict[str, Any]:
        """The task as imagegate's task object (what `--json` prints)."""
        return {"id": self.id, "object": "image.task", "status": self.status,
                "progress": self.progress, "model": self.model,
                "created_at": self.created_at, "completed_at": self.completed_at,
                "expires_at": self.expires_at, "queue_position": self.queue_position,
                "estimated_seconds": self.estimated_seconds, "attempts": self.attempts,
                "result": self.result, "error": self.error}


@dataclass(frozen=True)
class TaskEvent:
    """One event of a task: `type` is `task.queued`, `task.started`, `task.progress`,
    `task.partial_image`, `task.succeeded`, `task.failed` or `task.cancelled`.

    `task` is the task as this event leaves it (the last one the client knows, with what the
    event changed). `id` is the server's event id (None for events the client made up from
    polling a server that has no event stream)."""

    type: str
    task: Task
    id: str | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        return self.type in {"task.succeeded", "task.failed", "task.cancelled"}

    @property
    def partial_image(self) -> bytes | None:
        """The partial image's bytes of a `task.partial_image` event."""
        for name in ("b64_json", "partial_image_b64", "b64"):
            value = self.data.get(name)
            if isinstance(value, str) and value:
                try:
                    return base64.b64decode(value)
                except (binascii.Error, ValueError):
                    return None
        return None


@dataclass(frozen=True)
class TaskPage:
    """One page of `GET /v1/tasks`: newest first; pass `last_id` as `after` for the next."""

    data: list[Task]
    has_more: bool
    last_id: str | None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return None


def opt_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None
