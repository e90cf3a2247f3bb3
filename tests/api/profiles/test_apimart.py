"""The apimart profile (`/apimart/v1`, the 002 seed): every request example of the seed
verbatim, the task shape through its statuses, batch queries and the error shapes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from imagegate.api.profiles.apimart import ESTIMATED_SECONDS, MAX_BATCH
from imagegate.api.profiles.errors import apimart_error
from imagegate.errors import (
    AuthenticationError,
    ImagegateError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProviderError,
    ProviderRejectedError,
    RateLimitError,
    ServiceUnavailableError,
    TaskCancelledError,
    UnsupportedMediaTypeError,
)
from tests.support.profiles import Env, data_url, image_size, make_image, open_env

pytestmark = pytest.mark.anyio

SUBMIT = "/apimart/v1/images/generations"
ERROR_KEYS = {"code", "message", "type"}
PNG = make_image(96, 64)

# The 002 seed's request examples, verbatim (the cURL/SDK example and the usage scenarios).
SEED_EXAMPLES: list[tuple[dict[str, Any], int, tuple[int, int], str]] = [
    ({"model": "gpt-image-2", "prompt": "一只橘猫坐在窗台上看夕阳，水彩画风格", "n": 1,
      "size": "16:9", "resolution": "2k"}, 1, (2048, 1152), "2k"),
    ({"model": "gpt-image-2", "prompt": "一只橘猫坐在窗台上看夕阳，水彩画风格"},
     1, (1024, 1024), "1k"),
    ({"model": "gpt-image-2", "prompt": "a corgi astronaut on the moon, cinematic, 8k",
      "size": "16:9", "resolution": "2k"}, 1, (2048, 1152), "2k"),
    ({"model": "gpt-image-2", "prompt": "星空下的古老城堡", "size": "16:9",
      "resolution": "4k"}, 1, (3840, 2160), "4k"),
    ({"model": "gpt-image-2", "prompt": "星空下的古老城堡", "size": "16:9", "resolution": "4k",
      "n": 2}, 2, (3840, 2160), "4k"),
]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as e:
        yield e


def assert_error(resp: Any, status: int, kind: str) -> str:
    """The seed's error shape with the given status and type; returns the message."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == ERROR_KEYS, err
    assert err["code"] == status and err["type"] == kind
    message: str = err["message"]
    return message


async def submit(env: Env, body: dict[str, Any], path: str = SUBMIT) -> str:
    r = await env.post(path, body)
    assert r.status_code == 200, r.text
    payload = r.json()
    assert set(payload) == {"code", "data"} and payload["code"] == 200
    [item] = payload["data"]
    assert set(item) == {"status", "task_id"} and item["status"] == "submitted"
    task_id: str = item["task_id"]
    return task_id


@pytest.mark.parametrize(("body", "count", "size", "tier"), SEED_EXAMPLES)
async def test_seed_examples_verbatim(env: Env, body: dict[str, Any], count: int,
                                      size: tuple[int, int], tier: str) -> None:
    task_id = await submit(env, body)
    data = await env.apimart_wait(task_id)
    assert data["status"] == "completed", data
    # Once a task of the model × tier has finished, its moving average (the sandbox's
    # near-instant runs: the floor of 1 s).
    assert data["estimated_time"] == 1
    images = data["result"]["images"]
    assert len(images) == count
    for image in images:
        [url] = image["url"]
        assert image_size(await env.download(url)) == size


async def test_seed_base64_reference_example(env: Env) -> None:
    """The seed's "参考图 = base64" example with a complete data URL (the seed's is cut off)."""
    body = {"model": "gpt-image-2", "prompt": "把这张照片变成水彩画风格",
            "image_urls": [data_url(PNG)]}
    data = await env.apimart_wait(await submit(env, body))
    assert data["status"] == "completed"
    [url] = data["result"]["images"][0]["url"]
    # No `size`: the output keeps the 96x64 input's shape (issue 18), at the smallest size
    # the model makes of it (a 1k price).
    assert image_size(await env.download(url)) == (1008, 672)
    assert data["cost"] == 0.04 and data["credits_cost"] == 0.4


