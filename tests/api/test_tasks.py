"""The task routes (`api/tasks.py`): the task object's queue position, estimate, attempts and
expiry, over the in-process app (real SQLite, memory blobs, the sandbox)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio
TERMINAL = ("succeeded", "failed", "cancelled")


async def submit(env: Env, body: dict[str, Any] | None = None) -> str:
    r = await env.post("/v1/images/generations?async=true", body or {"prompt": "x"})
    assert r.status_code == 202, r.text
    task_id: str = r.json()["task_id"]
    return task_id


async def get(env: Env, task_id: str) -> dict[str, Any]:
    r = await env.client.get(f"/v1/tasks/{task_id}", headers=env.auth)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def wait_terminal(env: Env, task_id: str) -> dict[str, Any]:
    for _ in range(400):
        body = await get(env, task_id)
        if body["status"] in TERMINAL:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"task {task_id} did not finish")


async def test_queued_task_fields(tmp_path: Path) -> None:
    """No worker here, so tasks stay queued: positions count the tasks ahead, the estimate is
    the catalog's figure for the tier, no run has started, expiry is creation + retention."""
    async with open_env(tmp_path, run_workers=False, retention_seconds=3600) as env:
        first = await submit(env)
        second = await submit(env, {"prompt": "y", "size": "16:9", "resolution": "4k"})
        a, b = await get(env, first), await get(env, second)
        assert (a["queue_position"], b["queue_position"]) == (0, 1)
        assert (a["estimated_seconds"], b["estimated_seconds"]) == (60, 180)
        assert a["attempts"] == b["attempts"] == 0
        assert a["expires_at"] == a["created_at"] + 3600
        # A cancel takes it out of the queue: the one behind moves up.
        r = await env.client.post(f"/v1/tasks/{first}/cancel", headers=env.auth)
        assert r.status_code == 200
        cancelled = r.json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["queue_position"] is None and cancelled["estimated_seconds"] is None
        assert (await get(env, second))["queue_position"] == 0


async def test_finished_task_fields(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        done = await wait_terminal(env, await submit(env))
        assert done["status"] == "succeeded"
        assert done["attempts"] == 1
        assert done["queue_position"] is None and done["estimated_seconds"] is None
        assert isinstance(done["expires_at"], int) and done["expires_at"] > done["created_at"]


async def test_queue_positions_decrease_under_a_one_worker_backlog(tmp_path: Path) -> None:
    """One slot, four tasks of 0.3 s each: the last one's position goes down as the ones
    ahead are taken, then it runs (no position), then it finishes; the queued ones' positions
    are always distinct and count from 0."""
    async with open_env(tmp_path, worker_concurrency=1, sandbox_latency=0.3) as env:
        ids = [await submit(env, {"prompt": f"p{i}"}) for i in range(4)]
        positions: list[int] = []
        statuses: list[str] = []
        for _ in range(400):
            views = [await get(env, t) for t in ids]
            queued = sorted(v["queue_position"] for v in views if v["status"] == "queued")
            assert queued == list(range(len(queued))), views
            last = views[-1]
            if not statuses or statuses[-1] != last["status"]:
                statuses.append(last["status"])
            if last["status"] == "queued":
                positions.append(last["queue_position"])
            else:
                assert last["queue_position"] is None
            if last["status"] in TERMINAL:
                break
            await asyncio.sleep(0.03)
        assert statuses == ["queued", "in_progress", "succeeded"]
        assert positions == sorted(positions, reverse=True)
        assert positions[0] >= 2 and positions[-1] == 0
        # Once the model × tier has finished here, the estimate is the sandbox's run time.
        fresh = await get(env, await submit(env))
        assert 0 < fresh["estimated_seconds"] < 60
