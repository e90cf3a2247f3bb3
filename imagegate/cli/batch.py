"""`imagegate batch FILE`: every prompt of a `.txt` or `.jsonl` file (batch_file.py) through
`imagegate.client`'s `AsyncClient`, `--concurrency` at a time, one progress bar per running
task and one for the whole batch; the images land in `--out`, and `manifest.jsonl` there
(manifest.py) records line → task id → files, so running the same command again skips the
lines that are done, resumes the tasks that are still running and retries the lines that
failed.

A line the server refuses (a bad size, an unknown model) or whose task fails is recorded as
failed and the others go on (exit 1 at the end). A failure that would hit every line — a
wrong key, no balance, no server — stops the batch (exit 2 or 3); whatever was submitted
keeps running and the rerun picks it up.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from imagegate.cli.batch_file import BatchLine, read_batch
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
from imagegate.cli.generate import (
    BackgroundOpt,
    FormatOpt,
    JsonOut,
    ModelOpt,
    NOpt,
    QualityOpt,
    ResolutionOpt,
    SizeOpt,
    image_fields,
)
from imagegate.cli.manifest import Manifest
from imagegate.cli.taskbars import TaskBars
from imagegate.client import (
    APIError,
    AsyncClient,
    ClientError,
    NotFoundError,
    Task,
    TaskFailedError,
)

# Refusals of one line's request; anything else (401, 402, 403, 429, 5xx, no server) would
# refuse every line alike, so it stops the batch.
LINE_REFUSALS = frozenset({400, 404, 409, 413, 415, 422})


@dataclass
class Outcome:
    line: BatchLine
    status: str  # succeeded, failed, skipped (done by an earlier run)
    task_id: str | None = None
    files: list[str] = field(default_factory=list)
    error: dict[str, Any] | None = None


def batch(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", help="A .txt file (one prompt per line) or .jsonl (one object per "
                             "line).")],
    out: Annotated[Path | None, typer.Option(
        help="Directory for the images and manifest.jsonl (default: FILE without its "
             "suffix).")] = None,
    concurrency: Annotated[int, typer.Option(help="Tasks running at once.", min=1, max=64)]
    = 4,
    model: ModelOpt = None, size: SizeOpt = None, resolution: ResolutionOpt = None,
    n: NOpt = None, output_format: FormatOpt = None, quality: QualityOpt = None,
    background: BackgroundOpt = None,
    as_json: JsonOut = False,
    url: UrlOpt = None, api_key: ApiKeyOpt = None, profile: ProfileOpt = None,
    dialect: DialectOpt = None,
) -> None:
    """Run every prompt of FILE; rerun the same command to resume after a stop or a crash."""
    conn = keyed_connection(url, api_key, profile, dialect)
    folder = out if out is not None else file.with_suffix("")
    defaults = image_fields(model, size, resolution, n, output_format, quality, background)
    again = resume_command(conn, "batch", str(file), "--out", str(folder))
    with failures():
        lines = read_batch(file, defaults)
        manifest = Manifest.open(folder, file)
        try:
            outcomes = asyncio.run(_run(conn.async_client(), lines, manifest, folder,
                                        concurrency))
        except KeyboardInterrupt:
            typer.echo(f"\ninterrupted: tasks already submitted keep running; to resume "
                       f"run:\n  {again}", err=True)
            raise typer.Exit(INTERRUPTED) from None
        except ClientError:
            typer.echo(f"the batch stopped; what was submitted keeps running. To resume "
                       f"run:\n  {again}", err=True)
            raise
    _report(outcomes, manifest, as_json)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(TASK_FAILED)


async def _run(client: AsyncClient, lines: list[BatchLine], manifest: Manifest, out: Path,
               concurrency: int) -> list[Outcome]:
    gate = asyncio.Semaphore(concurrency)
    outcomes: list[Outcome] = []
    async with client:
        with TaskBars() as bars:
            overall = bars.add("batch", total=len(lines))

            async def one(line: BatchLine) -> None:
                if _done(manifest.state(line.number), line, out):
                    outcomes.append(Outcome(line, "skipped", manifest.state(line.number)
                                            .get("task_id")))
                else:
                    async with gate:
                        row = bars.add(line.label)
                        try:
                            outcomes.append(await _line(client, line, manifest, out,
                                                        lambda t: bars.show(row, t,
                                                                            label=line.label)))
                        finally:
                            bars.remove(row)
                bars.progress.advance(overall)

            try:
                async with asyncio.TaskGroup() as group:
                    for line in lines:
                        group.create_task(one(line))
            except BaseExceptionGroup as grouped:
                # One line's error that stops the batch: raise it as itself.
                raise _first_error(grouped) from None
    return sorted(outcomes, key=lambda o: o.line.number)


def _done(state: dict[str, Any], line: BatchLine, out: Path) -> bool:
    files = state.get("files")
    return (state.get("key") == line.key and state.get("status") == "succeeded"
            and isinstance(files, list)
            and all((out / name).is_file() for name in files))


async def _line(client: AsyncClient, line: BatchLine, manifest: Manifest, out: Path,
                show: Any) -> Outcome:
    recorded = manifest.state(line.number)
    # What an earlier run did for this very request (an edited line is a new request).
    state = recorded if recorded.get("key") == line.key else {}
    status, task_id = state.get("status"), state.get("task_id")
    task: Task | None = None
    attempt: int = state.get("attempt", 0)
    if status in ("submitted", "succeeded") and task_id and client.dialect.tasks:
        try:  # in flight, or done but its files are gone: pick the task up again
            task = await client.tasks.wait(task_id, on_progress=show)
        except NotFoundError:
            task = None  # gone from the server (retention): make it again
    if task is None:
        if status == "submitting":
            # Killed mid-create last time: the same key gets the same task back.
            key = state["idempotency_key"]
        else:
            attempt = manifest.next_attempt(line.number)
            key = manifest.idempotency_key(line.number, attempt)
            manifest.record(line.number, attempt, key=line.key, idempotency_key=key,
                            status="submitting")
        try:
            task = await _create(client, line, key, show, lambda t: manifest.record(
                line.number, attempt, key=line.key, task_id=t.id, status="submitted"))
        except TaskFailedError as exc:
            task = exc.task
        except APIError as exc:
            if exc.status not in LINE_REFUSALS:
                raise
            error = {"message": exc.message, "code": exc.code, "param": exc.param}
            manifest.record(line.number, attempt, key=line.key, status="failed", error=error)
            return Outcome(line, "failed", error=error)
    if task.status != "succeeded":
        manifest.record(line.number, attempt, key=line.key, task_id=task.id,
                        status=task.status, error=task.error)
        return Outcome(line, "failed", task.id, error=task.error)
    paths = await client.download_all(task, out)
    files = [p.name for p in paths]
    manifest.record(line.number, attempt, key=line.key, task_id=task.id, status="succeeded",
                    files=files)
    return Outcome(line, "succeeded", task.id, [str(p) for p in paths])


async def _create(client: AsyncClient, line: BatchLine, key: str, show: Any,
                  submitted: Any) -> Task:
    fields = {k: v for k, v in line.fields.items() if k in _NAMED}
    extra = {k: v for k, v in line.fields.items() if k not in _NAMED}
    if line.images:
        return await client.edit(line.prompt, line.images, mask=line.mask, **fields,
                                 extra=extra, on_progress=show, on_submitted=submitted,
                                 idempotency_key=key)
    return await client.generate(line.prompt, **fields, extra=extra, on_progress=show,
                                 on_submitted=submitted, idempotency_key=key)


_NAMED = frozenset({"model", "size", "resolution", "n", "output_format", "quality",
                    "background"})


def _first_error(grouped: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in grouped.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        return exc
    return grouped  # pragma: no cover - a group is never empty


def _report(outcomes: list[Outcome], manifest: Manifest, as_json: bool) -> None:
    counts = {s: sum(o.status == s for o in outcomes) for s in ("succeeded", "skipped",
                                                               "failed")}
    if as_json:
        typer.echo(json.dumps({
            "manifest": str(manifest.path), **counts,
            "lines": [{"line": o.line.number, "status": o.status, "task_id": o.task_id,
                       "files": o.files, "error": o.error} for o in outcomes]}, indent=2))
        return
    for outcome in outcomes:
        for path in outcome.files:
            typer.echo(path)
        if outcome.status == "failed":
            error = outcome.error or {}
            typer.echo(f"line {outcome.line.number} failed: "
                       f"{error.get('code') or ''} {error.get('message') or ''}".rstrip(),
                       err=True)
    typer.echo(f"{len(outcomes)} lines: {counts['succeeded']} done, {counts['skipped']} "
               f"already done, {counts['failed']} failed; manifest: {manifest.path}",
               err=True)