@pytest.mark.parametrize("body", [
    {"model": "gpt-image-2", "prompt": "把这张照片变成水彩画风格",
     "image_urls": ["https://example.com/photo.jpg"]},
    {"model": "gpt-image-2", "prompt": "把这两张照片融合成一张海报", "size": "4:3",
     "resolution": "2k", "image_urls": ["https://example.com/photo-a.jpg",
                                        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA..."]},
])
async def test_seed_url_examples_fail_cleanly(tmp_path: Path, body: dict[str, Any]) -> None:
    """The seed's example.com URLs, verbatim: with no internet (or a 404 with it) the submit
    is refused with a 400 naming the image, and nothing is stored."""
    async with open_env(tmp_path, fetch_connect_timeout=3.0, fetch_timeout=5.0) as env:
        r = await env.post(SUBMIT, body)
        message = assert_error(r, 400, "invalid_request_error")
        assert message.startswith("image_urls[")
        assert await env.task_count() == 0


async def test_task_shape_through_every_status(tmp_path: Path) -> None:
    """One worker slot: the second task waits (pending) while the first runs, then runs
    (processing), then completes; every field is checked at each stage."""
    async with open_env(tmp_path, worker_concurrency=1, sandbox_latency=0.8) as env:
        await submit(env, {"prompt": "first"})
        task_id = await submit(env, {"prompt": "second", "size": "3:2", "resolution": "2k"})
        seen: list[str] = []
        for _ in range(400):
            data = await env.apimart_task(task_id)
            if not seen or seen[-1] != data["status"]:
                seen.append(data["status"])
            base = {"id", "status", "progress", "created", "estimated_time", "cost",
                    "credits_cost"}
            # The catalog's 2k figure until a 2k task has finished here (this one).
            assert data["id"] == task_id
            assert data["estimated_time"] == 120 or data["status"] == "completed"
            # The catalog's 2k price for one image: held while it runs, then settled.
            assert data["cost"] == 0.08 and isinstance(data["created"], int)
            assert data["credits_cost"] == 0.8  # 10 credits per unit by default
            assert 0 <= data["progress"] <= 100
            if data["status"] == "completed":
                break
            assert set(data) == base, data
            await asyncio.sleep(0.03)
        assert seen == ["submitted", "processing", "completed"]
        assert set(data) == base | {"completed", "actual_time", "result"}
        assert data["progress"] == 100
        assert data["actual_time"] == data["completed"] - data["created"] >= 0
        [image] = data["result"]["images"]
        assert set(image) == {"url", "expires_at"}
        [url] = image["url"]
        assert url.startswith(f"http://testserver/p/img/{task_id}/0?exp=")
        assert image["expires_at"] == int(url.split("exp=")[1].split("&")[0]) // 1000
        assert image["expires_at"] > data["completed"]
        assert image_size(await env.download(url)) == (2048, 1360)


async def test_absolute_urls(tmp_path: Path) -> None:
    async with open_env(tmp_path, url_mode="absolute",
                        public_base_url="https://img.example.org") as env:
        data = await env.apimart_wait(await submit(env, {"prompt": "abs"}))
        [url] = data["result"]["images"][0]["url"]
        assert url.startswith("https://img.example.org/p/img/")


async def test_failed_task_error_shape(tmp_path: Path) -> None:
    async with open_env(tmp_path, sandbox_failure_rate=1.0) as env:
        data = await env.apimart_wait(await submit(env, {"prompt": "fail"}))
        assert data["status"] == "failed" and "result" not in data
        assert set(data["error"]) == ERROR_KEYS
        # The backend failed (native 502): the seed's 503 "upstream unavailable".
        assert data["error"]["code"] == 503 and data["error"]["type"] == "service_unavailable"
        assert data["actual_time"] >= 0


async def test_cancelled_status(tmp_path: Path) -> None:
    async with open_env(tmp_path, sandbox_latency=3.0) as env:
        task_id = await submit(env, {"prompt": "slow"})
        r = await env.client.post(f"/v1/tasks/{task_id}/cancel", headers=env.auth)
        assert r.status_code == 200
        data = await env.apimart_task(task_id)
        assert data["status"] == "cancelled" and "result" not in data
        assert "completed" in data


async def test_batch(env: Env) -> None:
    first = await submit(env, {"prompt": "one"})
    second = await submit(env, {"prompt": "two", "resolution": "4k", "size": "1:1"})
    other_key, _ = await env.backends.keys.create("other")
    r = await env.client.post(SUBMIT, json={"prompt": "theirs"},
                              headers={"Authorization": f"Bearer {other_key}"})
    theirs = r.json()["data"][0]["task_id"]
    await env.apimart_wait(first)
    await env.apimart_wait(second)
    ids = [second, "img_unknown", first, theirs, second]
    r = await env.post("/apimart/v1/tasks/batch?language=en", {"task_ids": ids})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and [d["id"] for d in body["data"]] == ids
    ok = [d for d in body["data"] if d["id"] in (first, second)]
    assert all(d["status"] == "completed" and d["result"]["images"] for d in ok)
    assert body["data"][0]["estimated_time"] == 1  # the 4k runs seen (near-instant sandbox)
    for missing in (body["data"][1], body["data"][3]):  # unknown and another key's: the same
        assert missing["status"] == "failed" and missing["progress"] == 0
        assert missing["error"]["code"] == 404 and set(missing["error"]) == ERROR_KEYS
        assert "result" not in missing
    assert "theirs" not in r.text


@pytest.mark.parametrize(("body", "param"), [
    ({}, "task_ids"),
    ({"task_ids": []}, "task_ids"),
    ({"task_ids": "img_1"}, "task_ids"),
    ({"task_ids": ["img_1", 2]}, "task_ids[1]"),
    ({"task_ids": [f"img_{i}" for i in range(MAX_BATCH + 1)]}, "task_ids"),
])
async def test_batch_bad_input(env: Env, body: dict[str, Any], param: str) -> None:
    r = await env.post("/apimart/v1/tasks/batch", body)
    message = assert_error(r, 400, "invalid_request_error")
    assert param in message


async def test_language_and_official_fallback_accepted(env: Env) -> None:
    task_id = await submit(env, {"prompt": "fallback", "official_fallback": True},
                           path=SUBMIT + "?language=en")
    data = await env.client.get(f"/apimart/v1/tasks/{task_id}?language=zh", headers=env.auth)
    assert data.status_code == 200
    r = await env.post(SUBMIT, {"prompt": "x", "official_fallback": "sometimes"})
    assert "official_fallback" in assert_error(r, 400, "invalid_request_error")


async def test_unsupported_openai_fields_are_ignored(env: Env) -> None:
    """The seed: response_format and style are not supported and are ignored; results are
    URLs. The native-only sync switch and stream are ignored too: the service is async."""
    task_id = await submit(env, {"prompt": "x", "response_format": "b64_json",
                                 "style": "not-a-style", "wait_for_result": True,
                                 "stream": True})
    data = await env.apimart_wait(task_id)
    assert data["status"] == "completed"
    assert data["result"]["images"][0]["url"][0].startswith("http://testserver/p/img/")
    task = await env.backends.store.get(task_id)
    assert task is not None and task.request["response_format"] == "url"
    assert {"response_format", "style", "stream", "wait_for_result"} <= set(
        task.request["ignored_fields"])


async def test_edit_upload(env: Env) -> None:
    r = await env.client.post("/apimart/v1/images/edits", headers=env.auth,
                              data={"prompt": "watercolour", "size": "1536x1024"},
                              files={"image": ("photo.png", PNG, "image/png")})
    assert r.status_code == 200, r.text
    data = await env.apimart_wait(r.json()["data"][0]["task_id"])
    [url] = data["result"]["images"][0]["url"]
    assert image_size(await env.download(url)) == (1536, 1024)


async def test_error_shapes(env: Env) -> None:
    r = await env.post(SUBMIT, {"prompt": "x", "size": "1000x1000"})
    assert "1000x1000" in assert_error(r, 400, "invalid_request_error")
    r = await env.client.post(SUBMIT, content=b"{nope", headers=env.auth)
    assert_error(r, 400, "invalid_request_error")
    r = await env.post(SUBMIT, {"prompt": "x", "model": "nope"})
    assert_error(r, 404, "invalid_request_error")
    r = await env.client.post(SUBMIT, json={"prompt": "x"})
    assert_error(r, 401, "authentication_error")
    r = await env.client.post(SUBMIT, json={"prompt": "x"},
                              headers={"Authorization": "Bearer ig_wrong"})
    assert_error(r, 401, "authentication_error")
    assert "ig_wrong" not in r.text
    r = await env.client.get("/apimart/v1/tasks/img_nope", headers=env.auth)
    assert_error(r, 404, "invalid_request_error")
    r = await env.client.get("/apimart/v1/images/generations", headers=env.auth)
    assert_error(r, 405, "invalid_request_error")
    r = await env.client.post("/apimart/v1/images/edits", headers={
        **env.auth, "Content-Type": "text/plain"}, content=b"x")
    assert_error(r, 415, "invalid_request_error")
    assert await env.task_count() == 0


async def test_too_large(tmp_path: Path) -> None:
    async with open_env(tmp_path, max_body_bytes=4096, max_json_body_bytes=2048) as env:
        # Refused by Content-Length in the middleware, before any route runs.
        r = await env.post(SUBMIT, {"prompt": "x" * 5000})
        assert "4096" in assert_error(r, 413, "invalid_request_error")
        # Refused while reading the JSON body inside the route.
        r = await env.post(SUBMIT, {"prompt": "x" * 3000})
        assert "2048" in assert_error(r, 413, "invalid_request_error")
        assert await env.task_count() == 0


async def test_unexpected_error_is_a_500_in_the_apimart_shape(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database exploded")

    monkeypatch.setattr(env.backends.store, "create", broken)
    r = await env.post(SUBMIT, {"prompt": "x"})
    message = assert_error(r, 500, "server_error")
    assert r.headers["x-request-id"] in message and "exploded" not in r.text


@pytest.mark.parametrize("path", ["/apimart/v1/nothing", "/apimart/v1/tasks/a/b",
                                  "/openai/v1/tasks/x", "/apimart/v2/images/generations"])
async def test_unknown_paths_answer_the_native_404(env: Env, path: str) -> None:
    r = await env.client.get(path, headers=env.auth)
    assert r.status_code == 404
    assert r.json()["error"] == {"message": "Unknown path", "type": "invalid_request_error",
                                 "param": None, "code": "unknown_url"}


@pytest.mark.parametrize(("exc", "status", "kind"), [
    (ImagegateError("x"), 500, "server_error"),
    (AuthenticationError("x"), 401, "authentication_error"),
    (PermissionDeniedError("x"), 403, "permission_error"),
    (ModelNotFoundError("x"), 404, "invalid_request_error"),
    (TaskCancelledError("x"), 409, "invalid_request_error"),
    (PayloadTooLargeError("x"), 413, "invalid_request_error"),
    (UnsupportedMediaTypeError("x"), 415, "invalid_request_error"),
    (RateLimitError("x"), 429, "rate_limit_error"),
    (ProviderError("x"), 503, "service_unavailable"),
    (ProviderRejectedError("x"), 400, "invalid_request_error"),
    (ServiceUnavailableError("x"), 503, "service_unavailable"),
])
def test_every_error_class_has_an_apimart_spelling(exc: ImagegateError, status: int,
                                                   kind: str) -> None:
    assert apimart_error(exc) == ({"code": status, "message": "x", "type": kind}, status)


def test_payment_required_spelling() -> None:
    """Billing's 402 (not in the tree yet) is spelled as the seed documents it."""
    body, status = apimart_error(ImagegateError("余额不足"), 402)
    assert (status, body["type"]) == (402, "payment_required")


# ------------------------------------------ image-to-image without `size` (issue 18, item 1)
# 002: "不传 `size` 时输出分辨率 = 输入图分辨率；传 `size` 则强制按指定尺寸出图".
# reference (w, h) -> the image made, its tier and the price of that tier (gpt-image-2).
TIER_PRICE = {"1k": 0.04, "2k": 0.08, "4k": 0.16}
REFERENCE_CASES: list[tuple[str, tuple[int, int], tuple[int, int], str]] = [
    ("landscape", (1536, 1024), (1536, 1024), "1k"),
    ("portrait", (1024, 1536), (1024, 1536), "1k"),
    ("2k table size", (2048, 1360), (2048, 1360), "2k"),
    ("tiny", (96, 64), (1008, 672), "1k"),
    ("huge", (5000, 4000), (3200, 2560), "4k"),
    ("non-multiple of 16", (1000, 700), (1008, 704), "1k"),
    ("non-multiple portrait", (700, 1000), (704, 1008), "1k"),
]


async def _hold_and_price(env: Env, task_id: str) -> tuple[int, int, str]:
    task = await env.backends.store.get(task_id)
    assert task is not None
    return task.unit_price, task.hold_amount, str(task.request["tier"])


@pytest.mark.parametrize(("reference", "made", "tier"), [c[1:] for c in REFERENCE_CASES],
                         ids=[c[0] for c in REFERENCE_CASES])
async def test_no_size_keeps_the_reference_resolution(env: Env, reference: tuple[int, int],
                                                      made: tuple[int, int],
                                                      tier: str) -> None:
    body = {"model": "gpt-image-2", "prompt": "把这张照片变成水彩画风格",
            "image_urls": [data_url(make_image(*reference))]}
    task_id = await submit(env, body)
    price = round(TIER_PRICE[tier] * 1_000_000)
    # The hold is for the tier actually made, settled before the task existed.
    assert await _hold_and_price(env, task_id) == (price, price, tier)
    data = await env.apimart_wait(task_id)
    assert data["status"] == "completed", data
    assert data["estimated_time"] == 1  # this tier's near-instant sandbox run
    assert data["cost"] == TIER_PRICE[tier]
    assert data["credits_cost"] == round(TIER_PRICE[tier] * 10, 6)
    [url] = data["result"]["images"][0]["url"]
    assert image_size(await env.download(url)) == made


@pytest.mark.parametrize(("reference", "made", "tier"), [c[1:] for c in REFERENCE_CASES],
                         ids=[c[0] for c in REFERENCE_CASES])
async def test_native_v1_keeps_its_default_size(env: Env, reference: tuple[int, int],
                                                made: tuple[int, int], tier: str) -> None:
    """/v1 follows the 000 seed: `size` defaults to 1024x1024, references or not."""
    r = await env.post("/v1/images/generations",
                       {"model": "gpt-image-2", "prompt": "p",
                        "image_urls": [data_url(make_image(*reference))]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["size"] == "1024x1024"
    assert image_size(await env.download(body["data"][0]["url"])) == (1024, 1024)
    assert await _hold_and_price(env, body["task_id"]) == (40_000, 40_000, "1k")


async def test_an_explicit_size_or_resolution_still_decides(env: Env) -> None:
    ref = data_url(make_image(1000, 700))
    # `size` sent: forced, as the seed says ("auto" is a size: the seed's 1:1).
    for size, made in (("16:9", (1536, 864)), ("auto", (1024, 1024)),
                       ("2048x1152", (2048, 1152))):
        data = await env.apimart_wait(await submit(env, {"prompt": "p", "size": size,
                                                         "image_urls": [ref]}))
        [url] = data["result"]["images"][0]["url"]
        assert image_size(await env.download(url)) == made, size
    # `resolution` alone: the reference's shape at that tier, billed at that tier.
    task_id = await submit(env, {"prompt": "p", "resolution": "2k",
                                 "image_urls": [data_url(make_image(1536, 1024))]})
    assert await _hold_and_price(env, task_id) == (80_000, 80_000, "2k")
    data = await env.apimart_wait(task_id)
    [url] = data["result"]["images"][0]["url"]
    assert image_size(await env.download(url)) == (2048, 1360)


async def test_edit_upload_without_size_keeps_its_resolution(env: Env) -> None:
    r = await env.client.post("/apimart/v1/images/edits", headers=env.auth,
                              data={"prompt": "watercolour"},
                              files={"image": ("photo.png", make_image(1000, 700), "image/png")})
    assert r.status_code == 200, r.text
    data = await env.apimart_wait(r.json()["data"][0]["task_id"])
    [url] = data["result"]["images"][0]["url"]
    assert image_size(await env.download(url)) == (1008, 704)


async def test_enumerated_model_takes_the_nearest_listed_size(env: Env) -> None:
    data = await env.apimart_wait(await submit(env, {
        "model": "gpt-image-1", "prompt": "p", "image_urls": [data_url(make_image(700, 1000))]}))
    [url] = data["result"]["images"][0]["url"]
    assert image_size(await env.download(url)) == (1024, 1536)


async def test_n_beyond_the_settled_tier_is_refused_and_leaves_nothing(env: Env) -> None:
    """n=10 passes at the provisional 1k; the 5000x4000 reference makes a 4k image (n <= 4):
    a 400 naming `n`, no task, no hold, and the stored reference is removed again."""
    body = {"prompt": "p", "n": 10, "image_urls": [data_url(make_image(5000, 4000))]}
    r = await env.post(SUBMIT, body)
    message = assert_error(r, 400, "invalid_request_error")
    assert "'n'" in message and "3200x2560" in message
    assert await env.task_count() == 0
    assert await env.backends.blobs.delete_prefix("tasks/") == 0


# ------------------------------------------------------------ credits_cost (issue 18, item 7)


async def test_credits_cost_follows_cost_through_refunds(tmp_path: Path) -> None:
    async with open_env(tmp_path, sandbox_failure_rate=1.0) as env:
        task_id = await submit(env, {"prompt": "fail", "size": "1:1", "resolution": "4k"})
        data = await env.apimart_wait(task_id)
        assert data["status"] == "failed"
        assert (data["cost"], data["credits_cost"]) == (0.0, 0.0)
    async with open_env(tmp_path / "slow", sandbox_latency=5.0) as env:
        task_id = await submit(env, {"prompt": "slow", "resolution": "2k"})
        held = await env.apimart_task(task_id)
        assert (held["cost"], held["credits_cost"]) == (0.08, 0.8)  # the hold
        r = await env.client.post(f"/v1/tasks/{task_id}/cancel", headers=env.auth)
        assert r.status_code == 200, r.text
        data = await env.apimart_task(task_id)
        assert data["status"] == "cancelled"
        assert (data["cost"], data["credits_cost"]) == (0.0, 0.0)


async def test_credits_cost_is_exact_at_the_seeds_price(tmp_path: Path) -> None:
    """The seed's example, `cost` 0.05279 and `credits_cost` 0.5279 (0.05279 * 10 is
    0.5278999999999999 in floats), and a configured `credits_per_unit`."""
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        'default_model = "gpt-image-2"\n'
        "[models.gpt-image-2]\n"
        'size_rule = "flexible"\ndefault_size = "1:1"\nn_max = { "1k" = 4 }\n'
        'qualities = ["auto"]\ndefault_quality = "auto"\noutput_formats = ["png"]\n'
        'transparent_background = false\nprices = { "1k" = "0.05279" }\n', encoding="utf-8")
    async with open_env(tmp_path, catalog_file=catalog) as env:
        data = await env.apimart_wait(await submit(env, {"prompt": "seed price"}))
        assert (data["cost"], data["credits_cost"]) == (0.05279, 0.5279)
        data = await env.apimart_wait(await submit(env, {"prompt": "two", "n": 2}))
        assert (data["cost"], data["credits_cost"]) == (0.10558, 1.0558)
    async with open_env(tmp_path / "b", catalog_file=catalog, credits_per_unit=2.5) as env:
        data = await env.apimart_wait(await submit(env, {"prompt": "rate"}))
        assert (data["cost"], data["credits_cost"]) == (0.05279, 0.131975)
        r = await env.post("/apimart/v1/tasks/batch", {"task_ids": [data["id"]]})
        assert r.json()["data"][0]["credits_cost"] == 0.131975


async def test_estimated_time_before_any_history_is_the_catalog_figure(tmp_path: Path
                                                                       ) -> None:
    """No task has finished (no worker runs here): each tier reports the catalog's typical
    time, which for gpt-image-2 is the seed's table."""
    async with open_env(tmp_path, run_workers=False) as env:
        for tier in ("1k", "2k", "4k"):
            task_id = await submit(env, {"prompt": "x", "size": "1:1", "resolution": tier})
            data = await env.apimart_task(task_id)
            assert data["status"] == "submitted"
            assert data["estimated_time"] == ESTIMATED_SECONDS[tier]
