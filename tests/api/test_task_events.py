"""`GET /v1/tasks/{id}/events` over real HTTP (uvicorn on loopback): the whole sequence on the
sandbox, resuming with Last-Event-ID, a client arriving after the end, another key's 404, and
events crossing processes on the Redis bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagegate.config import Settings
from imagegate.tasks import timeline
from tests.support.live import Event, Live, live_app, read_events
from tests.support.redis import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio

TERMINAL = {"task.succeeded", "task.failed", "task.cancelled"}


def settings(tmp_path: Path, **more: Any) -> Settings:
    return Settings(data_dir=tmp_path, **{"blob_store": "memory", "poll_interval_seconds": 0.2,
                                          "sandbox_latency": 1.2, "sandbox_progress_steps": 4,
                                          **more})


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with live_app(settings(tmp_path, stream_keepalive_seconds=0.3)) as app:
        yield app


async def submit(http: httpx.AsyncClient, live: Live, **body: Any) -> str:
    r = await http.post(f"{live.url}/v1/images/generations", headers=live.auth(),
                        json={"prompt": "events", "wait_for_result": False, **body})
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    return task_id


async def follow(http: httpx.AsyncClient, live: Live, task_id: str,
                 headers: dict[str, str] | None = None, stop_after: str | None = None,
                 params: dict[str, str] | None = None) -> tuple[list[Event], list[str]]:
    """The events (and comments) of one connection, up to its end or `stop_after`."""
    events: list[Event] = []
    comments: list[str] = []
    async with http.stream("GET", f"{live.url}/v1/tasks/{task_id}/events", params=params,
                           headers={**live.auth(), **(headers or {})}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for item in read_events(r):
            if isinstance(item, str):
                comments.append(item)
                continue
            events.append(item)
            if item.name == stop_after:
                break
    return events, comments


def check_shape(events: list[Event], task_id: str) -> None:
    ids = [int(e.id or "0") for e in events]
    assert ids == sorted(set(ids)), f"ids must grow strictly: {ids}"
    for e in events:
        assert e.data["type"] == e.name and e.data["task_id"] == task_id
        if e.name == "task.partial_image":
            assert {"partial_image_index", "b64_json", "output_format"} <= set(e.data)
            assert "task" not in e.data
        else:
            assert e.data["task"]["id"] == task_id
        if e.name == "task.progress":
            assert e.data["progress"] == e.data["task"]["progress"] > 0


async def test_full_sequence_on_the_sandbox(live: Live) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live, partial_images=2)
        events, comments = await follow(http, live, task_id)
    names = [e.name for e in events]
    assert names[0] == "task.queued" and names[-1] == "task.succeeded"
    assert "task.started" in names and "task.progress" in names
    assert names.count("task.partial_image") == 2
    assert names.index("task.started") < names.index("task.partial_image")
    check_shape(events, task_id)
    assert events[-1].data["task"]["status"] == "succeeded"
    assert events[-1].data["task"]["result"]["data"]
    assert int(events[-1].id or "0") == timeline.TERMINAL_ID
    # The task as a poll shows it, estimate included (the catalog's typical time at first).
    running = next(e for e in events if e.name == "task.started").data["task"]
    assert running["estimated_seconds"] is not None and running["attempts"] == 1
    assert "keep-alive" in comments  # the sandbox is quiet for longer than the keep-alive


async def test_resume_with_last_event_id_repeats_nothing(live: Live) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live)
        first, _ = await follow(http, live, task_id, stop_after="task.progress")
        assert first[-1].name == "task.progress"
        rest, _ = await follow(http, live, task_id, headers={"Last-Event-ID": first[-1].id or ""})
    assert rest, "the resumed stream must go on to the end"
    assert rest[-1].name == "task.succeeded"
    seen = {e.id for e in first}
    assert not seen & {e.id for e in rest}
    assert all(int(e.id or "0") > int(first[-1].id or "0") for e in rest)
    assert "task.queued" not in [e.name for e in rest]
    check_shape(first + rest, task_id)


async def test_query_parameter_resumes_too(live: Live) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live)
        first, _ = await follow(http, live, task_id, stop_after="task.started")
        rest, _ = await follow(http, live, task_id, params={"last_event_id": first[-1].id or ""})
    assert rest[0].name != "task.started"
    assert rest[-1].name == "task.succeeded"


async def test_after_the_end_the_terminal_event_comes_at_once(live: Live) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live)
        await follow(http, live, task_id)  # to the end
        events, _ = await follow(http, live, task_id)
        again, _ = await follow(http, live, task_id, headers={"Last-Event-ID": "17"})
    assert [e.name for e in events] == ["task.succeeded"]
    assert [e.name for e in again] == ["task.succeeded"]
    assert events[0].data["task"]["status"] == "succeeded"


async def test_a_cancel_ends_the_stream_cancelled(live: Live) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live)
        started, _ = await follow(http, live, task_id, stop_after="task.started")
        cancel = asyncio.create_task(http.post(f"{live.url}/v1/tasks/{task_id}/cancel",
                                               headers=live.auth()))
        rest, _ = await follow(http, live, task_id, headers={"Last-Event-ID": started[-1].id or ""})
        assert (await cancel).status_code == 200
    assert rest[-1].name == "task.cancelled"
    assert rest[-1].data["task"]["status"] == "cancelled"


async def test_another_key_gets_404_before_any_stream(live: Live) -> None:
    other, _ = await live.backends.keys.create("other")
    async with httpx.AsyncClient(timeout=30) as http:
        task_id = await submit(http, live)
        r = await http.get(f"{live.url}/v1/tasks/{task_id}/events", headers=live.auth(other))
        missing = await http.get(f"{live.url}/v1/tasks/img_nope/events", headers=live.auth())
    for resp in (r, missing):
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["code"] == "task_not_found"


async def test_events_cross_processes_on_the_redis_bus(tmp_path: Path) -> None:
    """The API process runs no worker; a second set of backends (another bus instance, as
    another process would have) runs the task and publishes its events through Redis."""
    await require_redis(REDIS_URL)
    shared = settings(tmp_path, redis_url=REDIS_URL, stream_keepalive_seconds=5,
                      blob_store="local",
                      # Long enough that only the bus, not the safety re-read, can bring
                      # the partial images (which are never in the row).
                      poll_interval_seconds=3.0)
    from imagegate.wiring import build_backends

    async with live_app(shared, with_worker=False) as live:
        worker = await build_backends(shared, with_worker=True)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                task_id = await submit(http, live, partial_images=2)
                events, _ = await follow(http, live, task_id)
        finally:
            await worker.aclose()
    names = [e.name for e in events]
    assert names[0] == "task.queued" and names[-1] == "task.succeeded"
    assert names.count("task.partial_image") == 2
    check_shape(events, task_id)


async def test_partial_images_from_a_streaming_openai_upstream(tmp_path: Path) -> None:
    """An `openai` channel on the streaming fake: its partial images reach an /events client
    and a `stream: true` client."""
    from pydantic import SecretStr

    from imagegate.config import ChannelConfig
    from imagegate.testing.upstreams.openai_api import FakeOpenAI

    async with FakeOpenAI(latency=1.0) as fake:
        channel = ChannelConfig(name="oa", adapter="openai", base_url=fake.url + "/v1",
                                api_key=SecretStr("sk-fake"), models=["gpt-image-2"])
        async with live_app(settings(tmp_path, channels=[channel])) as live, \
                httpx.AsyncClient(timeout=30) as http:
            task_id = await submit(http, live, partial_images=2)
            events, _ = await follow(http, live, task_id)
            async with http.stream("POST", f"{live.url}/v1/images/generations",
                                   headers=live.auth(), json={
                                       "prompt": "streamed", "stream": True,
                                       "partial_images": 1}) as r:
                streamed = [e for e in [item async for item in read_events(r)]
                            if isinstance(e, Event)]
    names = [e.name for e in events]
    assert names.count("task.partial_image") == 2 and names[-1] == "task.succeeded"
    check_shape(events, task_id)
    assert [e.name for e in streamed] == ["image_generation.partial_image",
                                          "image_generation.completed"]
    assert all(r.json.get("stream") is True for r in fake.requests
               if r.method == "POST" and isinstance(r.json, dict))
