"""One behaviour suite run through every profile (native `/v1`, `openai` `/openai/v1`,
`apimart` `/apimart/v1`): profiles only present the core, so they must all behave the same.
Each profile has a small adapter saying how to submit, how to get the finished images' bytes
and how to read an error; the tests themselves are written once."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.profiles import Env, image_size, make_image, open_env

pytestmark = pytest.mark.anyio

OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}
PNG = make_image(72, 72)


class Profile:
    """The native adapter; the others override what differs."""

    name = "native"
    prefix = "/v1"

    async def submit(self, env: Env, path: str, **kwargs: Any) -> httpx.Response:
        return await env.client.post(self.prefix + path, **kwargs)

    async def images(self, env: Env, resp: httpx.Response) -> list[bytes]:
        """The bytes of every image a successful submit produced."""
        assert resp.status_code == 200, resp.text
        return [await env.download(item["url"]) for item in resp.json()["data"]]

    def error(self, resp: httpx.Response) -> tuple[str, str]:
        """(type, message) of an error response, after checking the profile's shape."""
        err = resp.json()["error"]
        assert set(err) == OPENAI_ERROR_KEYS, err
        return err["type"], err["message"]


class OpenAIProfile(Profile):
    name = "openai"
    prefix = "/openai/v1"

    async def images(self, env: Env, resp: httpx.Response) -> list[bytes]:
        assert resp.status_code == 200, resp.text
        # GPT image models answer base64; DALL·E a URL unless asked otherwise.
        return [base64.b64decode(item["b64_json"]) if "b64_json" in item
                else await env.download(item["url"]) for item in resp.json()["data"]]


class ApimartProfile(Profile):
    name = "apimart"
    prefix = "/apimart/v1"

    async def images(self, env: Env, resp: httpx.Response) -> list[bytes]:
        assert resp.status_code == 200, resp.text
        data = await env.apimart_wait(resp.json()["data"][0]["task_id"])
        assert data["status"] == "completed", data
        return [await env.download(image["url"][0]) for image in data["result"]["images"]]

    def error(self, resp: httpx.Response) -> tuple[str, str]:
        err = resp.json()["error"]
        assert set(err) == {"code", "message", "type"}, err
        assert err["code"] == resp.status_code
        return err["type"], err["message"]


PROFILES = [Profile(), OpenAIProfile(), ApimartProfile()]


@pytest.fixture(params=PROFILES, ids=lambda p: p.name)
def profile(request: pytest.FixtureRequest) -> Profile:
    chosen: Profile = request.param
    return chosen


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as e:
        yield e


@pytest.mark.parametrize(("fields", "size"), [
    ({"size": "16:9", "resolution": "2k"}, (2048, 1152)),
    ({"size": "1536x1024"}, (1536, 1024)),
    ({"size": "9:21", "resolution": "1k"}, (864, 2016)),
    ({}, (1024, 1024)),
])
async def test_generation_has_exactly_the_size(env: Env, profile: Profile,
                                               fields: dict[str, Any],
                                               size: tuple[int, int]) -> None:
    resp = await profile.submit(env, "/images/generations", headers=env.auth,
                                json={"prompt": "a lighthouse", **fields})
    [image] = await profile.images(env, resp)
    assert image_size(image) == size


async def test_n_images(env: Env, profile: Profile) -> None:
    resp = await profile.submit(env, "/images/generations", headers=env.auth,
                                json={"prompt": "three", "n": 3, "size": "1024x1024"})
    images = await profile.images(env, resp)
    assert len(images) == 3 and len(set(images)) == 3  # three different renders
    assert all(image_size(i) == (1024, 1024) for i in images)


async def test_edit_with_an_uploaded_image(env: Env, profile: Profile) -> None:
    resp = await profile.submit(env, "/images/edits", headers=env.auth,
                                data={"prompt": "paint it", "size": "1024x1536"},
                                files={"image": ("in.png", PNG, "image/png")})
    [image] = await profile.images(env, resp)
    assert image_size(image) == (1024, 1536)


