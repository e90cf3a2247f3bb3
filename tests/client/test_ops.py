"""The client's logic on its own, step by step (ops.py is written as generators of steps, so
a test can play the driver): what is retried and after how long, `Retry-After` while
polling, the event stream resumed with `Last-Event-ID`, and the fall-backs for a server
without `/events` or `GET /v1/tasks`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imagegate.client import (
    APIConnectionError,
    NotFoundError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    UnsupportedError,
)
from imagegate.client.build import create_request
from imagegate.client.dialects import dialect_named
from imagegate.client.models import ImageItem
from imagegate.client.ops import Ops
from imagegate.client.retry import RetryPolicy
from imagegate.client.steps import (
    Answer,
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

BASE = "http://gw.test"
UNKNOWN_URL = {"error": {"message": "Unknown path", "type": "invalid_request_error",
                         "param": None, "code": "unknown_url"}}


def ok(body: Any, status: int = 200, **headers: str) -> Answer:
    return Answer(status, {k.lower().replace("_", "-"): v for k, v in headers.items()},
                  json.dumps(body).encode() if body is not None else b"", BASE)


def task(status: str, progress: int = 0, **more: Any) -> dict[str, Any]:
    return {"id": "img_1", "task_id": "img_1", "object": "image.task", "status": status,
            "progress": progress, "result": None, "error": None, **more}


def done(**more: Any) -> dict[str, Any]:
    return task("succeeded", 100, result={"data": [{"url": "/p/img/img_1/0?sig=x"}],
                                          "output_format": "png"}, **more)


class Script:
    """Plays the driver: each Send / OpenStream / NextLine takes the next scripted item (an
    Answer, a line, None for the end of a stream, or a TransportFailure to throw)."""

    def __init__(self, *items: Any) -> None:
        self.items = list(items)
        self.steps: list[Step] = []

    def run(self, op: Op[Any]) -> Any:
        value: Any = None
        failure: TransportFailure | None = None
        while True:
            try:
                step = op.throw(failure) if failure is not None else op.send(value)
            except StopIteration as stop:
                assert not self.items, f"unused script items: {self.items}"
                return stop.value
            self.steps.append(step)
            value, failure = None, None
            if isinstance(step, Send | OpenStream | NextLine):
                item = self.items.pop(0)
                if isinstance(item, TransportFailure):
                    failure = item
                else:
                    value = item

    def of(self, kind: type[Any]) -> list[Any]:
        return [s for s in self.steps if isinstance(s, kind)]

    def events(self) -> list[str]:
        return [s.event.type for s in self.of(Emit)]


def ops(dialect: str = "imagegate", **kwargs: Any) -> Ops:
    return Ops(dialect_named(dialect), BASE, retry=RetryPolicy(**kwargs), poll_interval=5.0)


def sse(*events: tuple[str, str, dict[str, Any]]) -> list[str]:
    lines = []
    for event_id, name, data in events:
        lines += [f"id: {event_id}", f"event: {name}", f"data: {json.dumps(data)}", ""]
    return lines


# ---------------------------------------------------------------------- creating and polling


def test_create_then_poll_honouring_retry_after() -> None:
    script = Script(
        ok({"created": 1, "task_id": "img_1", "data": []}, 202, Retry_After="2"),
        ok(UNKNOWN_URL, 404),  # no /events on this server
        ok(task("queued", queue_position=3)),
        ok(task("in_progress", 40), Retry_After="1"),
        ok(done()),
    )
    op = ops()
    req = create_request("generate", fields={"prompt": "x"}, extra=None)
    result = script.run(op.create(req, wait=True, timeout=None, on_progress=None))
    assert result.status == "succeeded" and result.images[0].url == "/p/img/img_1/0?sig=x"
    assert [s.seconds for s in script.of(Sleep)] == [2.0, 5.0, 1.0]  # Retry-After, else 5
    create = script.of(Send)[0].call
    assert create.params == {"async": "true"} and create.retry == "create_keyed"
    assert create.headers["Idempotency-Key"] == req.idempotency_key
    assert "events" in op.missing  # asked once per client
    again = Script(ok(done()))
    assert again.run(op.wait("img_1", timeout=None, on_progress=None)).status == "succeeded"
    assert not again.of(OpenStream)


def test_polled_events_are_made_up_from_what_changed() -> None:
    script = Script(ok(task("queued")), ok(task("queued")), ok(task("in_progress", 20)),
                    ok(task("in_progress", 60)), ok(task("failed", 60, error={
                        "code": "upstream_error", "message": "boom"})))
    final = script.run(ops("dimilinks").events("img_1"))
    assert script.events() == ["task.queued", "task.started", "task.progress", "task.failed"]
    assert final.status == "failed" and final.error["code"] == "upstream_error"


def test_a_failed_task_raises_when_waited_for_by_create() -> None:
    script = Script(ok({"task_id": "img_1", "data": []}, 202), ok(UNKNOWN_URL, 404),
                    ok(task("failed", error={"code": "upstream_error", "message": "boom"})))
    req = create_request("generate", fields={"prompt": "x"}, extra=None)
    with pytest.raises(TaskFailedError, match=r"task img_1 failed \(upstream_error\): boom"):
        script.run(ops().create(req, wait=True, timeout=None, on_progress=None))


def test_a_wait_times_out_but_the_task_runs_on() -> None:
    script = Script(ok(task("in_progress", 10)))
    with pytest.raises(TaskTimeoutError, match="task img_1 still in_progress after 0s"):
        script.run(ops("dimilinks").wait("img_1", timeout=0, on_progress=None))


# ---------------------------------------------------------------------- retries


def test_reads_are_retried_after_transient_failures() -> None:
    script = Script(ok(None, 503, Retry_After="0.5"),
                    TransportFailure("reset", sent=True), ok(task("queued")))
    assert script.run(ops().get("img_1")).status == "queued"
    assert script.of(Sleep)[0].seconds == 0.5 and len(script.of(Send)) == 3


def test_keyed_creates_are_retried_with_the_same_key() -> None:
    script = Script(ok({"error": {"message": "x", "code": "internal_error"}}, 500),
                    ok({"task_id": "img_1", "data": []}, 202))
    req = create_request("generate", fields={"prompt": "x"}, extra=None)
    script.run(ops().create(req, wait=False, timeout=None, on_progress=None))
    keys = {s.call.headers["Idempotency-Key"] for s in script.of(Send)}
    assert len(script.of(Send)) == 2 and keys == {req.idempotency_key}


@pytest.mark.parametrize("dialect", ["dimilinks", "apimart", "openai"])
def test_other_creates_are_never_repeated_unless_they_surely_did_not_happen(
        dialect: str) -> None:
    req = create_request("generate", fields={"prompt": "x"}, extra=None)
    op = ops(dialect)
    script = Script(ok(None, 502))
    with pytest.raises(ServerError):
        script.run(op.create(req, wait=dialect == "openai", timeout=None, on_progress=None))
    assert len(script.of(Send)) == 1
    script = Script(TransportFailure("reset by peer", sent=True))
    with pytest.raises(APIConnectionError, match=r"cannot reach http://gw\.test: reset by peer"):
        script.run(op.create(req, wait=dialect == "openai", timeout=None, on_progress=None))
    created = {"task_id": "img_1", "data": [{"b64_json": "AA=="}]} if dialect == "openai" \
        else {"code": 200, "data": [{"status": "submitted", "task_id": "t1"}]} \
        if dialect == "apimart" else {"task_id": "img_1", "data": []}
    script = Script(TransportFailure("refused", sent=False), ok(None, 429, Retry_After="1"),
                    ok(created))
    script.run(op.create(req, wait=dialect == "openai", timeout=None, on_progress=None))
    assert len(script.of(Send)) == 3


# ---------------------------------------------------------------------- the event stream


def test_events_are_followed_and_resumed_with_last_event_id() -> None:
    script = Script(
        ok(None),  # the stream opens
        *sse(("1", "task.queued", {"status": "queued", "queue_position": 2}),
             ("2", "task.started", {})),
        ": keep-alive", "",
        TransportFailure("connection reset", sent=True),  # it breaks mid-stream
        ok(None),  # reopened with Last-Event-ID: 2
        *sse(("3", "task.progress", {"progress": 50, "estimated_seconds": 30}),
             ("4", "task.partial_image", {"b64_json": "aGVsbG8=", "partial_image_index": 0}),
             ("5", "task.succeeded", done())),
    )
    seen: list[Any] = []
    final = script.run(ops().wait("img_1", timeout=None, on_progress=None,
                                  on_event=seen.append))
    assert [e.type for e in seen] == ["task.queued", "task.started", "task.progress",
                                      "task.partial_image", "task.succeeded"]
    assert seen[0].task.queue_position == 2 and seen[1].task.status == "in_progress"
    assert (seen[2].task.progress, seen[2].task.estimated_seconds) == (50, 30.0)
    assert seen[3].partial_image == b"hello" and seen[3].id == "4"
    opened = script.of(OpenStream)
    assert "Last-Event-ID" not in opened[0].call.headers
    assert opened[1].call.headers["Last-Event-ID"] == "2"
    assert opened[0].call.url == "/v1/tasks/img_1/events"
    assert final.status == "succeeded" and final.images[0].index == 0
    assert isinstance(script.steps[-1], CloseStream)


def test_a_terminal_event_without_the_task_reads_it() -> None:
    script = Script(ok(None), *sse(("9", "task.succeeded", {"id": "evt"})), ok(done()))
    final = script.run(ops().events("img_1"))
    assert final.result is not None and script.of(Send)[0].call.url == "/v1/tasks/img_1"


def test_events_of_an_unknown_task_are_a_not_found() -> None:
    missing = {"error": {"message": "No task", "type": "invalid_request_error",
                         "param": "task_id", "code": "task_not_found"}}
    with pytest.raises(NotFoundError, match="task_not_found"):
        Script(ok(missing, 404)).run(ops().events("img_x"))


def test_streams_that_keep_ending_empty_fall_back_to_polling() -> None:
    script = Script(ok(None), None, ok(None), None, ok(None), None, ok(done()))
    assert script.run(ops(max_retries=2).events("img_1")).status == "succeeded"
    assert len(script.of(OpenStream)) == 3 and script.events() == ["task.succeeded"]


# ---------------------------------------------------------------------- lists and images


def test_a_list_reads_a_page_and_a_missing_route_is_unsupported() -> None:
    page = {"object": "list", "data": [task("queued"), done()], "has_more": True,
            "last_id": "img_1"}
    op = ops()
    result = Script(ok(page)).run(op.list({"limit": "2"}))
    assert [t.status for t in result.data] == ["queued", "succeeded"] and result.has_more
    with pytest.raises(UnsupportedError, match="has no task list"):
        Script(ok(UNKNOWN_URL, 404)).run(op.list({}))
    with pytest.raises(UnsupportedError):  # remembered: not asked again
        Script().run(op.list({}))
    with pytest.raises(UnsupportedError, match="the dimilinks dialect has no task list"):
        Script().run(ops("dimilinks").list({}))


def test_images_in_every_form() -> None:
    op = ops()
    assert Script().run(op.fetch(ImageItem(0, b64_json="aGk="))) == (b"hi", None)
    assert Script().run(op.fetch(ImageItem(0, url="data:image/png;base64,aGk="))) == (
        b"hi", "image/png")
    script = Script(Answer(200, {"content-type": "image/png"}, b"PNG", BASE))
    assert script.run(op.fetch(ImageItem(0, url="/p/img/img_1/0?sig=x"))) == (b"PNG",
                                                                              "image/png")
    call = script.of(Send)[0].call
    assert call.url == "http://gw.test/p/img/img_1/0?sig=x" and call.auth
    script = Script(Answer(200, {}, b"PNG", BASE))
    script.run(op.fetch(ImageItem(0, url="https://cdn.example/a.png")))
    assert not script.of(Send)[0].call.auth  # the key never leaves for another host
