"""The native API over plain HTTP (httpx) against a real `imagegate serve` process."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.support.e2e import (
    Server,
    ServerFactory,
    assert_error_body,
    decode_image,
    image_format,
    poll_task,
    sign,
    task_count,
    until_terminal,
)

pytestmark = pytest.mark.e2e

PROMPT = "a lighthouse on a cliff at dawn"
BODY: dict[str, Any] = {"model": "gpt-image-2", "prompt": PROMPT, "size": "1024x1024"}
CATALOG = {
    "gpt-image-2", "gpt-image-2-pro", "gpt-image-2-2026-04-21", "gpt-image-1.5", "gpt-image-1",
    "gpt-image-1-mini", "dall-e-3", "dall-e-2",
}
SYNC_KEYS = {"created", "task_id", "data", "size", "output_format", "quality", "background",
             "usage"}
SLOW_LATENCY = 2.0


@pytest.fixture(scope="module")
def _spawned(module_server_factory: ServerFactory) -> dict[str, Server]:
    # Launched together: most of a start is importing, and they import in parallel.
    return {
        "slow": module_server_factory.spawn({"IMAGEGATE_SANDBOX_LATENCY": str(SLOW_LATENCY),
                                             "IMAGEGATE_SANDBOX_PROGRESS_STEPS": "4"}),
        "failing": module_server_factory.spawn({"IMAGEGATE_SANDBOX_FAILURE_RATE": "1"}),
    }


@pytest.fixture(scope="module")
def slow_server(_spawned: dict[str, Server]) -> Server:
    return _spawned["slow"].wait_ready()


@pytest.fixture(scope="module")
def failing_server(_spawned: dict[str, Server]) -> Server:
    return _spawned["failing"].wait_ready()


@pytest.fixture
def client(basic_server: Server) -> Any:
    with basic_server.client() as c:
        yield c


def _sync(client: httpx.Client, **extra: Any) -> dict[str, Any]:
    resp = client.post("/v1/images/generations", json={**BODY, **extra})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _submit_async(client: httpx.Client, body: dict[str, Any] | None = None, **kw: Any
                  ) -> httpx.Response:
    return client.post("/v1/images/generations", json=body or BODY, **kw)


def _assert_accepted(resp: httpx.Response) -> str:
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert set(body) == {"created", "task_id", "data"}, body
    assert body["data"] == []
    assert isinstance(body["created"], int)
    task_id: str = body["task_id"]
    assert resp.headers["location"] == f"/v1/tasks/{task_id}"
    assert int(resp.headers["retry-after"]) >= 1
    return task_id


def _without_signatures(obj: Any) -> Any:
    """Signed URLs carry an expiry rounded to the hour: equal except across a boundary."""
    if isinstance(obj, dict):
        return {k: (urlsplit(v).path if k == "url" else _without_signatures(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without_signatures(v) for v in obj]
    return obj


# -- sync generation and the signed download
def test_sync_generation_and_signed_download(basic_server: Server, client: httpx.Client
                                             ) -> None:
    body = _sync(client, quality="high")
    assert set(body) == SYNC_KEYS, body
    assert body["task_id"].startswith("img_")
    assert isinstance(body["created"], int) and body["created"] > 1_700_000_000
    assert body["size"] == "1024x1024"
    assert body["output_format"] == "png"
    assert body["quality"] == "high"
    assert body["background"] in ("auto", "opaque")
    assert body["usage"]["total_tokens"] > 0
    assert len(body["data"]) == 1
    item = body["data"][0]
    assert set(item) >= {"url", "file_id"}, item
    assert item["url"].startswith(f"{basic_server.base_url}/p/img/{body['task_id']}/0?")
    assert item["file_id"]

    with httpx.Client(base_url=basic_server.base_url, timeout=30) as anon:  # no bearer
        img = anon.get(item["url"])
        assert img.status_code == 200, img.text
        assert img.headers["content-type"] == "image/png"
        assert image_format(img.content) == "png"
        decoded = decode_image(img.content)
        assert (decoded.width, decoded.height) == (1024, 1024)
        etag = img.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        assert "max-age=" in img.headers["cache-control"]

        again = anon.get(item["url"], headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag


def test_tampered_and_expired_urls_are_403(basic_server: Server, client: httpx.Client) -> None:
    body = _sync(client)
    url = body["data"][0]["url"]
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    task_id = body["task_id"]

    sig = q["sig"]
    tampered_sig = ("A" if sig[-1] != "A" else "B") + sig[1:]
    exp_ms = int(time.time() * 1000) - 60_000
    # A correctly signed URL (the server's own secret) whose expiry has passed.
    expired = {"exp": str(exp_ms), "sig": sign(basic_server.signing_secret(), task_id, 0, exp_ms)}
    cases = {
        "tampered sig": {**q, "sig": tampered_sig},
        "changed exp, old sig": {**q, "exp": str(int(q["exp"]) + 3_600_000)},
        "expired, validly signed": expired,
        "no sig": {"exp": q["exp"]},
        "other index": q,
    }
    with httpx.Client(base_url=basic_server.base_url, timeout=30) as anon:
        assert anon.get(url).status_code == 200
        for name, params in cases.items():
            path = parts.path if name != "other index" else parts.path[:-1] + "1"
            resp = anon.get(f"{path}?{urlencode(params)}")
            err = assert_error_body(resp, 403, error_type="permission_error")
            assert err["code"] == "invalid_signature", (name, err)


def test_b64_json_and_data_url(client: httpx.Client) -> None:
    b64 = _sync(client, response_format="b64_json")
    item = b64["data"][0]
    raw = base64.b64decode(item["b64_json"], validate=True)
    assert image_format(raw) == "png"
    img = decode_image(raw)
    assert (img.width, img.height) == (1024, 1024)

    data_url = _sync(client, response_format="data_url", size="1536x1024")
    url = data_url["data"][0]["url"]
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    img = decode_image(base64.b64decode(url[len(prefix):], validate=True))
    assert (img.width, img.height) == (1536, 1024)


@pytest.mark.parametrize(
    ("fmt", "mime"), [("jpeg", "image/jpeg"), ("webp", "image/webp")]
)
def test_other_output_formats(basic_server: Server, client: httpx.Client, fmt: str, mime: str
                              ) -> None:
    body = _sync(client, output_format=fmt, size="1024x1536")
    assert body["output_format"] == fmt
    img = httpx.get(body["data"][0]["url"], timeout=30)
    assert img.headers["content-type"] == mime
    assert image_format(img.content) == fmt
    decoded = decode_image(img.content)
    assert (decoded.width, decoded.height) == (1024, 1536)


# -- async: the four triggers, polling, the legacy path
ASYNC_TRIGGERS = {
    "query async=true": {"params": {"async": "true"}},
    "query wait_for_result=false": {"params": {"wait_for_result": "false"}},
    "Prefer header": {"headers": {"Prefer": "respond-async"}},
    "body wait_for_result": {"body": {**BODY, "wait_for_result": False}},
}


def test_async_triggers_then_poll(basic_server: Server, client: httpx.Client) -> None:
    sync_body = _sync(client)
    submitted = {}
    for name, how in ASYNC_TRIGGERS.items():
        resp = _submit_async(client, how.get("body"), params=how.get("params"),
                             headers=how.get("headers"))
        submitted[name] = _assert_accepted(resp)
    assert len(set(submitted.values())) == 4

    for name, task_id in submitted.items():
        task = poll_task(client, task_id, until_terminal)
        assert task["status"] == "succeeded", (name, task)
        assert task["object"] == "image.task"
        assert task["id"] == task["task_id"] == task_id
        assert task["progress"] == 100
        assert task["error"] is None
        assert isinstance(task["completed_at"], int)
        assert task["completed_at"] >= task["created_at"]
        result = task["result"]
        assert set(result) == set(sync_body), (name, result)
        assert [set(d) for d in result["data"]] == [set(d) for d in sync_body["data"]]
        for k in ("size", "output_format", "quality", "background"):
            assert result[k] == sync_body[k]
        assert result["task_id"] == task_id
        img = httpx.get(result["data"][0]["url"], timeout=30)
        assert img.status_code == 200
        assert decode_image(img.content).width == 1024

        legacy = client.get(f"/v1/images/tasks/{task_id}")
        assert legacy.status_code == 200
        assert _without_signatures(legacy.json()) == _without_signatures(task)


def test_unknown_task_is_404(client: httpx.Client) -> None:
    for resp in (client.get("/v1/tasks/img_nope"), client.get("/v1/images/tasks/img_nope"),
                 client.post("/v1/tasks/img_nope/cancel")):
        assert_error_body(resp, 404, code="task_not_found")


def test_progress_is_reported_while_in_progress(slow_server: Server) -> None:
    with slow_server.client() as c:
        task_id = _assert_accepted(_submit_async(c, params={"async": "true"}))
        seen: list[dict[str, Any]] = []
        final = poll_task(c, task_id, until_terminal, timeout=SLOW_LATENCY + 20,
                          interval=0.05, seen=seen)
    assert final["status"] == "succeeded"
    assert final["progress"] == 100
    running = [t["progress"] for t in seen if t["status"] == "in_progress"]
    assert any(0 < p < 100 for p in running), [(t["status"], t["progress"]) for t in seen]
    progress = [t["progress"] for t in seen]
    assert progress == sorted(progress), progress  # never goes backwards


def test_cancel_running_task(slow_server: Server) -> None:
    with slow_server.client() as c:
        task_id = _assert_accepted(_submit_async(c, params={"async": "true"}))
        poll_task(c, task_id, lambda t: t["status"] != "queued", interval=0.05)
        first = c.post(f"/v1/tasks/{task_id}/cancel")
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["status"] == "cancelled", body
        assert body["object"] == "image.task"
        assert body["result"] is None
        assert body["error"]["code"] == "task_cancelled"

        second = c.post(f"/v1/tasks/{task_id}/cancel")
        assert second.status_code == 200
        assert second.json() == body  # idempotent: unchanged

        # Well past the moment the sandbox would have finished: still cancelled.
        time.sleep(SLOW_LATENCY + 1.0)
        later = c.get(f"/v1/tasks/{task_id}").json()
        assert later["status"] == "cancelled", later
        assert later["result"] is None
    row = slow_server.query("SELECT status, result FROM tasks WHERE id = ?", (task_id,))[0]
    assert row["status"] == "cancelled"
    assert row["result"] is None
    # The finished-but-unwanted render was not kept.
    deadline = time.monotonic() + 10
    while any(task_id in str(p) for p in slow_server.blob_files()):
        assert time.monotonic() < deadline, "blobs of a cancelled task were kept"
        time.sleep(0.2)


def test_other_key_cannot_see_or_cancel(slow_server: Server) -> None:
    other = slow_server.create_key("e2e-other")  # the CLI, while the server runs
    assert other["key"].startswith("ig_") and other["key"] != slow_server.key
    assert other["name"] == "e2e-other"
    with slow_server.client() as owner, slow_server.client(other["key"]) as intruder:
        task_id = _assert_accepted(_submit_async(owner, params={"async": "true"}))
        # The other key works in general...
        assert intruder.get("/v1/models").status_code == 200
        # ...but the first key's task does not exist for it.
        assert_error_body(intruder.get(f"/v1/tasks/{task_id}"), 404, code="task_not_found")
        assert_error_body(intruder.get(f"/v1/images/tasks/{task_id}"), 404,
                          code="task_not_found")
        assert_error_body(intruder.post(f"/v1/tasks/{task_id}/cancel"), 404,
                          code="task_not_found")
        final = poll_task(owner, task_id, until_terminal, timeout=SLOW_LATENCY + 20)
        assert final["status"] == "succeeded"  # the intruder's cancel changed nothing
        # And the owner cannot see the intruder's tasks either.
        theirs = _assert_accepted(_submit_async(intruder, params={"async": "true"}))
        assert_error_body(owner.get(f"/v1/tasks/{theirs}"), 404, code="task_not_found")
        intruder.post(f"/v1/tasks/{theirs}/cancel")


# -- models
def test_models_lists_catalog(client: httpx.Client) -> None:
    resp = client.get("/v1/models")
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert set(ids) == CATALOG and len(ids) == 8
    for m in body["data"]:
        assert m["object"] == "model"
        caps = m["capabilities"]
        assert caps["output_formats"] and caps["qualities"] and caps["n_max"], m
        assert caps["size_rule"] in ("flexible", "enumerated")
    by_id = {m["id"]: m["capabilities"] for m in body["data"]}
    assert by_id["dall-e-2"]["sizes"] == ["256x256", "512x512", "1024x1024"]
    assert by_id["gpt-image-2"]["wxh_rules"]["multiple_of"] == 16


# -- bad input: an OpenAI error body, and no task, no file
def test_bad_requests_leave_no_trace(basic_server: Server, client: httpx.Client) -> None:
    rows_before = task_count(basic_server)
    blobs_before = basic_server.blob_files()
    url = "/v1/images/generations"
    json_headers = {"Content-Type": "application/json"}

    assert_error_body(client.post(url, content=b'{"model": "gpt-image-2", "prompt": ',
                                  headers=json_headers), 400, code="invalid_json",
                      error_type="invalid_request_error")
    assert_error_body(client.post(url, content=b"", headers=json_headers), 400,
                      code="invalid_json")
    assert_error_body(client.post(url, json=["not", "an", "object"]), 400, code="invalid_json")
    assert_error_body(client.post(url, json={**BODY, "n": "2"}), 400, param="n",
                      error_type="invalid_request_error")
    assert_error_body(client.post(url, json={**BODY, "size": "1000x1000"}), 400, param="size")
    assert_error_body(client.post(url, json={"model": "gpt-image-2"}), 400, param="prompt")
    assert_error_body(client.post(url, json={**BODY, "output_format": "gif"}), 400,
                      param="output_format")

    big = {**BODY, "prompt": "x" * 4096}
    assert_error_body(client.post(url, json=big), 413, code="payload_too_large")

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b'{"model": "gpt-image-2", "prompt": "'
        for _ in range(8):
            yield b"y" * 512
        yield b'"}'

    assert_error_body(client.post(url, content=chunks(), headers=json_headers), 413,
                      code="payload_too_large")
    # Async bad requests are refused before a task exists, too.
    assert_error_body(client.post(url, params={"async": "true"}, json=big), 413)
    assert_error_body(client.post(url, params={"async": "true"},
                                  json={**BODY, "model": "gpt-image-9"}), 404,
                      code="model_not_found", param="model")

    assert_error_body(client.post(url, json={**BODY, "model": "no-such-model"}), 404,
                      code="model_not_found")

    with httpx.Client(base_url=basic_server.base_url, timeout=30) as anon:
        assert_error_body(anon.post(url, json=BODY), 401, error_type="authentication_error")
        wrong = {"Authorization": "Bearer ig_" + "x" * 43}
        assert_error_body(anon.post(url, json=BODY, headers=wrong), 401,
                          code="invalid_api_key")
        assert_error_body(anon.get("/v1/models", headers=wrong), 401)
        assert_error_body(anon.get("/v1/tasks/img_x"), 401)

    assert_error_body(client.get("/v1/no/such/path"), 404)
    assert_error_body(client.get("/nowhere"), 404)

    assert task_count(basic_server) == rows_before
    assert basic_server.blob_files() == blobs_before


# -- provider failures
def test_provider_failure_sync_and_async(failing_server: Server) -> None:
    with failing_server.client() as c:
        rows_before = task_count(failing_server)
        resp = c.post("/v1/images/generations", json=BODY)
        assert 500 <= resp.status_code < 600, resp.text
        err = assert_error_body(resp, resp.status_code, error_type="upstream_error")
        assert err["code"] == "upstream_error"

        task_id = _assert_accepted(_submit_async(c, params={"async": "true"}))
        task = poll_task(c, task_id, until_terminal)
        assert task["status"] == "failed", task
        assert task["result"] is None
        assert {"message", "type", "param", "code"} <= set(task["error"])
        assert task["error"]["type"] == "upstream_error"
        assert isinstance(task["completed_at"], int)
        assert task_count(failing_server) == rows_before + 2
    assert failing_server.blob_files() == set()
