"""Every operation of the client, written once as a generator of steps (see steps.py): create
and wait, read, cancel, list, follow a task's events, fetch an image. `Client` and
`AsyncClient` run them.

Waiting and events share one path. Where the server has `GET /v1/tasks/{id}/events` the
task's Server-Sent Events are read, and a stream that breaks is resumed with
`Last-Event-ID`. Where it has not (a 404 `unknown_url`: a server older than the task API,
or a dialect without events) the task is polled at `GET /v1/tasks/{id}`, pausing as the
server's `Retry-After` says, and the same events are made up from what changed between
polls. Either way the caller sees `task.queued`, `task.started`, `task.progress`, … and
exactly one terminal event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import orjson

from imagegate.client.dialects import CreateRequest, Dialect
from imagegate.client.errors import (
    APIConnectionError,
    APITimeoutError,
    InputError,
    TaskFailedError,
    TaskTimeoutError,
    UnexpectedResponseError,
    UnsupportedError,
    api_error,
    parse_retry_after,
)
from imagegate.client.events import merge, task_object, transitions
from imagegate.client.images import b64, decode_data_url, default_name, same_origin
from imagegate.client.models import ImageItem, Task, TaskEvent, TaskPage
from imagegate.client.retry import RetryPolicy
from imagegate.client.sse import RawEvent, SSEParser
from imagegate.client.steps import (
    Answer,
    Call,
    CloseStream,
    Emit,
    NextLine,
    Op,
    OpenStream,
    Send,
    Sleep,
    Step,
    TransportFailure,
)

T = TypeVar("T")
ProgressCallback = Callable[[Task], None]
EventCallback = Callable[[TaskEvent], None]
RECONNECT_SECONDS = 1.0


class Ops:
    def __init__(self, dialect: Dialect, base_url: str, *, retry: RetryPolicy,
                 poll_interval: float) -> None:
        self.dialect = dialect
        self.base_url = base_url
        self.retry = retry
        self.poll_interval = poll_interval
        # Routes this server turned out not to have ("events", "list"), so a client asks once.
        self.missing: set[str] = set()

    # ------------------------------------------------------------------ one request

    def request(self, call: Call, *, missing_ok: bool = False) -> Op[Answer]:
        """Send `call`, retrying what the retry policy allows; an error answer is raised as
        its typed error (with `missing_ok`, a route the server does not have is returned)."""
        attempt = 0
        while True:
            try:
                answer: Answer = yield Send(call)
            except TransportFailure as failure:
                delay = self.retry.after_failure(call.retry, failure, attempt)
                if delay is None:
                    raise self.connection_error(call, failure) from None
            else:
                if answer.status < 400 or (missing_ok and missing_route(answer)):
                    return answer
                delay = self.retry.after_answer(call.retry, answer, attempt)
                if delay is None:
                    raise api_error(answer.status, answer.content, answer.headers)
            attempt += 1
            yield Sleep(delay)

    def connection_error(self, call: Call, failure: TransportFailure) -> APIConnectionError:
        url = call.url if "://" in call.url else self.base_url
        cls = APITimeoutError if failure.timeout else APIConnectionError
        return cls(url, failure.detail)

    # ------------------------------------------------------------------ create

    def create(self, req: CreateRequest, *, wait: bool, timeout: float | None,
               on_progress: ProgressCallback | None,
               on_submitted: ProgressCallback | None = None) -> Op[Task]:
        if not wait and not self.dialect.tasks:
            raise self.dialect.refuse("tasks: it answers synchronously, so call with "
                                      "wait=True")
        if req.operation == "variation" and not self.dialect.can_vary:
            raise self.dialect.refuse("variations")
        answer = yield from self.request(self.dialect.create_call(req))
        task = self.dialect.read_created(answer)
        if on_submitted is not None:
            on_submitted(task)
        if wait and not task.done:
            first = parse_retry_after(answer.headers.get("retry-after"))
            task = yield from self.wait(task.id, timeout=timeout, on_progress=on_progress,
                                        first_delay=first)
        if wait and task.status != "succeeded":
            raise TaskFailedError(task)
        return task

    # ------------------------------------------------------------------ tasks

    def get(self, task_id: str) -> Op[Task]:
        self._need_tasks()
        answer = yield from self.request(self.dialect.task_call(task_id))
        return self.dialect.read_task(answer)

    def cancel(self, task_id: str) -> Op[Task]:
        self._need_tasks()
        if not self.dialect.can_cancel:
            raise self.dialect.refuse("cancel")
        answer = yield from self.request(self.dialect.cancel_call(task_id))
        return self.dialect.read_task(answer)

    def list(self, query: dict[str, str]) -> Op[TaskPage]:
        if not self.dialect.can_list:
            raise self.dialect.refuse("task list")
        if "list" not in self.missing:
            answer = yield from self.request(self.dialect.list_call(query), missing_ok=True)
            if answer.status < 400:
                return self.dialect.read_list(answer)
            self.missing.add("list")
        raise UnsupportedError(f"{self.base_url} has no task list (GET /v1/tasks answered "
                               "404 unknown_url): the server predates imagegate's task API")

    def wait(self, task_id: str, *, timeout: float | None,
             on_progress: ProgressCallback | None, first_delay: float | None = None,
             on_event: EventCallback | None = None) -> Op[Task]:
        """Until the task ends (succeeded, failed or cancelled); its last state."""
        def seen(event: TaskEvent) -> None:
            if on_event is not None:
                on_event(event)
            if on_progress is not None:
                on_progress(event.task)

        final: Task = yield from consume(
            self.events(task_id, timeout=timeout, first_delay=first_delay), seen)
        return final

    def events(self, task_id: str, *, timeout: float | None = None,
               first_delay: float | None = None) -> Op[Task]:
        """Emit the task's events until the terminal one; return the task's last state."""
        self._need_tasks()
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.dialect.has_events and "events" not in self.missing:
            streamed: Task | None = yield from self._stream(task_id, deadline, timeout)
            if streamed is not None:
                return streamed
        polled: Task = yield from self._poll(task_id, deadline, timeout, first_delay)
        return polled

    def _need_tasks(self) -> None:
        if not self.dialect.tasks:
            raise self.dialect.refuse("tasks: it answers synchronously")

    # ------------------------------------------------------------------ polling

    def _poll(self, task_id: str, deadline: float | None, timeout: float | None,
              first_delay: float | None) -> Op[Task]:
        if first_delay:
            yield Sleep(_until(deadline, first_delay))
        last: Task | None = None
        while True:
            answer = yield from self.request(self.dialect.task_call(task_id))
            task = self.dialect.read_task(answer)
            for event in transitions(last, task):
                yield Emit(event)
            last = task
            if task.done:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeoutError(task, timeout or 0)
            advice = parse_retry_after(answer.headers.get("retry-after"))
            yield Sleep(_until(deadline, self.poll_interval if advice is None else advice))

    # ------------------------------------------------------------------ the event stream

    def _stream(self, task_id: str, deadline: float | None,
                timeout: float | None) -> Op[Task | None]:
        """Follow `/events` to the terminal event; None when the server has no such route
        (or its streams keep ending with nothing in them): then the caller polls."""
        last = Task(id=task_id, status="queued")
        last_id: str | None = None
        attempt = empty = 0
        while True:
            call = self.dialect.events_call(task_id, last_id)
            try:
                answer: Answer = yield OpenStream(call)
            except TransportFailure as failure:
                delay = self.retry.after_failure("safe", failure, attempt)
                if delay is None:
                    raise self.connection_error(call, failure) from None
                attempt += 1
                yield Sleep(delay)
                continue
            if answer.status >= 400:
                if missing_route(answer):
                    self.missing.add("events")
                    return None
                delay = self.retry.after_answer("safe", answer, attempt)
                if delay is None:
                    raise api_error(answer.status, answer.content, answer.headers)
                attempt += 1
                yield Sleep(delay)
                continue
            attempt, got, parser = 0, 0, SSEParser()
            try:
                while True:
                    line: str | None = yield NextLine()
                    if line is None:
                        break
                    raw = parser.feed(line)
                    if raw is not None:
                        got += 1
                        last_id = raw.id if raw.id is not None else last_id
                        event = self._event(raw, last)
                        if event.terminal and event.task.result is None \
                                and event.task.error is None:
                            # A terminal event without the task object: read it.
                            yield CloseStream()
                            full: Task = yield from self.get(task_id)
                            event = replace(event, task=full)
                        last = event.task
                        yield Emit(event)
                        if event.terminal:
                            yield CloseStream()
                            return last
                    if deadline is not None and time.monotonic() >= deadline:
                        yield CloseStream()
                        raise TaskTimeoutError(last, timeout or 0)
            except TransportFailure:
                pass  # the stream broke: resume it below
            yield CloseStream()
            empty = 0 if got else empty + 1
            if empty > self.retry.max_retries:
                return None
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeoutError(last, timeout or 0)
            pause = parser.retry_ms / 1000 if parser.retry_ms is not None else RECONNECT_SECONDS
            yield Sleep(_until(deadline, pause))

    def _event(self, raw: RawEvent, last: Task) -> TaskEvent:
        try:
            data: Any = orjson.loads(raw.data)
        except orjson.JSONDecodeError:
            data = {"data": raw.data}
        if not isinstance(data, dict):
            data = {"data": data}
        kind = raw.event if raw.event != "message" else str(data.get("type") or "task.progress")
        found = task_object(data)
        task = self.dialect.task_from(found) if found is not None else merge(last, kind, data)
        return TaskEvent(type=kind, task=task, id=raw.id, data=data)

    # ------------------------------------------------------------------ images

    def fetch(self, item: ImageItem) -> Op[tuple[bytes, str | None]]:
        """The bytes of one result image and their Content-Type (None if not told), from
        `b64_json`, a `data:` URL, a relative `/p/img/…` path or an absolute URL."""
        if item.b64_json:
            return b64(item.b64_json), None
        if not item.url:
            raise UnexpectedResponseError(f"image {item.index} has neither url nor b64_json")
        if item.url.startswith("data:"):
            return decode_data_url(item.url)
        url = urljoin(self.base_url + "/", item.url)
        # The key goes only to the server it belongs to, never to a CDN or another host.
        answer = yield from self.request(Call("GET", url, auth=same_origin(url, self.base_url)))
        return answer.content, answer.headers.get("content-type")

    def save(self, item: ImageItem, path: str | os.PathLike[str], *,
             into: bool = False) -> Op[Path]:
        """Write the image to `path`, or into it (named `<task id>_<index>.<ext>`) when
        `into`, when it is a directory, or when it ends with a slash."""
        data, mime = yield from self.fetch(item)
        target = Path(path)
        if into or target.is_dir() or str(path).endswith(("/", os.sep)):
            target = target / default_name(item, data, mime)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            partial.write_bytes(data)
            partial.replace(target)  # a file under its name is whole: a kill leaves a .part
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
        return target


# ---------------------------------------------------------------------- helpers


def consume(op: Op[T], on_emit: Callable[[TaskEvent], None]) -> Generator[Step, Any, T]:
    """Run `op` inside another operation, handing its events to `on_emit` instead of the
    caller; every other step goes to the driver as it is."""
    value: Any = None
    failure: TransportFailure | None = None
    while True:
        try:
            step = op.throw(failure) if failure is not None else op.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, failure = None, None
        if isinstance(step, Emit):
            on_emit(step.event)
            continue
        try:
            value = yield step
        except TransportFailure as exc:
            failure = exc
        except GeneratorExit:
            op.close()
            raise


def missing_route(answer: Answer) -> bool:
    """A 404 for a path the server has no route for (imagegate's `unknown_url`, or any 404 that
    is not one of our error bodies), or a 405: the server predates the route."""
    if answer.status == 405:
        return True
    if answer.status != 404:
        return False
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return True
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return True
    return error.get("code") in ("unknown_url", None)


def _until(deadline: float | None, seconds: float) -> float:
    if deadline is None:
        return seconds
    return max(0.0, min(seconds, deadline - time.monotonic()))
