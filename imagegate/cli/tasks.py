"""`imagegate tasks list|get|wait|cancel`: the key's tasks on a running server, by way of
`imagegate.client` (see connection.py for settings and exit codes). `wait` shows the task's
progress and, with `--out`, saves its images; `--json` everywhere prints the task object."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from imagegate.cli.connection import (
    INTERRUPTED,
    TASK_FAILED,
    ApiKeyOpt,
    DialectOpt,
    ProfileOpt,
    UrlOpt,
    failures,
    keyed_connection,
    resume_command,
)
from imagegate.cli.generate import JsonOut, TimeoutOpt
from imagegate.cli.taskbars import TaskBars, status_text
from imagegate.client import STATUSES, Task

tasks_app = typer.Typer(help="List, read, wait for and cancel your tasks.",
                        no_args_is_help=True)

TaskIdArg = Annotated[str, typer.Argument(metavar="TASK_ID", help="The task id (img_…).")]


@tasks_app.command("list")
def tasks_list(
    status: Annotated[str | None, typer.Option(
        help=f"Only this status: {', '.join(STATUSES)}.")] = None,
    model: Annotated[str | None, typer.Option(help="Only this model.")] = None,
    created_after: Annotated[int | None, typer.Option(
        help="Only tasks created after this time (Unix seconds).")] = None,
    created_before: Annotated[int | None, typer.Option(
        help="Only tasks created before this time (Unix seconds).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1–100).", min=1, max=100)]
    = 20,
    after: Annotated[str | None, typer.Option(
        help="The page after this task id (the last id of the page before).")] = None,
    as_json: JsonOut = False,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """Your tasks, newest first (needs a server with GET /v1/tasks)."""
    conn = keyed_connection(url, api_key, profile, dialect)
    with failures(), conn.client() as client:
        page = client.tasks.list(status=status, model=model, created_after=created_after,
                                 created_before=created_before, limit=limit, after=after)
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": [t.to_dict() for t in page.data],
                               "has_more": page.has_more, "last_id": page.last_id},
                              indent=2))
        return
    table = Table("id", "status", "progress", "model", "created")
    for task in page.data:
        table.add_row(task.id, status_text(task), f"{task.progress}%", task.model or "",
                      _when(task.created_at))
    Console().print(table)
    if page.has_more:
        # The next page is the same query continued: the filters and page size come along.
        same = [("--status", status), ("--model", model), ("--created-after", created_after),
                ("--created-before", created_before), ("--limit", limit)]
        flags = [part for name, value in same if value is not None
                 for part in (name, str(value))]
        more = resume_command(conn, "tasks", "list", "--after", page.last_id or "", *flags)
        typer.echo(f"more: {more}", err=True)


@tasks_app.command("get")
def tasks_get(
    task_id: TaskIdArg, as_json: JsonOut = False,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """One task: status, progress, result or error."""
    conn = keyed_connection(url, api_key, profile, dialect)
    with failures(), conn.client() as client:
        task = client.tasks.get(task_id)
    _print(task, as_json)


@tasks_app.command("wait")
def tasks_wait(
    task_id: TaskIdArg,
    out: Annotated[Path | None, typer.Option(
        help="Save the images in this directory once the task succeeded.")] = None,
    as_json: JsonOut = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """Wait for a task to end, showing its progress; exit 1 if it failed."""
    conn = keyed_connection(url, api_key, profile, dialect)
    paths: list[Path] = []
    with failures(), conn.client() as client:
        try:
            with TaskBars() as bars:
                row = bars.add(task_id)
                task = client.tasks.wait(task_id, timeout=timeout,
                                         on_progress=lambda t: bars.show(row, t))
        except KeyboardInterrupt:
            again = ["tasks", "wait", task_id, *(["--out", str(out)] if out else [])]
            typer.echo(f"\ninterrupted: task {task_id} keeps running on the server. Pick it "
                       f"up with:\n  {resume_command(conn, *again)}", err=True)
            raise typer.Exit(INTERRUPTED) from None
        if out is not None and task.status == "succeeded":
            paths = client.download_all(task, out)
    if as_json:
        typer.echo(json.dumps({**task.to_dict(), "files": [str(p) for p in paths]}, indent=2))
    elif paths:
        for path in paths:
            typer.echo(str(path))
    else:
        _print(task, False)
    if task.status != "succeeded":
        typer.echo(f"error: task {task.id} {task.status}: {_error_text(task)}", err=True)
        raise typer.Exit(TASK_FAILED)


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: TaskIdArg, as_json: JsonOut = False,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """Cancel a task (refunded; a task that already ended is left as it is)."""
    conn = keyed_connection(url, api_key, profile, dialect)
    with failures(), conn.client() as client:
        task = client.tasks.cancel(task_id)
    _print(task, as_json)


def _print(task: Task, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(task.to_dict(), indent=2))
        return
    lines: list[tuple[str, Any]] = [
        ("id", task.id), ("status", status_text(task)), ("progress", f"{task.progress}%"),
        ("model", task.model), ("created", _when(task.created_at)),
        ("completed", _when(task.completed_at)), ("expires", _when(task.expires_at)),
        ("estimated", f"{task.estimated_seconds:g}s" if task.estimated_seconds else None),
        ("attempts", task.attempts),
    ]
    for name, value in lines:
        if value not in (None, ""):
            typer.echo(f"{name + ':':<11}{value}")
    for item in task.images:
        typer.echo(f"{'image:':<11}{item.url or '(base64)'}")
    if task.error:
        typer.echo(f"{'error:':<11}{_error_text(task)}")


def _error_text(task: Task) -> str:
    error = task.error or {}
    code = f"{error['code']}: " if error.get("code") else ""
    return f"{code}{error.get('message') or task.status}"


def _when(epoch: int | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
