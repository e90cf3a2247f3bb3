"""The async-task fakes answer in the shapes their seeds document (000/001: dimilinks,
002: apimart), error bodies included, so the adapters are tested against the seeds."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from imagegate.testing.upstreams.apimart_api import FakeApimart
from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-fake"}
BODY = {"model": "gpt-image-2", "prompt": "一只橘猫", "n": 1, "size": "16:9",
        "resolution": "1k"}


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json(content_type=None)


async def test_dimilinks_async_task_and_relative_signed_urls() -> None:
    async with FakeDimilinks() as fake, aiohttp.ClientSession(fake.url) as http:
        for switch in ({"params": {"async": "true"}}, {"headers": {"Prefer": "respond-async"}},
                       {"json": {**BODY, "wait_for_result": False}}):
            kwargs: dict[str, Any] = {"json": BODY, **switch}
            kwargs["headers"] = {**AUTH, **kwargs.get("headers", {})}
            async with http.post("/v1/images/generations", **kwargs) as r:
                submitted = await _json(r)
            assert r.status == 200
            assert submitted["data"] == [] and submitted["task_id"].startswith("img_")
        async with http.get(f"/v1/tasks/{submitted['task_id']}", headers=AUTH) as r:
            task = await _json(r)
        assert (task["object"], task["status"], task["progress"]) == ("image.task",
                                                                      "succeeded", 100)
        url = task["result"]["data"][0]["url"]
        assert url.startswith(f"/p/img/{task['id']}/0?exp=") and "&sig=" in url
        # 16:9 at 1k; the 000 seed has no table, so the pixels are the fake's own choice
        assert task["result"]["size"] == "1536x864"
        async with http.get(url) as r:  # no bearer: the URL carries its own signature
            assert (r.status, r.content_type) == (200, "image/png")
        async with http.get(url.split("&sig=")[0] + "&sig=bad") as r:
            assert r.status == 403
        assert fake.submissions == 3


async def test_dimilinks_sync_edit_and_errors() -> None:
    async with FakeDimilinks() as fake, aiohttp.ClientSession(fake.url) as http:
        form = aiohttp.FormData({"model": "gpt-image-2", "prompt": "复古胶片"})
        form.add_field("image", fake.png(8, 8, "x"), filename="ref.png",
                       content_type="image/png")
        async with http.post("/v1/images/edits", data=form, headers=AUTH) as r:
            body = await _json(r)
        assert body["data"][0]["url"].startswith("/p/img/")
        assert body["data"][0]["file_id"].startswith("file_")
        async with http.post("/v1/images/generations", json=BODY) as r:
            assert r.status == 401
            assert (await _json(r))["error"]["type"] == "authentication_error"
        async with http.get("/v1/tasks/img_nope", headers=AUTH) as r:
            assert r.status == 404
            assert set((await _json(r))["error"]) == {"message", "type", "code"}


async def test_apimart_task_shapes() -> None:
    async with FakeApimart() as fake, aiohttp.ClientSession(fake.url) as http:
        async with http.post("/v1/images/generations", json=BODY, headers=AUTH) as r:
            submitted = await _json(r)
        assert submitted["code"] == 200
        (entry,) = submitted["data"]
        assert entry["status"] == "submitted"
        async with http.get(f"/v1/tasks/{entry['task_id']}", headers=AUTH) as r:
            task = await _json(r)
        data = task["data"]
        assert (task["code"], data["id"], data["status"], data["progress"]) == \
            (200, entry["task_id"], "completed", 100)
        assert {"created", "completed", "actual_time", "estimated_time", "cost"} <= set(data)
        (image,) = data["result"]["images"]
        assert isinstance(image["expires_at"], int)
        async with http.get(image["url"][0]) as r:
            assert (r.status, r.content_type) == (200, "image/png")


@pytest.mark.parametrize(("status", "kind", "message"), [
    (400, "invalid_request_error", "参数错误：size 不合法 / resolution 不支持 / 像素违规等"),
    (402, "payment_required", "账户余额不足，请充值后再试"),
    (429, "rate_limit_error", "请求过于频繁，请稍后再试"),
    (500, "server_error", "服务器错误"),
    (503, "service_unavailable", "上游暂时不可用，请稍后再试"),
])
async def test_apimart_error_bodies_are_the_seeds(status: int, kind: str, message: str) -> None:
    async with FakeApimart() as fake, aiohttp.ClientSession(fake.url) as http:
        fake.fail_next(status)
        async with http.post("/v1/images/generations", json=BODY, headers=AUTH) as r:
            assert r.status == status
            assert await _json(r) == {"error": {"code": status, "message": message,
                                                "type": kind}}


async def test_apimart_401_unknown_task_and_progress() -> None:
    fake = FakeApimart(progress_per_poll=40)
    await fake.start()
    try:
        async with aiohttp.ClientSession(fake.url) as http:
            await _check_401_404_progress(http)
    finally:
        await fake.stop()


async def _check_401_404_progress(http: aiohttp.ClientSession) -> None:
    async with http.post("/v1/images/generations", json=BODY) as r:
        assert await _json(r) == {"error": {"code": 401, "type": "authentication_error",
                                            "message": "身份验证失败，请检查您的API密钥"}}
    async with http.get("/v1/tasks/task_nope", headers=AUTH) as r:
        assert r.status == 404
        assert (await _json(r))["error"]["code"] == 404
    async with http.post("/v1/images/generations", json=BODY, headers=AUTH) as r:
        task_id = (await _json(r))["data"][0]["task_id"]
    statuses = []
    for _ in range(3):
        async with http.get(f"/v1/tasks/{task_id}", headers=AUTH) as r:
            statuses.append((await _json(r))["data"]["status"])
    assert statuses == ["processing", "processing", "completed"]
