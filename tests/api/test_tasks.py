"""The task routes (`api/tasks.py`): the task object's queue position, estimate, attempts and
expiry, over the in-process app (real SQLite, memory blobs, the sandbox)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from imagegate.domain.task import new_id
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


# -- GET /v1/tasks and GET /admin/tasks ----------------------------------------------------

BASE = 1_800_000_000.0


async def _seed(env: Env, key_id: str, count: int) -> list[dict[str, Any]]:
    """`count` tasks of `key_id` straight into the store: created in pairs at the same
    second (ties the paging must order by id), every fifth a dall-e-3, every third
    cancelled. Returns what each is, for the expected answers."""
    store = env.backends.store
    made: list[dict[str, Any]] = []
    for i in range(count):
        task_id = new_id("img_")
        model = "dall-e-3" if i % 5 == 0 else "gpt-image-2"
        await store.create(task_id=task_id, key_id=key_id, operation="generate", model=model,
                           request={"prompt": f"p{i}", "tier": "1k"}, retention_seconds=3600,
                           now=BASE + i // 2)
        made.append({"id": task_id, "model": model, "created_at": BASE + i // 2,
                     "status": "queued"})
        if i % 3 == 0:
            await store.cancel(task_id, key_id)
            made[-1]["status"] = "cancelled"
    return made


def _newest_first(tasks_: list[dict[str, Any]]) -> list[str]:
    return [t["id"] for t in sorted(tasks_, key=lambda t: (t["created_at"], t["id"]),
                                    reverse=True)]


async def _pages(env: Env, path: str, params: dict[str, Any],
                 headers: dict[str, str]) -> tuple[list[str], list[int]]:
    ids: list[str] = []
    sizes: list[int] = []
    after: str | None = None
    for _ in range(100):
        query = {**params, **({"after": after} if after else {})}
        r = await env.client.get(path, params=query, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["object"] == "list"
        data = page["data"]
        sizes.append(len(data))
        ids += [t["id"] for t in data]
        assert page["last_id"] == (data[-1]["id"] if data else None)
        if not page["has_more"]:
            return ids, sizes
        after = page["last_id"]
    raise AssertionError("paging did not end")


async def _key_id(env: Env, secret: str) -> str:
    found = await env.backends.keys.find(secret)
    assert found is not None
    return found.id


async def test_list_paging_and_filters(tmp_path: Path, database_url: str) -> None:
    """250 tasks of one key (and 10 of another) paged on SQLite and PostgreSQL: newest
    first, nothing skipped or repeated across ties, filters combined, the other key's
    tasks never shown; the admin list the same across keys."""
    async with open_env(tmp_path, run_workers=False, database_url=database_url) as env:
        mine = await _key_id(env, env.key)
        other_secret, _ = await env.backends.keys.create("other")
        other = await _key_id(env, other_secret)
        made = await _seed(env, mine, 250)
        theirs = await _seed(env, other, 10)

        ids, sizes = await _pages(env, "/v1/tasks", {"limit": 100}, env.auth)
        assert ids == _newest_first(made) and sizes == [100, 100, 50]
        ids, _ = await _pages(env, "/v1/tasks", {}, env.auth)  # the default limit, 20
        assert ids == _newest_first(made)

        # Filters: each alone, then all at once with a small page.
        lo, hi = BASE + 20, BASE + 100
        cases: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
            ({"status": "cancelled"}, [t for t in made if t["status"] == "cancelled"]),
            ({"model": "dall-e-3"}, [t for t in made if t["model"] == "dall-e-3"]),
            ({"created_after": f"{lo:.0f}"}, [t for t in made if t["created_at"] > lo]),
            ({"created_before": f"{hi:.0f}"}, [t for t in made if t["created_at"] < hi]),
            ({"status": "queued", "model": "gpt-image-2", "created_after": f"{lo:.0f}",
              "created_before": f"{hi:.0f}", "limit": 7},
             [t for t in made if t["status"] == "queued" and t["model"] == "gpt-image-2"
              and lo < t["created_at"] < hi]),
        ]
        for params, expected in cases:
            ids, _ = await _pages(env, "/v1/tasks", {"limit": 50, **params}, env.auth)
            assert ids == _newest_first(expected), params
        r = await env.client.get("/v1/tasks", params={"model": "nope"}, headers=env.auth)
        assert r.json() == {"object": "list", "data": [], "has_more": False, "last_id": None}

        # The task objects are the poll's: queue positions for queued ones.
        r = await env.client.get("/v1/tasks", params={"limit": 3, "status": "queued"},
                                 headers=env.auth)
        first = r.json()["data"][0]
        assert first == await get(env, first["id"])

        # The admin list: everyone's, or one key's.
        admin = {"Authorization": f"Bearer {env.backends.admin_token}"}
        ids, _ = await _pages(env, "/admin/tasks", {"limit": 100, "key_id": mine}, admin)
        assert ids == _newest_first(made)
        ids, _ = await _pages(env, "/admin/tasks", {"limit": 100, "key_id": other}, admin)
        assert ids == _newest_first(theirs)
        ids, _ = await _pages(env, "/admin/tasks", {"limit": 100}, admin)
        assert set(_newest_first(made + theirs)) <= set(ids)
        # A cursor from another key is not this key's task.
        r = await env.client.get("/v1/tasks", params={"after": theirs[0]["id"]},
                                 headers=env.auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize(("params", "param"), [
    ({"limit": "101"}, "limit"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
    ({"status": "done"}, "status"), ({"created_after": "yesterday"}, "created_after"),
    ({"created_before": "-5"}, "created_before"), ({"after": "img_nope"}, "after"),
])
async def test_list_refuses_bad_queries(tmp_path: Path, params: dict[str, str],
                                        param: str) -> None:
    async with open_env(tmp_path, run_workers=False) as env:
        r = await env.client.get("/v1/tasks", params=params, headers=env.auth)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param


async def test_list_needs_keys(tmp_path: Path) -> None:
    async with open_env(tmp_path, run_workers=False) as env:
        assert (await env.client.get("/v1/tasks")).status_code == 401
        r = await env.client.get("/admin/tasks", headers=env.auth)  # an API key is no admin
        assert r.status_code == 403


async def test_list_links_results_instead_of_inlining_them(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        r = await env.post("/v1/images/generations", {"prompt": "x",
                                                      "response_format": "b64_json"})
        assert r.status_code == 200 and "b64_json" in r.json()["data"][0]
        [listed] = (await env.client.get("/v1/tasks", headers=env.auth)).json()["data"]
        [item] = listed["result"]["data"]
        assert "b64_json" not in item and item["url"].startswith("http://testserver/p/img/")
