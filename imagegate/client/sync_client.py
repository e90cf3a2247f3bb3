"""`Client`: the synchronous client, on `httpx.Client`.

    with Client("http://127.0.0.1:8000", "ig_…") as client:
        task = client.generate("a lighthouse at dusk", size="16:9", resolution="2k")
        paths = client.download_all(task, "images/")

What each method does is written once in ops.py; this module only runs those steps with
blocking I/O (the `AsyncClient` runs the same steps with asyncio).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from imagegate.client import http
from imagegate.client.build import create_request, list_query
from imagegate.client.dialects import dialect_named
from imagegate.client.inputs import ImageInput
from imagegate.client.models import ImageItem, Task, TaskEvent, TaskPage
from imagegate.client.ops import EventCallback, Ops, ProgressCallback
from imagegate.client.retry import RetryPolicy
from imagegate.client.settings import resolve
from imagegate.client.steps import (
    Answer,
    CloseStream,
    Emit,
    NextLine,
    Op,
    OpenStream,
    Send,
    Sleep,
    TransportFailure,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    value: T


class Client:
    """A synchronous imagegate client (or a client of a seed service, by `dialect`).

    `base_url` and `api_key` default to `$IMAGEGATE_URL` (else http://127.0.0.1:8000) and
    `$IMAGEGATE_API_KEY`. `dialect`: "imagegate" (default), "dimilinks", "apimart" or
    "openai". `timeout` bounds each HTTP request (not a wait: see `timeout=` on the waiting
    methods); `max_retries` how often a failed request that is safe to repeat is tried again;
    `poll_interval` the pause between polls when the server gives no `Retry-After`."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 dialect: str = "imagegate", timeout: float = 60.0, max_retries: int = 2,
                 poll_interval: float = 1.0, http_client: httpx.Client | None = None) -> None:
        url, key = resolve(base_url, api_key)
        self.base_url = http.normalize_base_url(url)
        self.api_key = key
        self.dialect = dialect_named(dialect)
        self.timeout = timeout
        self._ops = Ops(self.dialect, self.base_url,
                        retry=RetryPolicy(max_retries=max_retries), poll_interval=poll_interval)
        self._own_http = http_client is None
        self._http = http_client or httpx.Client(follow_redirects=True)
        self.tasks = Tasks(self)

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    # ------------------------------------------------------------------ creating images

    def generate(self, prompt: str, *, model: str | None = None, size: str | None = None,
                 resolution: str | None = None, n: int | None = None,
                 output_format: str | None = None, quality: str | None = None,
                 background: str | None = None, extra: dict[str, Any] | None = None,
                 wait: bool = True, timeout: float | None = None,
                 on_progress: ProgressCallback | None = None,
                 on_submitted: ProgressCallback | None = None,
                 idempotency_key: str | None = None) -> Task:
        """Create images from a prompt. With `wait` (the default) return the succeeded task
        (raising `TaskFailedError` if it failed); without, the queued task at once.
        `extra` adds any other field of the service (`output_compression`, `webhook_url`, …)."""
        req = create_request("generate", fields={
            "prompt": prompt, "model": model, "size": size, "resolution": resolution, "n": n,
            "output_format": output_format, "quality": quality, "background": background,
        }, extra=extra, idempotency_key=idempotency_key)
        return self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                          on_progress=on_progress, on_submitted=on_submitted))

    def edit(self, prompt: str, image: ImageInput | Sequence[ImageInput], *,
             mask: ImageInput | None = None, model: str | None = None,
             size: str | None = None, resolution: str | None = None, n: int | None = None,
             output_format: str | None = None, quality: str | None = None,
             background: str | None = None, extra: dict[str, Any] | None = None,
             wait: bool = True, timeout: float | None = None,
             on_progress: ProgressCallback | None = None,
             on_submitted: ProgressCallback | None = None,
             idempotency_key: str | None = None) -> Task:
        """Create images from a prompt and input images: each a path, bytes, an open binary
        file, or a URL (http(s) or `data:`); `mask` the same."""
        req = create_request("edit", fields={
            "prompt": prompt, "model": model, "size": size, "resolution": resolution, "n": n,
            "output_format": output_format, "quality": quality, "background": background,
        }, extra=extra, images=image, mask=mask, idempotency_key=idempotency_key)
        return self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                          on_progress=on_progress, on_submitted=on_submitted))

    def variations(self, image: ImageInput, *, model: str | None = None,
                   n: int | None = None, size: str | None = None,
                   extra: dict[str, Any] | None = None, wait: bool = True,
                   timeout: float | None = None, on_progress: ProgressCallback | None = None,
                   on_submitted: ProgressCallback | None = None,
                   idempotency_key: str | None = None) -> Task:
        """Variations of one image (no prompt; `dall-e-2`)."""
        req = create_request("variation", fields={"model": model, "n": n, "size": size},
                             extra=extra, images=[image], idempotency_key=idempotency_key)
        return self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                          on_progress=on_progress, on_submitted=on_submitted))

    # ------------------------------------------------------------------ result images

    def download(self, item: ImageItem, path: str | os.PathLike[str]) -> Path:
        """Save one result image to `path` (a file, or a directory: then it is named
        `<task id>_<index>.<ext>`). Takes every URL form: absolute, relative `/p/img/…`,
        `data:`, and `b64_json`."""
        return self._run(self._ops.save(item, path))

    def download_all(self, task: Task, directory: str | os.PathLike[str]) -> list[Path]:
        """Save every image of a succeeded task into `directory`."""
        return [self._run(self._ops.save(item, directory, into=True)) for item in task.images]

    # ------------------------------------------------------------------ running steps

    def _run(self, op: Op[T]) -> T:
        steps = self._drive(op)
        try:
            for item in steps:
                if isinstance(item, Done):
                    value: T = item.value
                    return value
        finally:
            steps.close()
        raise RuntimeError("an operation ended without a result")  # pragma: no cover

    def _iterate(self, op: Op[Any]) -> Iterator[TaskEvent]:
        steps = self._drive(op)
        try:
            for item in steps:
                if isinstance(item, Done):
                    return
                yield item
        finally:
            steps.close()

    def _drive(self, op: Op[Any]) -> Generator[TaskEvent | Done[Any], None, None]:
        stream: httpx.Response | None = None
        lines: Iterator[str] | None = None
        value: Any = None
        failed: TransportFailure | None = None
        try:
            while True:
                try:
                    step = op.throw(failed) if failed is not None else op.send(value)
                except StopIteration as stop:
                    yield Done(stop.value)
                    return
                value, failed = None, None
                try:
                    if isinstance(step, Send):
                        value = self._send(step)
                    elif isinstance(step, Sleep):
                        time.sleep(step.seconds)
                    elif isinstance(step, Emit):
                        yield step.event
                    elif isinstance(step, OpenStream):
                        stream, value = self._open(step)
                        lines = stream.iter_lines() if stream is not None else None
                    elif isinstance(step, NextLine):
                        value = next(lines, None) if lines is not None else None
                    elif isinstance(step, CloseStream) and stream is not None:
                        stream.close()
                        stream, lines = None, None
                except httpx.HTTPError as exc:
                    failed = http.failure(exc)
        finally:
            if stream is not None:
                stream.close()
            op.close()

    def _request(self, step: Send | OpenStream) -> httpx.Request:
        return http.build(self._http, step.call, base_url=self.base_url, api_key=self.api_key,
                          timeout=self.timeout)

    def _send(self, step: Send) -> Answer:
        response = self._http.send(self._request(step))
        return http.answer(response, response.content)

    def _open(self, step: OpenStream) -> tuple[httpx.Response | None, Answer]:
        response = self._http.send(self._request(step), stream=True)
        if response.status_code >= 400:
            try:
                content = response.read()
            finally:
                response.close()
            return None, http.answer(response, content)
        return response, http.answer(response, b"")


