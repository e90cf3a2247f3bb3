"""`AsyncClient`: the asynchronous client, on `httpx.AsyncClient`.

    async with AsyncClient("http://127.0.0.1:8000", "ig_…") as client:
        task = await client.generate("a lighthouse at dusk", wait=False)
        async for event in client.tasks.events(task.id):
            print(event.type, event.task.progress)

The same methods as `Client` (sync_client.py), awaited; the same steps from ops.py, run with
asyncio.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

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
from imagegate.client.sync_client import Done

T = TypeVar("T")


class AsyncClient:
    """The asynchronous twin of `Client`: the same arguments, the same methods, awaited."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 dialect: str = "imagegate", timeout: float = 60.0, max_retries: int = 2,
                 poll_interval: float = 1.0,
                 http_client: httpx.AsyncClient | None = None) -> None:
        url, key = resolve(base_url, api_key)
        self.base_url = http.normalize_base_url(url)
        self.api_key = key
        self.dialect = dialect_named(dialect)
        self.timeout = timeout
        self._ops = Ops(self.dialect, self.base_url,
                        retry=RetryPolicy(max_retries=max_retries), poll_interval=poll_interval)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(follow_redirects=True)
        self.tasks = AsyncTasks(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ creating images

    async def generate(self, prompt: str, *, model: str | None = None,
                       size: str | None = None, resolution: str | None = None,
                       n: int | None = None, output_format: str | None = None,
                       quality: str | None = None, background: str | None = None,
                       extra: dict[str, Any] | None = None, wait: bool = True,
                       timeout: float | None = None,
                       on_progress: ProgressCallback | None = None,
                       on_submitted: ProgressCallback | None = None,
                       idempotency_key: str | None = None) -> Task:
        req = create_request("generate", fields={
            "prompt": prompt, "model": model, "size": size, "resolution": resolution, "n": n,
            "output_format": output_format, "quality": quality, "background": background,
        }, extra=extra, idempotency_key=idempotency_key)
        return await self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                                on_progress=on_progress, on_submitted=on_submitted))

    async def edit(self, prompt: str, image: ImageInput | Sequence[ImageInput], *,
                   mask: ImageInput | None = None, model: str | None = None,
                   size: str | None = None, resolution: str | None = None,
                   n: int | None = None, output_format: str | None = None,
                   quality: str | None = None, background: str | None = None,
                   extra: dict[str, Any] | None = None, wait: bool = True,
                   timeout: float | None = None, on_progress: ProgressCallback | None = None,
                   on_submitted: ProgressCallback | None = None,
                   idempotency_key: str | None = None) -> Task:
        req = create_request("edit", fields={
            "prompt": prompt, "model": model, "size": size, "resolution": resolution, "n": n,
            "output_format": output_format, "quality": quality, "background": background,
        }, extra=extra, images=image, mask=mask, idempotency_key=idempotency_key)
        return await self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                                on_progress=on_progress, on_submitted=on_submitted))

    async def variations(self, image: ImageInput, *, model: str | None = None,
                         n: int | None = None, size: str | None = None,
                         extra: dict[str, Any] | None = None, wait: bool = True,
                         timeout: float | None = None,
                         on_progress: ProgressCallback | None = None,
                         on_submitted: ProgressCallback | None = None,
                         idempotency_key: str | None = None) -> Task:
        req = create_request("variation", fields={"model": model, "n": n, "size": size},
                             extra=extra, images=[image], idempotency_key=idempotency_key)
        return await self._run(self._ops.create(req, wait=wait, timeout=timeout,
                                                on_progress=on_progress, on_submitted=on_submitted))

    # ------------------------------------------------------------------ result images

    async def download(self, item: ImageItem, path: str | os.PathLike[str]) -> Path:
        return await self._run(self._ops.save(item, path))

    async def download_all(self, task: Task, directory: str | os.PathLike[str]) -> list[Path]:
        return [await self._run(self._ops.save(item, directory, into=True))
                for item in task.images]

    # ------------------------------------------------------------------ running steps

    async def _run(self, op: Op[T]) -> T:
        steps = self._drive(op)
        try:
            async for item in steps:
                if isinstance(item, Done):
                    value: T = item.value
                    return value
        finally:
            await steps.aclose()
        raise RuntimeError("an operation ended without a result")  # pragma: no cover

    async def _iterate(self, op: Op[Any]) -> AsyncGenerator[TaskEvent, None]:
        steps = self._drive(op)
        try:
            async for item in steps:
                if isinstance(item, Done):
                    return
                yield item
        finally:
            await steps.aclose()

    async def _drive(self, op: Op[Any]) -> AsyncGenerator[TaskEvent | Done[Any], None]:
        stream: httpx.Response | None = None
        lines: AsyncIterator[str] | None = None
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
                        value = await self._send(step)
                    elif isinstance(step, Sleep):
                        await asyncio.sleep(step.seconds)
                    elif isinstance(step, Emit):
                        yield step.event
                    elif isinstance(step, OpenStream):
                        stream, value = await self._open(step)
                        lines = stream.aiter_lines() if stream is not None else None
                    elif isinstance(step, NextLine):
                        value = await anext(lines, None) if lines is not None else None
                    elif isinstance(step, CloseStream) and stream is not None:
                        await stream.aclose()
                        stream, lines = None, None
                except httpx.HTTPError as exc:
                    failed = http.failure(exc)
        finally:
            if stream is not None:
                await stream.aclose()
            op.close()

    def _request(self, step: Send | OpenStream) -> httpx.Request:
        return http.build(self._http, step.call, base_url=self.base_url, api_key=self.api_key,
                          timeout=self.timeout)

    async def _send(self, step: Send) -> Answer:
        response = await self._http.send(self._request(step))
        return http.answer(response, response.content)

    async def _open(self, step: OpenStream) -> tuple[httpx.Response | None, Answer]:
        response = await self._http.send(self._request(step), stream=True)
        if response.status_code >= 400:
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return None, http.answer(response, content)
        return response, http.answer(response, b"")


class AsyncTasks:
    """`client.tasks` of the `AsyncClient`: the same methods as `Tasks`, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def get(self, task_id: str) -> Task:
        return await self._client._run(self._client._ops.get(task_id))

    async def list(self, *, status: str | None = None, model: str | None = None,
                   created_after: int | None = None, created_before: int | None = None,
                   limit: int | None = None, after: str | None = None) -> TaskPage:
        query = list_query(status=status, model=model, created_after=created_after,
                           created_before=created_before, limit=limit, after=after)
        return await self._client._run(self._client._ops.list(query))

    async def wait(self, task_id: str, *, timeout: float | None = None,
                   on_progress: ProgressCallback | None = None,
                   on_event: EventCallback | None = None) -> Task:
        return await self._client._run(self._client._ops.wait(
            task_id, timeout=timeout, on_progress=on_progress, on_event=on_event))

    async def cancel(self, task_id: str) -> Task:
        return await self._client._run(self._client._ops.cancel(task_id))

    def events(self, task_id: str, *, timeout: float | None = None
               ) -> AsyncIterator[TaskEvent]:
        return self._client._iterate(self._client._ops.events(task_id, timeout=timeout))
