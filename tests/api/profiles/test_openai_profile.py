"""The openai profile (`/openai/v1`): exactly OpenAI's Images API. Shapes with httpx, and the
official `openai` SDK as the client (AsyncOpenAI over the in-process ASGI transport)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from openai import AsyncOpenAI

from imagegate.db.tables import tasks
from tests.support.profiles import Env, image_size, make_image, open_env

pytestmark = pytest.mark.anyio

GEN = "/openai/v1/images/generations"
EDIT = "/openai/v1/images/edits"
VARIATION = "/openai/v1/images/variations"
# Every top-level field OpenAI's image response has; nothing else may appear.
OPENAI_FIELDS = {"created", "data", "background", "output_format", "quality", "size", "usage"}
PNG = make_image(80, 60)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as e:
        yield e


def sdk(env: Env, **kwargs: Any) -> AsyncOpenAI:
    """The official SDK talking to the app in-process (same transport, no socket)."""
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=env.app), timeout=60)
    options: dict[str, Any] = {"api_key": env.key, "max_retries": 0, **kwargs}
    return AsyncOpenAI(base_url="http://testserver/openai/v1", http_client=http, **options)


def assert_openai_error(r: httpx.Response, status: int, param: str | None, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert (err["param"], err["code"]) == (param, code)


async def test_gpt_image_answers_b64_only(env: Env) -> None:
    r = await env.post(GEN, {"model": "gpt-image-2", "prompt": "a lighthouse", "n": 2,
                             "size": "1536x1024", "quality": "high"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) <= OPENAI_FIELDS and {"created", "data", "size", "usage"} <= set(body)
    assert body["size"] == "1536x1024" and body["quality"] == "high"
    assert "task_id" not in r.text and "file_id" not in r.text and "/p/img/" not in r.text
    assert len(body["data"]) == 2
    for item in body["data"]:
        assert set(item) == {"b64_json"}
        assert image_size(base64.b64decode(item["b64_json"])) == (1536, 1024)


async def test_dall_e_honours_response_format(env: Env) -> None:
    r = await env.post(GEN, {"model": "dall-e-3", "prompt": "a fox", "size": "1792x1024"})
    body = r.json()
    # dall-e-3 results carry revised_prompt (issue 18; 003: dall-e-3 only).
    assert set(body) == {"created", "data"} and set(body["data"][0]) == {"url",
                                                                         "revised_prompt"}
    assert image_size(await env.download(body["data"][0]["url"])) == (1792, 1024)
    r = await env.post(GEN, {"model": "dall-e-2", "prompt": "a fox", "n": 2,
                             "size": "256x256", "response_format": "b64_json"})
    body = r.json()
    assert set(body) == {"created", "data"} and len(body["data"]) == 2
    assert set(body["data"][0]) == {"b64_json"}
    assert image_size(base64.b64decode(body["data"][0]["b64_json"])) == (256, 256)


async def test_openai_refusals(env: Env) -> None:
    for fmt in ("url", "b64_json"):
        r = await env.post(GEN, {"model": "gpt-image-1", "prompt": "x", "response_format": fmt})
        assert_openai_error(r, 400, "response_format", "unknown_parameter")
        assert r.json()["error"]["message"] == "Unknown parameter: 'response_format'."
    r = await env.post(GEN, {"model": "dall-e-2", "prompt": "x", "response_format": "data_url"})
    assert_openai_error(r, 400, "response_format", "invalid_value")
    r = await env.post(GEN, {"model": "dall-e-3", "prompt": "x", "stream": True,
                             "partial_images": 1})
    assert_openai_error(r, 400, "stream", "unsupported_value")
    r = await env.post(GEN, {"prompt": "x", "stream": True})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Streaming must have non-zero partial images",
                                 "type": "invalid_request_error", "param": "partial_images",
                                 "code": None}
    r = await env.post(GEN, {"prompt": "x", "model": "nope"})
    assert_openai_error(r, 404, "model", "model_not_found")
    assert await env.task_count() == 0


async def test_always_synchronous(env: Env) -> None:
    """The native async triggers mean nothing to OpenAI: still a finished image."""
    r = await env.post(GEN + "?async=true", {"prompt": "x", "wait_for_result": False},
                       headers={"Prefer": "respond-async"})
    assert r.status_code == 200 and set(r.json()["data"][0]) == {"b64_json"}


async def test_edits(env: Env) -> None:
    r = await env.client.post(EDIT, headers=env.auth,
                              data={"model": "gpt-image-1", "prompt": "paint it",
                                    "size": "1024x1536"},
                              files={"image[]": ("in.png", PNG, "image/png")})
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert set(item) == {"b64_json"}
    assert image_size(base64.b64decode(item["b64_json"])) == (1024, 1536)
    r = await env.client.post(EDIT, headers=env.auth,
                              data={"model": "dall-e-2", "prompt": "paint it",
                                    "size": "512x512"},
                              files={"image": ("in.png", PNG, "image/png")})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"created", "data"} and set(r.json()["data"][0]) == {"url"}


async def test_variations(env: Env) -> None:
    """OpenAI's answer exactly: created + data[{url}] (or b64_json), synchronous whatever
    the native async triggers say; dall-e-2 is the default model, as on OpenAI."""
    square = make_image(64, 64)
    r = await env.client.post(VARIATION + "?async=true", headers=env.auth,
                              data={"n": "2", "size": "256x256", "wait_for_result": "false"},
                              files={"image": ("in.png", square, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"created", "data"} and len(body["data"]) == 2
    assert all(set(item) == {"url"} for item in body["data"])
    assert image_size(await env.download(body["data"][0]["url"])) == (256, 256)
    r = await env.client.post(VARIATION, headers=env.auth,
                              data={"model": "dall-e-2", "response_format": "b64_json"},
                              files={"image": ("in.png", square, "image/png")})
    assert r.status_code == 200, r.text
    assert set(r.json()["data"][0]) == {"b64_json"}
    assert image_size(base64.b64decode(r.json()["data"][0]["b64_json"])) == (1024, 1024)


async def test_variation_refusals(env: Env) -> None:
    square = make_image(64, 64)

    async def vary(data: dict[str, str], files: Any = None) -> httpx.Response:
        return await env.client.post(
            VARIATION, headers=env.auth, data=data,
            files=files or {"image": ("in.png", square, "image/png")})

    # The model is judged first: a GPT image model is refused for what it is.
    assert_openai_error(await vary({"model": "gpt-image-1", "response_format": "url"}),
                        400, "model", "unsupported_model")
    assert_openai_error(await vary({"response_format": "data_url"}), 400, "response_format",
                        "invalid_value")
    assert_openai_error(await vary({"size": "1024x1792"}), 400, "size", "invalid_value")
    assert_openai_error(await vary({"n": "11"}), 400, "n", "invalid_value")
    assert_openai_error(await vary({"stream": "true"}), 400, "stream", "unsupported_value")
    assert_openai_error(await vary({}, [("image", ("a.png", square, "image/png")),
                                        ("mask", ("m.png", square, "image/png"))]),
                        400, "mask", "invalid_value")
    r = await env.client.post(VARIATION, headers=env.auth, json={"n": 1})
    assert_openai_error(r, 400, "image", "missing_required_parameter")
    assert await env.task_count() == 0


async def test_models(env: Env) -> None:
    r = await env.client.get("/openai/v1/models", headers=env.auth)
    body = r.json()
    assert body["object"] == "list" and len(body["data"]) == 8
    assert all(set(m) == {"id", "object", "created", "owned_by"} for m in body["data"])
    r = await env.client.get("/openai/v1/models/dall-e-3", headers=env.auth)
    assert r.json()["id"] == "dall-e-3"
    r = await env.client.get("/openai/v1/models/nope", headers=env.auth)
    assert_openai_error(r, 404, "model", "model_not_found")


async def test_timeout_is_a_504_that_keeps_the_task(tmp_path: Path) -> None:
    async with open_env(tmp_path, sync_wait_seconds=0.3, sandbox_latency=1.5) as env:
        r = await env.post(GEN, {"prompt": "slow"})
        assert_openai_error(r, 504, None, "timeout")
        assert r.headers["x-should-retry"] == "false"
        task_id = r.json()["error"]["message"].split("task ")[1].split(":")[0]
        running = await env.backends.store.get(task_id)
        assert running is not None
        done = await env.backends.tasks.wait(running, 10)
        assert done.status == "succeeded"


# -- the official SDK


async def test_sdk_generate(env: Env) -> None:
    async with sdk(env) as client:
        resp = await client.images.generate(model="gpt-image-2", prompt="A modern logo",
                                            size="1024x1024", quality="high", n=1)
        assert resp.data is not None and resp.data[0].b64_json and resp.data[0].url is None
        assert image_size(base64.b64decode(resp.data[0].b64_json)) == (1024, 1024)
        assert resp.size == "1024x1024" and resp.usage is not None
        assert not resp.model_extra  # nothing OpenAI would not send
        resp = await client.images.generate(model="dall-e-3", prompt="a fox")
        assert resp.data is not None and resp.data[0].url and resp.data[0].b64_json is None
        resp = await client.images.generate(model="dall-e-2", prompt="a fox", n=2,
                                            size="512x512", response_format="b64_json")
        assert resp.data is not None and len(resp.data) == 2
        assert all(d.b64_json for d in resp.data)


async def test_sdk_streaming(env: Env) -> None:
    async with sdk(env) as client:
        stream = await client.images.generate(model="gpt-image-2", prompt="a fox",
                                              size="1024x1024", stream=True, partial_images=1)
        events = [event async for event in stream]
    assert [e.type for e in events] == ["image_generation.partial_image",
                                        "image_generation.completed"]
    assert all(not e.model_extra for e in events)  # no fields OpenAI would not send
    assert image_size(base64.b64decode(events[-1].b64_json)) == (1024, 1024)


async def test_sdk_edit_and_models(env: Env) -> None:
    async with sdk(env) as client:
        resp = await client.images.edit(model="gpt-image-1", prompt="paint it",
                                        image=("in.png", PNG, "image/png"), size="1024x1024")
        assert resp.data is not None and resp.data[0].b64_json
        names = [m.id async for m in client.models.list()]
        assert "gpt-image-2" in names and "dall-e-2" in names
        assert (await client.models.retrieve("gpt-image-1")).owned_by == "imagegate"


# The SDK marks create_variation deprecated (OpenAI is retiring dall-e-2); the route stays.
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_sdk_create_variation(env: Env) -> None:
    async with sdk(env) as client:
        resp = await client.images.create_variation(
            image=("in.png", make_image(64, 64), "image/png"), n=2, size="512x512")
        assert resp.data is not None and len(resp.data) == 2
        for item in resp.data:
            assert item.url and item.b64_json is None
            assert image_size(await env.download(item.url)) == (512, 512)
        assert not resp.model_extra
        resp = await client.images.create_variation(
            image=("in.png", make_image(64, 64), "image/png"), model="dall-e-2",
            size="256x256", response_format="b64_json")
        assert resp.data is not None and resp.data[0].b64_json
        assert image_size(base64.b64decode(resp.data[0].b64_json)) == (256, 256)
        with pytest.raises(openai.BadRequestError) as bad:
            await client.images.create_variation(
                image=("in.png", make_image(64, 64), "image/png"), model="gpt-image-1")
        assert bad.value.param == "model"


async def test_sdk_errors(env: Env) -> None:
    async with sdk(env) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.images.generate(model="gpt-image-1", prompt="x",
                                         response_format="b64_json")
        assert bad.value.code == "unknown_parameter" and bad.value.param == "response_format"
        with pytest.raises(openai.BadRequestError) as bad:
            await client.images.generate(model="gpt-image-2", prompt="x", size="1000x1000")
        assert bad.value.param == "size"
        with pytest.raises(openai.NotFoundError):
            await client.images.generate(model="nope", prompt="x")
    async with sdk(env, api_key="ig_wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.images.generate(prompt="x")
    assert await env.task_count() == 0


async def test_sdk_does_not_retry_a_timeout(tmp_path: Path) -> None:
    """The SDK retries 5xx by default; a retry here would start a second generation."""
    async with open_env(tmp_path, sync_wait_seconds=0.2, sandbox_latency=1.0) as env:
        async with sdk(env, max_retries=2) as client:
            with pytest.raises(openai.InternalServerError) as err:
                await client.images.generate(prompt="slow")
        assert err.value.status_code == 504 and err.value.code == "timeout"
        assert await env.task_count() == 1


# ------------------------------------------------------------------ issue 18, via the SDK


async def test_sdk_quality_auto_resolved_fields_and_revised_prompt(env: Env) -> None:
    """A generic OpenAI client's defaults: `quality: auto` works on DALL·E (made as
    standard); a GPT image response names what was made, never `auto`; dall-e-3 alone
    carries a `revised_prompt` (the sandbox's: the prompt with its style spelled out)."""
    async with sdk(env) as client:
        resp = await client.images.generate(model="gpt-image-1", prompt="a fox",
                                            quality="auto", background="auto")
        assert (resp.quality, resp.background, resp.size) == ("medium", "opaque", "1024x1024")
        assert resp.data is not None and resp.data[0].revised_prompt is None
        resp = await client.images.generate(model="gpt-image-1", prompt="a fox",
                                            quality="low", background="transparent")
        assert (resp.quality, resp.background) == ("low", "transparent")
        resp = await client.images.generate(model="dall-e-3", prompt="a fox", quality="auto",
                                            style="natural")
        assert resp.data is not None
        assert resp.data[0].revised_prompt == ("a fox, in a natural style: natural, less "
                                               "hyper-real")
        resp = await client.images.generate(model="dall-e-3", prompt="a fox")
        assert resp.data is not None
        assert resp.data[0].revised_prompt == "a fox, in a vivid style: hyper-real and dramatic"
        resp = await client.images.generate(model="dall-e-2", prompt="a fox", quality="auto",
                                            size="256x256")
        assert resp.data is not None and resp.data[0].revised_prompt is None
    for task_id, quality in await _qualities(env):
        assert quality in ("medium", "low", "standard"), task_id


async def _qualities(env: Env) -> list[tuple[str, str]]:
    """(task id, quality) of every stored task: what was made and billed, never `auto`."""
    rows = await env.backends.db.read(sa.select(tasks.c.id, tasks.c.request))
    return [(row["id"], json.loads(row["request"])["quality"]
             if isinstance(row["request"], str) else row["request"]["quality"])
            for row in rows]


async def test_sdk_stream_on_dalle_and_a_missing_key(env: Env) -> None:
    async with sdk(env) as client:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.images.generate(model="dall-e-3", prompt="x", stream=True,
                                         partial_images=1)
        assert (bad.value.param, bad.value.code) == ("stream", "unsupported_value")
    # The SDK refuses to start without a key; a client behind a proxy that strips it
    # (modelled here by blanking the header) sends none.
    async with sdk(env, default_headers={"Authorization": ""}) as client:
        with pytest.raises(openai.AuthenticationError) as denied:
            await client.images.generate(prompt="x")
        assert denied.value.code == "invalid_api_key"
        assert "didn't provide an API key" in denied.value.message
    assert await env.task_count() == 0
