"""`POST /v1/images/{generations,edits}/async` over plain HTTP: always 202 with Location,
Retry-After, task_id, poll_url (absolute) and expires_at; errors as on the native routes,
leaving nothing behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.profiles import data_url, make_image, open_env

pytestmark = pytest.mark.anyio

GENERATE = ("/v1/images/generations/async", {"prompt": "a lighthouse"})
EDIT = ("/v1/images/edits/async", {"prompt": "watercolour",
                                   "images": [{"image_url": data_url(make_image())}]})


@pytest.mark.parametrize(("path", "body"), [GENERATE, EDIT], ids=["generations", "edits"])
async def test_always_accepted(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    async with open_env(tmp_path, retention_seconds=3600) as env:
        # Even what would make the native routes wait changes nothing here.
        r = await env.post(path, {**body, "wait_for_result": True},
                           headers={"Prefer": "wait=30"})
        assert r.status_code == 202, r.text
        answer = r.json()
        task_id = answer["task_id"]
        assert answer["data"] == [] and answer["status"] in ("queued", "in_progress")
        assert answer["poll_url"] == f"http://testserver/v1/images/tasks/{task_id}"
        assert answer["expires_at"] == answer["created"] + 3600
        assert r.headers["location"] == f"/v1/images/tasks/{task_id}"
        assert r.headers["retry-after"] == "2"
        assert "preference-applied" not in r.headers
        task = (await env.client.get(answer["poll_url"], headers=env.auth)).json()
        assert task["id"] == task_id and task["object"] == "image.task"


async def test_multipart_edit(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        r = await env.client.post("/v1/images/edits/async", headers=env.auth,
                                  data={"prompt": "watercolour"},
                                  files={"image": ("a.png", make_image(), "image/png")})
        assert r.status_code == 202, r.text


async def test_public_base_url_makes_the_poll_url(tmp_path: Path) -> None:
    async with open_env(tmp_path, public_base_url="https://img.example.com") as env:
        r = await env.post(*GENERATE)
        task_id = r.json()["task_id"]
        assert r.json()["poll_url"] == f"https://img.example.com/v1/images/tasks/{task_id}"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"prompt": "x", "stream": True, "partial_images": 1}, 400, "stream"),
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": "x", "model": "nope"}, 404, "model"),
])
async def test_refusals_change_nothing(tmp_path: Path, body: dict[str, Any], status: int,
                                       param: str) -> None:
    async with open_env(tmp_path) as env:
        r = await env.post("/v1/images/generations/async", body)
        assert r.status_code == status, r.text
        assert r.json()["error"]["param"] == param
        assert await env.task_count() == 0
        r = await env.client.post("/v1/images/generations/async", json={"prompt": "x"})
        assert r.status_code == 401 and await env.task_count() == 0


async def test_deadlines_apply_here_too(tmp_path: Path) -> None:
    """`Cancel-After` and `deadline_seconds` work on every create route, these included;
    a bad one is a 400 that creates nothing."""
    async with open_env(tmp_path, sandbox_latency=30) as env:
        r = await env.post(*GENERATE, headers={"Cancel-After": "90s"})
        assert r.status_code == 202, r.text
        answer = r.json()
        task = (await env.client.get(answer["poll_url"], headers=env.auth)).json()
        assert task["deadline_at"] == pytest.approx(task["created_at"] + 90, abs=2)
        r = await env.post(GENERATE[0], {**GENERATE[1], "deadline_seconds": 60})
        task = (await env.client.get(r.json()["poll_url"], headers=env.auth)).json()
        assert task["deadline_at"] == pytest.approx(task["created_at"] + 60, abs=2)
        before = await env.task_count()
        r = await env.post(*GENERATE, headers={"Cancel-After": "soon"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "Cancel-After"
        assert await env.task_count() == before