class Tasks:
    """`client.tasks`: read, list, wait for, cancel and follow tasks."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def get(self, task_id: str) -> Task:
        return self._client._run(self._client._ops.get(task_id))

    def list(self, *, status: str | None = None, model: str | None = None,
             created_after: int | None = None, created_before: int | None = None,
             limit: int | None = None, after: str | None = None) -> TaskPage:
        """The key's own tasks, newest first (`GET /v1/tasks`); `UnsupportedError` from a
        server that predates the task list."""
        query = list_query(status=status, model=model, created_after=created_after,
                           created_before=created_before, limit=limit, after=after)
        return self._client._run(self._client._ops.list(query))

    def wait(self, task_id: str, *, timeout: float | None = None,
             on_progress: ProgressCallback | None = None,
             on_event: EventCallback | None = None) -> Task:
        """Until the task has ended; its last state, whatever the status (no error for a
        failed task: it is an answer). `TaskTimeoutError` after `timeout` seconds."""
        return self._client._run(self._client._ops.wait(
            task_id, timeout=timeout, on_progress=on_progress, on_event=on_event))

    def cancel(self, task_id: str) -> Task:
        return self._client._run(self._client._ops.cancel(task_id))

    def events(self, task_id: str, *, timeout: float | None = None) -> Iterator[TaskEvent]:
        """The task's events up to and including the terminal one (made up from polling
        where the server has no event stream)."""
        return self._client._iterate(self._client._ops.events(task_id, timeout=timeout))
