"""`Client` and `AsyncClient` over real HTTP against a small fake of the task API that the
server is growing (`GET /v1/tasks/{id}/events`, `GET /v1/tasks`): the event stream read off
the wire, broken mid-way and resumed with `Last-Event-ID`; a list paged with `after`; a
create retried with the same `Idempotency-Key`. The same assertions run through both
clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.client import AsyncClient, Client, Task, TaskEvent, TaskPage
from tests.support.relay import FakeLoop
from tests.support.task_api import KEY, FakeTaskAPI


@pytest.fixture
def fake() -> Iterator[FakeTaskAPI]:
    loop = FakeLoop()
    try:
        yield loop.start(FakeTaskAPI)
    finally:
        loop.close()


def both(fake: FakeTaskAPI, call: Callable[[Any], Any], *, async_call: Any) -> list[Any]:
    """`call(client)` through `Client`, `async_call(client)` through `AsyncClient`."""
    with Client(fake.url, KEY, poll_interval=0.05) as client:
        first = call(client)

    async def run() -> Any:
        async with AsyncClient(fake.url, KEY, poll_interval=0.05) as client:
            return await async_call(client)

    return [first, asyncio.run(run())]


def test_events_are_read_off_the_wire_and_resumed(fake: FakeTaskAPI) -> None:
    async def collect(client: AsyncClient) -> list[TaskEvent]:
        return [event async for event in client.tasks.events("img_live")]

    for events in both(fake, lambda c: list(c.tasks.events("img_live")), async_call=collect):
        assert [e.type for e in events] == ["task.queued", "task.started", "task.progress",
                                            "task.partial_image", "task.succeeded"]
        assert [e.id for e in events] == ["1", "2", "3", "4", "5"]
        assert events[0].task.queue_position == 1
        assert (events[2].task.progress, events[2].task.estimated_seconds) == (40, 12.0)
        assert events[3].partial_image == b"part"
        assert events[4].task.status == "succeeded" and len(events[4].task.images) == 2
    assert fake.resumed_from == [None, "2", None, "2"]  # broke after event 2, resumed there


def test_wait_follows_events_and_download_takes_both_forms(fake: FakeTaskAPI,
                                                           tmp_path: Path) -> None:
    def sync(client: Client) -> list[Path]:
        seen: list[Task] = []
        task = client.tasks.wait("img_live", on_progress=seen.append)
        assert [t.status for t in seen][-1] == "succeeded" and len(seen) == 5
        return client.download_all(task, tmp_path / "sync")

    async def asynchronous(client: AsyncClient) -> list[Path]:
        task = await client.tasks.wait("img_live")
        return await client.download_all(task, tmp_path / "async")

    for paths in both(fake, sync, async_call=asynchronous):
        assert [p.name for p in paths] == ["img_live_0.png", "img_live_1.png"]
        assert all(p.read_bytes() == fake.image for p in paths)
    assert not list(tmp_path.rglob("*.part"))


def test_a_list_pages_with_after(fake: FakeTaskAPI) -> None:
    def pages(client: Client) -> list[TaskPage]:
        first = client.tasks.list(limit=3)
        return [first, client.tasks.list(limit=3, after=first.last_id)]

    async def async_pages(client: AsyncClient) -> list[TaskPage]:
        first = await client.tasks.list(limit=3)
        return [first, await client.tasks.list(limit=3, after=first.last_id)]

    for first, second in both(fake, pages, async_call=async_pages):
        assert [t.id for t in first.data] == ["img_6", "img_5", "img_4"] and first.has_more
        assert [t.id for t in second.data] == ["img_3", "img_2", "img_1"]
    assert [r.query for r in fake.requests if r.path == "/v1/tasks"][1] == {
        "limit": "3", "after": "img_4"}


def test_a_create_is_retried_with_the_same_key(fake: FakeTaskAPI) -> None:
    with Client(fake.url, KEY, poll_interval=0.05) as client:
        task = client.generate("a lighthouse", wait=False)
    assert task.id == "img_live" and task.status == "queued"
    assert len(fake.creates) == 2 and fake.creates[0] == fake.creates[1] != ""
    sent = [r for r in fake.requests if r.path == "/v1/images/generations"][-1]
    assert sent.query == {"async": "true"} and sent.json == {"prompt": "a lighthouse"}
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
