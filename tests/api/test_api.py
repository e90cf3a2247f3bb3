"""In-process API tests: the ASGI app with real SQLite, memory blobs and the sandbox."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.database import read_scalar
from imagegate.db.tables import tasks
from imagegate.wiring import Backends, build_backends

pytestmark = pytest.mark.anyio


class Env:
    def __init__(self, client: httpx.AsyncClient, backends: Backends, key: str) -> None:
        self.client = client
        self.backends = backends
        self.key = key

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, body: Any, path: str = "/v1/images/generations",
                   headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.auth, **(headers or {})})

    async def task_count(self) -> int:
        return int(await read_scalar(self.backends.db,
                                     sa.select(sa.func.count()).select_from(tasks)))

    async def wait_terminal(self, task_id: str) -> dict[str, Any]:
        for _ in range(200):
            body: dict[str, Any] = (await self.client.get(f"/v1/tasks/{task_id}",
                                                          headers=self.auth)).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"task {task_id} did not finish")


async def _env(tmp_path: Path, **overrides: Any) -> AsyncIterator[Env]:
    settings = Settings(data_dir=tmp_path, blob_store="memory", poll_interval_seconds=0.2,
                        **overrides)
    backends = await build_backends(settings)
    key, _ = await backends.keys.create("test")
    app = build_app(settings, backends)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        try:
            yield Env(client, backends, key)
        finally:
            await backends.aclose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path):
        yield e


async def test_sync_generation_shape_and_image(env: Env) -> None:
    r = await env.post({"prompt": "a lighthouse", "size": "16:9", "resolution": "2k", "n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"created", "task_id", "data", "size", "output_format", "quality",
                         "background", "usage"}
    assert body["size"] == "2048x1152" and len(body["data"]) == 2
    url = body["data"][0]["url"]
    assert url.startswith(f"http://testserver/p/img/{body['task_id']}/0?exp=")
    assert body["data"][0]["file_id"].startswith("file_")
    img = await env.client.get(url)
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    assert img.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert img.headers["etag"] and "max-age" in img.headers["cache-control"]
    again = await env.client.get(url, headers={"If-None-Match": img.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(("body", "quality", "background"), [
    ({}, "medium", "opaque"),  # the defaults, auto and auto, as made
    ({"quality": "auto", "background": "auto"}, "medium", "opaque"),
    ({"quality": "high", "background": "opaque"}, "high", "opaque"),
    ({"model": "gpt-image-1", "background": "transparent"}, "medium", "transparent"),
    ({"model": "dall-e-3", "quality": "auto"}, "standard", "opaque"),
    ({"model": "dall-e-3", "quality": "hd"}, "hd", "opaque"),
    ({"model": "dall-e-2", "quality": "auto"}, "standard", "opaque"),
])
async def test_responses_name_what_was_made(env: Env, body: dict[str, Any], quality: str,
                                            background: str) -> None:
    """Issue 18: `quality`/`background` are what was made, never `auto`, in the sync body
    and the task object alike; `revised_prompt` only on dall-e-3 results."""
    r = await env.post({"prompt": "a lighthouse", "size": "1024x1024", **body})
    assert r.status_code == 200, r.text
    sync = r.json()
    task = (await env.client.get(f"/v1/tasks/{sync['task_id']}", headers=env.auth)).json()
    for shown in (sync, task["result"]):
        assert (shown["quality"], shown["background"]) == (quality, background)
        assert (shown["size"], shown["output_format"]) == ("1024x1024", "png")
        revised = [item.get("revised_prompt") for item in shown["data"]]
        if body.get("model") == "dall-e-3":
            assert revised == ["a lighthouse, in a vivid style: hyper-real and dramatic"]
        else:
            assert revised == [None]


@pytest.mark.parametrize(
    ("path", "headers", "extra"),
    [
        ("/v1/images/generations?async=true", {}, {}),
        ("/v1/images/generations?wait_for_result=false", {}, {}),
        ("/v1/images/generations", {"Prefer": "respond-async"}, {}),
        ("/v1/images/generations", {}, {"wait_for_result": False}),
    ],
)
async def test_async_triggers(env: Env, path: str, headers: dict[str, str],
                              extra: dict[str, Any]) -> None:
    r = await env.post({"prompt": "async", **extra}, path=path, headers=headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["data"] == [] and body["task_id"].startswith("img_")
    assert r.headers["location"] == f"/v1/tasks/{body['task_id']}"
    assert int(r.headers["retry-after"]) >= 1
    done = await env.wait_terminal(body["task_id"])
    assert done["status"] == "succeeded" and done["progress"] == 100
    assert done["object"] == "image.task" and done["id"] == done["task_id"]
    assert done["result"]["data"][0]["url"].startswith("http://testserver/p/img/")
    legacy = await env.client.get(f"/v1/images/tasks/{body['task_id']}", headers=env.auth)
    assert legacy.json()["status"] == "succeeded"


async def test_other_key_sees_404(env: Env) -> None:
    r = await env.post({"prompt": "mine"}, path="/v1/images/generations?async=true")
    task_id = r.json()["task_id"]
    other, _ = await env.backends.keys.create("other")
    hdr = {"Authorization": f"Bearer {other}"}
    assert (await env.client.get(f"/v1/tasks/{task_id}", headers=hdr)).status_code == 404
    resp = await env.client.post(f"/v1/tasks/{task_id}/cancel", headers=hdr)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "task_not_found"


async def test_b64_and_data_url(env: Env) -> None:
    r = await env.post({"prompt": "b64", "response_format": "b64_json"})
    raw = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    r = await env.post({"prompt": "d", "response_format": "data_url", "output_format": "webp"})
    assert r.json()["data"][0]["url"].startswith("data:image/webp;base64,")


async def test_signed_url_tampering(env: Env) -> None:
    url = (await env.post({"prompt": "sig"})).json()["data"][0]["url"]
    path, query = url.split("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    bad_sig = f"{path}?exp={params['exp']}&sig={params['sig'][:-2]}AA"
    expired_sig = env.backends.links.signer.path(path.split("/")[3], 0, 1000)
    for u in (bad_sig, f"{path}?exp={int(params['exp']) + 1}&sig={params['sig']}",
              expired_sig, path, path[:-1] + "1?" + query):
        r = await env.client.get(u)
        assert r.status_code == 403, u
        assert r.json()["error"]["code"] == "invalid_signature"


async def test_models_list(env: Env) -> None:
    body = (await env.client.get("/v1/models", headers=env.auth)).json()
    ids = [m["id"] for m in body["data"]]
    assert ids[0] == "gpt-image-2" and "dall-e-2" in ids and len(ids) == 8
    assert body["data"][0]["capabilities"]["size_rule"] == "flexible"


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"prompt": "x", "size": "1000x1000"}, 400, "size", "invalid_value"),
        ({"prompt": "x", "n": "2"}, 400, "n", "invalid_type"),
        ({"prompt": "x", "model": "nope"}, 404, "model", "model_not_found"),
        ({"size": "1:1"}, 400, "prompt", "missing_required_parameter"),
        ({"prompt": "x", "output_format": "gif"}, 400, "output_format", "invalid_value"),
        ({"prompt": "x", "image_urls": ["blob:http://x/1"]}, 400, "image_urls[0]",
         "invalid_value"),
    ],
)
async def test_bad_fields_write_nothing(env: Env, body: dict[str, Any], status: int,
                                        param: str, code: str) -> None:
    r = await env.post(body)
    assert r.status_code == status
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["param"], err["code"]) == (param, code)
    assert await env.task_count() == 0


async def test_malformed_json_and_auth(env: Env) -> None:
    r = await env.client.post("/v1/images/generations", content=b"{nope", headers=env.auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await env.client.post("/v1/images/generations", content=b"[1]", headers=env.auth)
    assert r.status_code == 400
    r = await env.client.post("/v1/images/generations", json={"prompt": "x"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = await env.client.post("/v1/images/generations", json={"prompt": "x"},
                              headers={"Authorization": "Bearer ig_wrong"})
    assert r.status_code == 401 and "ig_wrong" not in r.text
    assert (await env.client.get("/v1/nothing-here")).json()["error"]["code"] == "unknown_url"
    assert await env.task_count() == 0


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("DELETE", "/v1/models", "GET"),
    ("PUT", "/v1/images/generations", "POST"),
    ("TRACE", "/v1/webhooks/deliveries/whd_1/retry", "POST"),
])
async def test_method_not_allowed_names_the_allowed_methods(env: Env, method: str, path: str,
                                                             allow: str) -> None:
    """RFC 9110: a 405 carries `Allow` (schemathesis found it missing)."""
    r = await env.client.request(method, path, headers=env.auth)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert allow in r.headers["allow"]


async def test_revoked_key_is_refused(env: Env) -> None:
    plaintext, key = await env.backends.keys.create("short-lived")
    hdr = {"Authorization": f"Bearer {plaintext}"}
    assert (await env.client.get("/v1/models", headers=hdr)).status_code == 200
    await env.backends.keys.revoke(key.id)
    assert (await env.client.get("/v1/models", headers=hdr)).status_code == 401


async def test_body_limit(tmp_path: Path) -> None:
    async for e in _env(tmp_path, max_body_bytes=2048):
        r = await e.post({"prompt": "x" * 5000})
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
            yield b'{"prompt": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        r = await e.client.post("/v1/images/generations", content=chunks(), headers=e.auth)
        assert r.status_code == 413
        assert await e.task_count() == 0


async def test_unexpected_error_is_json_500_with_request_id(env: Env,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    async def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database exploded")

    monkeypatch.setattr(env.backends.store, "create", broken)
    r = await env.post({"prompt": "x"})
    assert r.status_code == 500
    err = r.json()["error"]
    rid = r.headers["x-request-id"]
    assert err["type"] == "server_error" and rid in err["message"]
    assert "exploded" not in r.text  # internals stay in the log
    assert any(rid in rec.getMessage() for rec in caplog.records)


async def test_failure_injection(tmp_path: Path) -> None:
    async for e in _env(tmp_path, sandbox_failure_rate=1.0):
        r = await e.post({"prompt": "fail"})
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        r = await e.post({"prompt": "fail"}, path="/v1/images/generations?async=true")
        done = await e.wait_terminal(r.json()["task_id"])
        assert done["status"] == "failed" and done["error"]["type"] == "upstream_error"


async def test_cancel_running_task(tmp_path: Path) -> None:
    async for e in _env(tmp_path, sandbox_latency=2.0):
        r = await e.post({"prompt": "slow"}, path="/v1/images/generations?async=true")
        tid = r.json()["task_id"]
        for _ in range(100):
            if (await e.client.get(f"/v1/tasks/{tid}", headers=e.auth)).json()["status"] \
                    == "in_progress":
                break
            await asyncio.sleep(0.02)
        c = await e.client.post(f"/v1/tasks/{tid}/cancel", headers=e.auth)
        assert c.status_code == 200 and c.json()["status"] == "cancelled"
        c2 = await e.client.post(f"/v1/tasks/{tid}/cancel", headers=e.auth)
        assert c2.json()["status"] == "cancelled"
        await asyncio.sleep(2.5)
        final = (await e.client.get(f"/v1/tasks/{tid}", headers=e.auth)).json()
        assert final["status"] == "cancelled" and final["result"] is None


async def test_sync_wait_hands_over_after_limit(tmp_path: Path) -> None:
    async for e in _env(tmp_path, sandbox_latency=1.5, sync_wait_seconds=0.2):
        r = await e.post({"prompt": "too slow for sync"})
        assert r.status_code == 202 and r.headers["location"].startswith("/v1/tasks/")


async def test_sync_request_of_a_cancelled_task_gets_409(tmp_path: Path) -> None:
    async for e in _env(tmp_path, sandbox_latency=1.5):
        pending = asyncio.create_task(e.post({"prompt": "cancel me while I wait"}))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if (await e.backends.store.count_by_status()).get("in_progress"):
                break
        listing = await e.backends.db.read(sa.select(tasks.c.id))
        task_id = listing[0]["id"]
        await e.client.post(f"/v1/tasks/{task_id}/cancel", headers=e.auth)
        r = await pending
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "task_cancelled"
        # The SDKs retry 409s by themselves; that would start a new generation.
        assert r.headers["x-should-retry"] == "false"


async def test_long_strings_are_refused_and_nothing_is_stored(env: Env) -> None:
    r = await env.post({"prompt": "p", "user": "u" * 10_000_000})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"]) == ("user", "string_above_max_length")
    assert len(r.content) < 1000  # the value is not echoed
    r = await env.client.post("/v1/images/edits", headers=env.auth,
                              data={"prompt": "p", "user": "u" * 257},
                              files={"image": ("a.png", b"not read", "image/png")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"
    r = await env.post({"prompt": "p", "user": "u" * 257}, path="/apimart/v1/images/generations")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    assert await env.task_count() == 0
    ok = await env.post({"prompt": "p", "user": "u" * 256},
                        path="/v1/images/generations?async=true")
    assert ok.status_code == 202
    task = await env.backends.store.get(ok.json()["task_id"])
    assert task is not None and task.request["user"] == "u" * 256
