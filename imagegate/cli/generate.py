"""`imagegate generate PROMPT`: images through a running server (or a seed service, by
`--dialect`), by way of `imagegate.client`: submit, show the task's progress, save the files
where `--out` says and print their paths. With `--image` it is an edit; with `--async` it
prints the task id and leaves. Ctrl-C while it waits leaves the task running and prints the
command that picks it up again (see connection.py for settings and exit codes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from imagegate.cli.connection import (
    INTERRUPTED,
    ApiKeyOpt,
    Connection,
    DialectOpt,
    ProfileOpt,
    UrlOpt,
    failures,
    keyed_connection,
    resume_command,
)
from imagegate.cli.taskbars import TaskBars
from imagegate.client import Task

ModelOpt = Annotated[str | None, typer.Option(
    help="Model id (see GET /v1/models; default: the server's).")]
SizeOpt = Annotated[str | None, typer.Option(help="auto, a ratio like 16:9, or WxH.")]
ResolutionOpt = Annotated[str | None, typer.Option(help="1k, 2k or 4k.")]
NOpt = Annotated[int | None, typer.Option("-n", help="Number of images.", min=1)]
FormatOpt = Annotated[str | None, typer.Option("--format", help="png, jpeg or webp.")]
QualityOpt = Annotated[str | None, typer.Option(help="auto, low, medium, high (by model).")]
BackgroundOpt = Annotated[str | None, typer.Option(help="auto, opaque or transparent.")]
OutOpt = Annotated[Path, typer.Option(help="Directory to save the images in.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the task as JSON.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    help="Stop waiting after this many seconds (the task keeps running).", min=0)]


def image_fields(model: str | None, size: str | None, resolution: str | None, n: int | None,
                 output_format: str | None, quality: str | None,
                 background: str | None) -> dict[str, Any]:
    return {"model": model, "size": size, "resolution": resolution, "n": n,
            "output_format": output_format, "quality": quality, "background": background}


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    model: ModelOpt = None, size: SizeOpt = None, resolution: ResolutionOpt = None,
    n: NOpt = None, output_format: FormatOpt = None, quality: QualityOpt = None,
    background: BackgroundOpt = None,
    image: Annotated[list[str] | None, typer.Option(
        "--image", metavar="FILE|URL",
        help="A reference image (repeatable): makes this an edit.")] = None,
    mask: Annotated[str | None, typer.Option(metavar="FILE|URL",
                                             help="A mask for the edit.")] = None,
    out: OutOpt = Path("."),
    submit_only: Annotated[bool, typer.Option(
        "--async", help="Print the task id and exit; `imagegate tasks wait` picks it up.")]
    = False,
    as_json: JsonOut = False,
    open_files: Annotated[bool, typer.Option("--open", help="Open the saved images.")]
    = False,
    timeout: TimeoutOpt = None,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """Generate (or, with --image, edit) images: submit, show progress, save the files."""
    conn = keyed_connection(url, api_key, profile, dialect)
    if mask and not image:
        typer.echo("error: --mask needs at least one --image", err=True)
        raise typer.Exit(2)
    fields = image_fields(model, size, resolution, n, output_format, quality, background)
    submitted: list[Task] = []
    with failures(), conn.client() as client:
        def create(wait: bool, bars: TaskBars | None = None) -> Task:
            rows: list[Any] = []
            if bars is not None and not client.dialect.tasks:
                # A synchronous service: one request for the whole wait, no progress.
                rows.append(bars.add(f"{client.dialect.name}: waiting for the images"))

            def progress(task: Task) -> None:
                if bars is not None and rows:
                    bars.show(rows[0], task)

            def remember(task: Task) -> None:
                submitted.append(task)
                if wait and client.dialect.tasks:
                    typer.echo(f"submitted {task.id}", err=True)
                if bars is not None and not rows:
                    rows.append(bars.add(task.id))
                progress(task)

            if image:
                return client.edit(prompt, image, mask=mask, **fields, wait=wait,
                                   timeout=timeout, on_progress=progress,
                                   on_submitted=remember)
            return client.generate(prompt, **fields, wait=wait, timeout=timeout,
                                   on_progress=progress, on_submitted=remember)

        if submit_only:
            task = create(wait=False)
            typer.echo(json.dumps(task.to_dict(), indent=2) if as_json else task.id)
            typer.echo(f"wait for it with: {resume_command(conn, 'tasks', 'wait', task.id)}",
                       err=True)
            return
        try:
            with TaskBars() as bars:
                task = create(wait=True, bars=bars)
        except KeyboardInterrupt:
            interrupted(conn, submitted, out)
        paths = client.download_all(task, out)
    if as_json:
        typer.echo(json.dumps({**task.to_dict(), "files": [str(p) for p in paths]}, indent=2))
    else:
        for path in paths:
            typer.echo(str(path))
    if open_files:
        for path in paths:
            typer.launch(str(path))


def interrupted(conn: Connection, submitted: list[Task], out: Path) -> NoReturn:
    """Ctrl-C while waiting: the task keeps running; say how to pick it up."""
    if not submitted or not submitted[-1].id or submitted[-1].done:
        typer.echo("\ninterrupted", err=True)
        raise typer.Exit(INTERRUPTED)
    task_id = submitted[-1].id
    command = resume_command(conn, "tasks", "wait", task_id, "--out", str(out))
    typer.echo(f"\ninterrupted: task {task_id} keeps running on the server. Pick it up "
               f"with:\n  {command}", err=True)
    raise typer.Exit(INTERRUPTED)
