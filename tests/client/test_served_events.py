"""The client follows a task through the served `GET /v1/tasks/{id}/events` (the real app
on loopback, the sandbox): the event names and task objects it parses are the server's."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from imagegate.client import AsyncClient
from imagegate.config import Settings
from tests.support.live import live_app

pytestmark = pytest.mark.anyio


async def test_client_follows_the_served_event_stream(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_store="memory", poll_interval_seconds=0.2,
                        sandbox_latency=1.0, sandbox_progress_steps=3)
    async with live_app(settings) as live:
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(f"{live.url}/v1/images/generations", headers=live.auth(),
                                json={"prompt": "follow", "wait_for_result": False,
                                      "partial_images": 1})
            task_id = r.json()["task_id"]
        async with AsyncClient(live.url, live.key) as client:
            events = [e async for e in client.tasks.events(task_id, timeout=30)]
    kinds = [e.type for e in events]
    assert kinds[0] == "task.queued" and kinds[-1] == "task.succeeded"
    assert "task.started" in kinds and "task.partial_image" in kinds
    assert all(e.id is not None for e in events)  # from the stream, not made up by polling
    ids = [int(e.id or "0") for e in events]
    assert ids == sorted(set(ids))
    final = events[-1].task
    assert final.id == task_id and final.status == "succeeded" and final.done
    progress = [e.task.progress for e in events if e.type == "task.progress"]
    assert progress and progress == sorted(progress)