@pytest.mark.parametrize(("body", "status", "kind", "mentions"), [
    ({"prompt": "x", "size": "1000x1000"}, 400, "invalid_request_error", "1000x1000"),
    ({"prompt": "x", "size": "7:5"}, 400, "invalid_request_error", "7:5"),
    ({"prompt": "x", "model": "no-such-model"}, 404, "invalid_request_error", "no-such-model"),
    ({"size": "1:1"}, 400, "invalid_request_error", "prompt"),
    ({"prompt": "   "}, 400, "invalid_request_error", "prompt"),
    ({"prompt": "x", "n": 0}, 400, "invalid_request_error", "'n'"),
    ({"prompt": "x", "n": "2"}, 400, "invalid_request_error", "'n'"),
    ({"prompt": "x", "n": 5, "resolution": "4k"}, 400, "invalid_request_error", "'n'"),
    ({"prompt": "x", "output_format": "gif"}, 400, "invalid_request_error", "output_format"),
])
async def test_bad_fields_write_nothing(env: Env, profile: Profile, body: dict[str, Any],
                                        status: int, kind: str, mentions: str) -> None:
    resp = await profile.submit(env, "/images/generations", headers=env.auth, json=body)
    assert resp.status_code == status, resp.text
    err_type, message = profile.error(resp)
    assert err_type == kind and mentions in message
    assert await env.task_count() == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ig_not_a_key"},
                                     {"Authorization": "Basic abc"}])
async def test_bad_key(env: Env, profile: Profile, headers: dict[str, str]) -> None:
    for path in ("/images/generations", "/images/edits"):
        resp = await profile.submit(env, path, headers=headers, json={"prompt": "x"})
        assert resp.status_code == 401
        assert profile.error(resp)[0] == "authentication_error"
        assert "ig_not_a_key" not in resp.text
    assert await env.task_count() == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"x-api-key": ""}])
async def test_a_missing_key_is_invalid_api_key(env: Env, profile: Profile,
                                                headers: dict[str, str]) -> None:
    """The 004 seed's one 401 code, `invalid_api_key`, with a message that says the key is
    missing (the apimart shape has the status as its code, as for every error there)."""
    resp = await profile.submit(env, "/images/generations", headers=headers,
                                json={"prompt": "x"})
    assert resp.status_code == 401
    kind, message = profile.error(resp)
    assert kind == "authentication_error" and "didn't provide an API key" in message
    if profile.name != "apimart":
        assert resp.json()["error"]["code"] == "invalid_api_key"
    assert await env.task_count() == 0


# 003: "auto（默认值）将自动为给定模型选择最佳质量": `quality: auto` for every model.
@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2", "gpt-image-1", "gpt-image-2"])
async def test_quality_auto_for_every_model(env: Env, profile: Profile, model: str) -> None:
    resp = await profile.submit(env, "/images/generations", headers=env.auth,
                                json={"model": model, "prompt": "x", "quality": "auto",
                                      "size": "1024x1024"})
    [image] = await profile.images(env, resp)
    assert image_size(image) == (1024, 1024)


async def test_edit_without_an_image(env: Env, profile: Profile) -> None:
    resp = await profile.submit(env, "/images/edits", headers=env.auth,
                                data={"prompt": "paint it"},
                                files={"unrelated": ("x.txt", b"x", "text/plain")})
    assert resp.status_code == 400
    assert profile.error(resp)[0] == "invalid_request_error"
    assert await env.task_count() == 0


async def test_undecodable_upload(env: Env, profile: Profile) -> None:
    resp = await profile.submit(env, "/images/edits", headers=env.auth,
                                data={"prompt": "paint it"},
                                files={"image": ("in.png", b"not an image", "image/png")})
    assert resp.status_code == 400
    assert "image" in profile.error(resp)[1]
    assert await env.task_count() == 0


async def test_edit_with_an_unreadable_content_type(env: Env, profile: Profile) -> None:
    resp = await profile.submit(env, "/images/edits", content=b"prompt=x",
                                headers={**env.auth, "Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert "Content-Type" in profile.error(resp)[1]
    assert await env.task_count() == 0
