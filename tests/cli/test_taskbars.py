"""The progress bars of the client commands: status (with the queue), %, elapsed, and an ETA
from the server's `estimated_seconds`."""

from __future__ import annotations

import io

from rich.console import Console

from imagegate.cli.taskbars import TaskBars, eta_text, status_text
from imagegate.client import Task


def test_status_and_eta_texts() -> None:
    queued = Task(id="img_1", status="queued", queue_position=2, created_at=1000,
                  estimated_seconds=90)
    assert status_text(queued) == "queued (2 ahead)"
    assert status_text(Task(id="img_1", status="in_progress")) == "in progress"
    assert eta_text(queued, now=1025) == "ETA 0:01:05"
    assert eta_text(queued, now=2000) == "ETA soon"
    assert eta_text(Task(id="img_1", status="in_progress")) == ""  # no estimate sent
    assert eta_text(Task(id="img_1", status="succeeded", created_at=1000,
                         estimated_seconds=90)) == ""


def test_a_row_shows_the_task() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=False)
    with TaskBars(console) as bars:
        row = bars.add("img_1")
        bars.show(row, Task(id="img_1", status="in_progress", progress=40,
                            created_at=2_000_000_000, estimated_seconds=60))
    line = buffer.getvalue()
    assert "img_1 in progress" in line and "40%" in line and "ETA" in line


def test_bars_that_never_started_print_nothing_and_an_error_hides_them() -> None:
    buffer = io.StringIO()
    with TaskBars(Console(file=buffer, force_terminal=False)):
        pass
    try:
        with TaskBars(Console(file=buffer, force_terminal=False)) as bars:
            bars.add("img_2")
            raise RuntimeError("the error line says it all")
    except RuntimeError:
        pass
    assert buffer.getvalue() == ""
