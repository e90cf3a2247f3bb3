"""Progress bars for tasks (rich, on stderr so stdout stays the command's answer): one row
per task with its status, %, elapsed time, and an ETA when the server sends
`estimated_seconds`; an optional overall row for a batch."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from imagegate.client import Task


class TaskBars:
    def __init__(self, console: Console | None = None) -> None:
        columns: list[ProgressColumn] = [
            TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
        ]
        self.console = console or Console(stderr=True)
        self.progress = Progress(*columns, console=self.console)
        self._started = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self._started:
            return
        if exc_type is not None:
            # Leaving on an error: its one line says it all, so no last frame of bars
            # (which a console that is not a terminal would print only now).
            self.console.quiet = True
        self.progress.stop()

    def add(self, label: str, *, total: float = 100) -> TaskID:
        """A new row; the bars appear with the first one (an error before that prints
        nothing but itself)."""
        if not self._started:
            self.progress.start()
            self._started = True
        return self.progress.add_task(label, total=total, eta="")

    def show(self, row: TaskID, task: Task, *, label: str | None = None) -> None:
        """Set a row from the task's latest state."""
        self.progress.update(row, completed=task.progress,
                             description=f"{label or task.id} {status_text(task)}",
                             eta=eta_text(task))

    def remove(self, row: TaskID) -> None:
        self.progress.remove_task(row)


def status_text(task: Task) -> str:
    if task.status == "queued" and task.queue_position is not None:
        return f"queued ({task.queue_position} ahead)"
    return task.status.replace("_", " ")


def eta_text(task: Task, now: float | None = None) -> str:
    """`ETA 0:01:05` from the server's `estimated_seconds` (a whole task's typical time,
    counted from its creation); nothing when the server sends none."""
    if task.done or task.estimated_seconds is None or task.created_at is None:
        return ""
    left = task.created_at + task.estimated_seconds - (now if now is not None else time.time())
    if left <= 0:
        return "ETA soon"
    seconds = int(left + 0.5)
    return f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
