"""A task's event stream as the row implies it: which events a follower of
`GET /v1/tasks/{id}/events` must have seen by now, each with an id derived from the row.

The ids come from durable state, not from a counter kept by whoever serves the stream, so a
client reconnecting with `Last-Event-ID` to another process (or after a restart) is sent
exactly what it missed, never a repeat: the server rebuilds the events the row implies and
sends those whose id is greater than the one the client last saw.

    queued (first)            1
    started, attempt a        a × 10_000
    progress p, attempt a     a × 10_000 + 100 × p          (p 1–99)
    partial k, after p        a × 10_000 + 100 × p + k      (k 1–99; best effort)
    queued again after a      a × 10_000 + 9_999            (a lost lease was requeued)
    terminal                  TERMINAL_ID                   (greater than any other)

Progress only grows within an attempt (the worker writes it only when it grows), and a new
attempt starts above everything the previous one sent. Where a lease is handed back on a
graceful stop the attempt count goes down again; the ids the repeated attempt yields are then
ones already sent, and a stream only ever sends ids above the last one, so those are skipped
rather than repeated.

Partial images are not in the row (they are too big to write per preview): a stream sends
the ones it hears on the event bus while it is connected, numbered after the last progress
it saw. A client that reconnects does not get back the previews it missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.domain.task import Task, TaskStatus

QUEUED_ID = 1
ATTEMPT_SPAN = 10_000
PROGRESS_STEP = 100
MAX_PARTIALS_PER_STEP = PROGRESS_STEP - 1
TERMINAL_ID = 10**15

QUEUED = "task.queued"
STARTED = "task.started"
PROGRESS = "task.progress"
PARTIAL_IMAGE = "task.partial_image"
TERMINAL_NAMES = {
    TaskStatus.SUCCEEDED: "task.succeeded",
    TaskStatus.FAILED: "task.failed",
    TaskStatus.CANCELLED: "task.cancelled",
}


@dataclass(frozen=True, slots=True)
class Mark:
    """One event the row implies: its id and name (`progress` for task.progress)."""

    id: int
    name: str
    progress: int | None = None


def marks(task: Task) -> list[Mark]:
    """The events a follower should have seen given the row as it is now, oldest first. A
    finished task implies only its terminal event: a client arriving after the end is told
    the end at once."""
    if task.status.terminal:
        return [Mark(TERMINAL_ID, TERMINAL_NAMES[task.status])]
    out = [Mark(QUEUED_ID, QUEUED)]
    base = task.attempts * ATTEMPT_SPAN
    if task.status is TaskStatus.QUEUED:
        if task.attempts > 0:
            out.append(Mark(base + ATTEMPT_SPAN - 1, QUEUED))
        return out
    out.append(Mark(base, STARTED))
    if task.progress > 0:
        out.append(Mark(base + PROGRESS_STEP * min(task.progress, 99), PROGRESS,
                        task.progress))
    return out


def partial_base(task: Task) -> int | None:
    """The id partial images count up from while the row is `task`, or None when the task
    is not running (a preview then has no place in the stream)."""
    if task.status is not TaskStatus.IN_PROGRESS:
        return None
    return task.attempts * ATTEMPT_SPAN + PROGRESS_STEP * min(max(task.progress, 0), 99)


def parse_last_id(value: str | None) -> int:
    """`Last-Event-ID` as sent back by a client: 0 (nothing seen) when absent or not ours."""
    if not value:
        return 0
    try:
        parsed = int(value.strip())
    except ValueError:
        return 0
    return max(parsed, 0)
