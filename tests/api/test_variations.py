"""`POST /v1/images/variations` in process (the real app, the sandbox, SQLite, local blobs):
the native answers, every async trigger, the task object, billing, idempotency, and a 400
naming the field for every variation rule, leaving nothing behind."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.accounts import App, bearer, open_app
from tests.support.profiles import data_url, image_size, make_image

pytestmark = pytest.mark.anyio

ROUTE = "/v1/images/variations"
SQUARE = make_image(64, 64, colour=(200, 40, 40))
OTHER = make_image(64, 64, colour=(40, 40, 200))

Files = list[tuple[str, tuple[str, bytes, str]]]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with open_app(tmp_path, blob_store="local") as a:
        yield a


def blob_files(app: App) -> list[Path]:
    return [p for p in app.backends.settings.effective_blob_dir.rglob("*") if p.is_file()]


async def vary(app: App, key: str, data: dict[str, str] | None = None,
               files: Files | None = None, query: str = "",
               headers: dict[str, str] | None = None) -> httpx.Response:
    files = [("image", ("in.png", SQUARE, "image/png"))] if files is None else files
    return await app.client.post(f"{ROUTE}{query}", data=data or {}, files=files,
                                 headers={**bearer(key), **(headers or {})})


async def test_sync_variation_answers_the_native_body(app: App) -> None:
    key, _ = await app.key()
    r = await vary(app, key, {"n": "2", "size": "256x256"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["task_id"].startswith("img_")
    assert body["size"] == "256x256" and body["output_format"] == "png"
    assert len(body["data"]) == 2
    images = []
    for item in body["data"]:
        assert item["file_id"].startswith("file_")
        got = await app.client.get(item["url"])
        assert got.status_code == 200
        assert image_size(got.content) == (256, 256)
        images.append(got.content)
    assert images[0] != images[1]  # each variation is its own
    task = await app.task(key, body["task_id"])
    assert task["status"] == "succeeded" and task["model"] == "dall-e-2"
    assert task["result"]["data"][0]["file_id"] == body["data"][0]["file_id"]
    row = await app.backends.store.get(body["task_id"])
    assert row is not None and row.operation == "variation"
    assert row.request["prompt"] == "" and len(row.request["reference_images"]) == 1


@pytest.mark.parametrize(("query", "data", "headers"), [
    ("?async=true", {}, {}),
    ("?wait_for_result=false", {}, {}),
    ("", {}, {"Prefer": "respond-async"}),
    ("", {"wait_for_result": "false"}, {}),
], ids=["async", "wait_for_result-query", "prefer", "wait_for_result-field"])
async def test_every_async_trigger(app: App, query: str, data: dict[str, str],
                                   headers: dict[str, str]) -> None:
    key, _ = await app.key()
    r = await vary(app, key, {"size": "512x512", **data}, query=query, headers=headers)
    assert r.status_code == 202, r.text
    task_id = r.json()["task_id"]
    assert r.json()["data"] == []
    assert r.headers["location"] == f"/v1/tasks/{task_id}"
    assert r.headers["retry-after"]
    task = await app.wait_terminal(key, task_id)
    assert task["status"] == "succeeded", task
    assert task["result"]["size"] == "512x512"
    got = await app.client.get(task["result"]["data"][0]["url"])
    assert image_size(got.content) == (512, 512)


async def test_b64_json_and_a_json_body(app: App) -> None:
    key, _ = await app.key()
    r = await vary(app, key, {"response_format": "b64_json", "size": "256x256"})
    assert r.status_code == 200, r.text
    raw = base64.b64decode(r.json()["data"][0]["b64_json"])
    assert image_size(raw) == (256, 256)
    # The image as a data: URL in a JSON body works too (as on edits).
    r = await app.client.post(ROUTE, json={"image": data_url(SQUARE), "size": "256x256",
                                           "response_format": "b64_json"},
                              headers=bearer(key))
    assert r.status_code == 200, r.text
    assert base64.b64decode(r.json()["data"][0]["b64_json"]) == raw  # deterministic


async def test_the_variation_derives_from_its_input(app: App) -> None:
    key, _ = await app.key()
    outs = []
    for image in (SQUARE, OTHER):
        r = await vary(app, key, {"response_format": "b64_json", "size": "256x256"},
                       files=[("image", ("in.png", image, "image/png"))])
        outs.append(r.json()["data"][0]["b64_json"])
    assert outs[0] != outs[1]


async def test_charged_per_image_and_idempotent(app: App) -> None:
    key, api_key = await app.key(balance=1_000_000)
    price = app.price("dall-e-2", "1k", "standard")
    assert price > 0
    headers = {"Idempotency-Key": "var-1"}
    first = await vary(app, key, {"n": "3", "size": "256x256"}, headers=headers)
    assert first.status_code == 200, first.text
    again = await vary(app, key, {"n": "3", "size": "256x256"}, headers=headers)
    assert again.json()["task_id"] == first.json()["task_id"]
    assert await app.task_count(api_key.id) == 1
    assert await app.balance(api_key.id) == 1_000_000 - 3 * price


ERRORS: list[tuple[str, dict[str, str], Files | None, int, str, str | None]] = [
    ("gpt model", {"model": "gpt-image-2"}, None, 400, "model", "unsupported_model"),
    ("dall-e-3", {"model": "dall-e-3"}, None, 400, "model", "unsupported_model"),
    ("unknown model", {"model": "dall-e-9"}, None, 404, "model", "model_not_found"),
    ("other file", {"size": "256x256"}, [("note", ("n.txt", b"x", "text/plain"))], 400,
     "note", "unknown_file_field"),
    ("two images", {}, [("image", ("a.png", SQUARE, "image/png")),
                        ("image", ("b.png", OTHER, "image/png"))], 400, "image", None),
    ("mask", {}, [("image", ("a.png", SQUARE, "image/png")),
                  ("mask", ("m.png", SQUARE, "image/png"))], 400, "mask", None),
    ("n 0", {"n": "0"}, None, 400, "n", None),
    ("n 11", {"n": "11"}, None, 400, "n", None),
    ("n text", {"n": "two"}, None, 400, "n", "invalid_type"),
    ("size", {"size": "1792x1024"}, None, 400, "size", None),
    ("response_format", {"response_format": "jpeg"}, None, 400, "response_format", None),
    ("stream", {"stream": "true", "partial_images": "1"}, None, 400, "stream", None),
    ("corrupt image", {}, [("image", ("a.png", SQUARE[:40], "image/png"))], 400, "image[0]",
     "corrupt_image"),
]


@pytest.mark.parametrize(("name", "data", "files", "status", "param", "code"), ERRORS,
                         ids=[e[0] for e in ERRORS])
async def test_bad_variations_name_the_field_and_leave_nothing(
        app: App, name: str, data: dict[str, str], files: Files | None, status: int,
        param: str, code: str | None) -> None:
    key, api_key = await app.key(balance=1_000_000)
    r = await vary(app, key, data, files=files)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    assert await app.task_count() == 0
    assert blob_files(app) == []
    assert await app.balance(api_key.id) == 1_000_000


async def test_missing_image_is_a_400_naming_image(app: App) -> None:
    key, _ = await app.key()
    r = await app.client.post(ROUTE, files=[("n", (None, b"1"))], headers=bearer(key))
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "image"
    assert r.json()["error"]["code"] == "missing_required_parameter"
    r = await app.client.post(ROUTE, json={"size": "256x256"}, headers=bearer(key))
    assert (r.status_code, r.json()["error"]["param"]) == (400, "image")
    assert await app.task_count() == 0


async def test_models_show_the_capability(app: App) -> None:
    key, _ = await app.key()
    r = await app.client.get("/v1/models", headers=bearer(key))
    caps: dict[str, Any] = {m["id"]: m["capabilities"] for m in r.json()["data"]}
    assert caps["dall-e-2"]["variations"] is True
    assert {name for name, c in caps.items() if c["variations"]} == {"dall-e-2"}
