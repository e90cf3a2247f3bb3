"""The official `openai` Python SDK as a client of a real `imagegate serve` process."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.e2e import TERMINAL, Server, decode_image, image_format

pytestmark = pytest.mark.e2e


@pytest.fixture
def sdk(basic_server: Server) -> Iterator[OpenAI]:
    client = OpenAI(base_url=basic_server.base_url + "/v1", api_key=basic_server.key,
                    max_retries=0, timeout=30)
    try:
        yield client
    finally:
        client.close()


def _download(server: Server, url: str) -> bytes:
    with httpx.Client(timeout=30) as c:
        resp = c.get(url)
    assert resp.status_code == 200, resp.text
    return resp.content


def test_seed_004_example(basic_server: Server, sdk: OpenAI) -> None:
    """The Python example of the 004 seed, verbatim apart from the base URL and key."""
    resp = sdk.images.generate(
        model="gpt-image-2",
        prompt="A modern logo for an AI startup, minimalist style",
        size="1024x1024",
        quality="high",
        n=1,
    )
    assert resp.data is not None and len(resp.data) == 1
    url = resp.data[0].url
    assert url and url.startswith(basic_server.base_url + "/p/img/")
    assert resp.created > 0
    assert resp.size == "1024x1024"
    assert resp.quality == "high"
    assert resp.output_format == "png"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    extra = resp.model_extra or {}
    assert extra.get("task_id", "").startswith("img_")
    data = _download(basic_server, url)
    assert image_format(data) == "png"
    img = decode_image(data)
    assert (img.width, img.height) == (1024, 1024)


def test_webp_landscape(basic_server: Server, sdk: OpenAI) -> None:
    resp = sdk.images.generate(
        model="gpt-image-2",
        prompt="Create a clean product-style image of a white desk lamp",
        size="1536x1024",
        quality="medium",
        output_format="webp",
    )
    assert resp.output_format == "webp"
    assert resp.data is not None and resp.data[0].url
    data = _download(basic_server, resp.data[0].url)
    assert image_format(data) == "webp"
    img = decode_image(data)
    assert (img.width, img.height) == (1536, 1024)


def test_b64_json_on_dall_e_2(sdk: OpenAI) -> None:
    resp = sdk.images.generate(model="dall-e-2", prompt="a red fox", size="512x512",
                               response_format="b64_json", n=2)
    assert resp.data is not None and len(resp.data) == 2
    for item in resp.data:
        assert item.b64_json
        raw = base64.b64decode(item.b64_json)
        assert image_format(raw) == "png"
        img = decode_image(raw)
        assert (img.width, img.height) == (512, 512)


def test_bad_key_is_authentication_error(basic_server: Server) -> None:
    with OpenAI(base_url=basic_server.base_url + "/v1", api_key="ig_not_a_real_key",
                max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.images.generate(model="gpt-image-2", prompt="x")
        assert info.value.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()


def test_bad_size_is_bad_request(sdk: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        sdk.images.generate(model="gpt-image-2", prompt="x", size="1000x1000")  # type: ignore[arg-type]
    err = info.value
    assert err.status_code == 400
    assert err.param == "size"
    assert isinstance(err.body, dict) and err.body.get("param") == "size"
    assert "size" in err.message.lower() or "1000" in err.message


def test_unknown_model_is_not_found(sdk: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        sdk.images.generate(model="gpt-image-99", prompt="x")
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


def test_models_list(sdk: OpenAI) -> None:
    ids = {m.id for m in sdk.models.list()}
    assert {"gpt-image-2", "dall-e-3", "dall-e-2"} <= ids
    assert len(ids) == 8


def _poll(sdk: OpenAI, task_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        task = sdk.get(f"/tasks/{task_id}", cast_to=object)
        assert isinstance(task, dict)
        if task["status"] in TERMINAL:
            return task
        assert time.monotonic() < deadline, task
        time.sleep(0.1)


def test_async_task_via_low_level_post(basic_server: Server, sdk: OpenAI) -> None:
    resp = sdk.post(
        "/images/generations?async=true",
        body={"model": "gpt-image-2", "prompt": "a paper boat", "size": "16:9",
              "resolution": "1k"},
        cast_to=httpx.Response,
    )
    assert resp.status_code == 202
    task_id = resp.json()["task_id"]
    assert resp.headers["location"] == f"/v1/tasks/{task_id}"

    task = _poll(sdk, task_id)
    assert task["status"] == "succeeded", task
    assert task["object"] == "image.task"
    result = task["result"]
    assert result["size"] == "1536x864"
    img = decode_image(_download(basic_server, result["data"][0]["url"]))
    assert (img.width, img.height) == (1536, 864)

    # The legacy path through the SDK as well.
    legacy = sdk.get(f"/images/tasks/{task_id}", cast_to=object)
    assert isinstance(legacy, dict) and legacy["status"] == "succeeded"


def test_async_task_via_raw_response(sdk: OpenAI) -> None:
    raw = sdk.images.with_raw_response.generate(
        model="gpt-image-2", prompt="a tin robot", size="1024x1024",
        extra_headers={"Prefer": "respond-async"},
    )
    assert raw.status_code == 202
    assert raw.headers["retry-after"]
    submitted = raw.parse()  # the SDK's model parses the submit body too
    assert submitted.data == []
    task_id = (submitted.model_extra or {})["task_id"]

    task = _poll(sdk, task_id)
    assert task["status"] == "succeeded", task
    assert task["progress"] == 100

    cancelled = sdk.post(f"/tasks/{task_id}/cancel", cast_to=object)
    assert isinstance(cancelled, dict)
    assert cancelled["status"] == "succeeded"  # a finished task is not cancelled afterwards

    with pytest.raises(openai.NotFoundError):
        sdk.get("/tasks/img_does_not_exist", cast_to=object)


def test_async_alias_through_the_sdk_post_helper(basic_server: Server, sdk: OpenAI) -> None:
    """`POST /v1/images/generations/async` as a client of another gateway calls it: the
    SDK's raw `post` helper, then polling the `poll_url` with its `get` helper."""
    raw = sdk.post("/images/generations/async", cast_to=httpx.Response,
                   body={"prompt": "a lighthouse", "size": "1024x1024"})
    assert raw.status_code == 202, raw.text
    body = raw.json()
    task_id = body["task_id"]
    assert body["poll_url"] == f"{basic_server.base_url}/v1/images/tasks/{task_id}"
    assert raw.headers["location"] == f"/v1/images/tasks/{task_id}"
    assert int(raw.headers["retry-after"]) >= 1 and body["expires_at"] > body["created"]
    task: Any = None
    for _ in range(400):
        task = sdk.get(f"/images/tasks/{task_id}", cast_to=object)
        if task["status"] in TERMINAL:
            break
        time.sleep(0.05)
    assert task["status"] == "succeeded" and len(task["result"]["data"]) == 1
