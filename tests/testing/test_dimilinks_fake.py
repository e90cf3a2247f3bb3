"""FakeDimilinks holds the 000 and 001 seeds' own rules (`dimilinks_rules`), not the
gateway's: the seed's examples and limits are accepted, what it rules out is refused with
its error shape `{"error": {message, type, code}}`."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-fake"}
REF = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 64).decode()


async def submit(body: dict[str, Any]) -> tuple[int, Any, FakeDimilinks]:
    """An async submission (nothing is drawn), as the seed recommends."""
    async with FakeDimilinks() as fake, aiohttp.ClientSession(fake.url) as http:
        async with http.post("/v1/images/generations", params={"async": "true"}, json=body,
                             headers=AUTH) as r:
            return r.status, await r.json(content_type=None), fake


def assert_refused(status: int, body: Any, words: str) -> None:
    assert status == 400, body
    assert set(body["error"]) == {"message", "type", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == ("invalid_request_error",
                                                              "invalid_value")
    assert words in body["error"]["message"]


async def test_the_seeds_examples() -> None:
    examples = [
        {"model": "gpt-image-2", "prompt": "一张赛博朋克风格的猫咪海报", "n": 1, "size": "16:9",
         "resolution": "2k", "output_format": "png"},
        {"model": "gpt-image-2", "prompt": "海边日落电影写真风格", "n": 1, "size": "16:9",
         "resolution": "4k", "image_urls": ["https://example.com/reference.png"]},
        {"model": "gpt-image-2", "prompt": "p", "image_urls": ["https://example.com/ref.png",
                                                             REF]},
        {"prompt": "p", "size": "3840x2160"},
    ]
    for example in examples:
        status, body, _ = await submit(example)
        assert status == 200, body
        assert body["task_id"].startswith("img_") and body["data"] == []


@pytest.mark.parametrize(("size", "resolution", "pixels"), [
    ("3840x2160", "1k", (3840, 2160)),  # pixels are pixels, whatever the tier
    ("1024x1024", None, (1024, 1024)),
    (None, None, (1024, 1024)),  # the seed's default size
    ("16:9", "4k", (3840, 2160)),
    ("21:9", "4k", (3840, 1648)),  # 4k takes extreme ratios too
])
async def test_sizes(size: str | None, resolution: str | None, pixels: tuple[int, int]) -> None:
    body: dict[str, Any] = {"prompt": "p"}
    if size is not None:
        body["size"] = size
    if resolution is not None:
        body["resolution"] = resolution
    status, answer, fake = await submit(body)
    assert status == 200, answer
    task = fake.tasks[answer["task_id"]]
    assert (task.width, task.height) == pixels


@pytest.mark.parametrize(("n", "resolution", "accepted"), [
    (1, "1k", True), (2, "1k", False),  # "1k 档固定为 1"
    (4, "2k", True), (4, "4k", True), (5, "4k", False),  # "2k / 4k 档最多 4"
    (0, "2k", False),
])
async def test_n_per_tier(n: int, resolution: str, accepted: bool) -> None:
    status, body, _ = await submit({"prompt": "p", "n": n, "size": "16:9",
                                    "resolution": resolution})
    if accepted:
        assert status == 200, body
    else:
        assert_refused(status, body, "n must be")


@pytest.mark.parametrize(("extra", "words"), [
    ({"resolution": "8k"}, "resolution must be one of 1k, 2k, 4k"),
    ({"size": "big"}, "size 'big'"),
    ({"output_format": "gif"}, "output_format"),
    ({"background": "none"}, "background"),
    ({"moderation": "high"}, "moderation"),
    ({"prompt": ""}, "prompt is required"),
    ({"image_urls": [REF] * 10}, "image_urls exceeds max 9"),
    # the aliases carry references too, and count towards the same 9
    ({"image_urls": [REF] * 5, "reference_images": [REF] * 5}, "exceeds max 9"),
    ({"image_urls": ["blob:https://example.com/1f2e"]}, "blob:"),
    ({"mask_url": REF}, "mask_url needs at least one reference image"),
])
async def test_what_the_seed_refuses(extra: dict[str, Any], words: str) -> None:
    status, body, fake = await submit({"prompt": "p", **extra})
    assert_refused(status, body, words)
    assert fake.submissions == 0


async def test_nine_references_and_a_mask() -> None:
    status, body, _ = await submit({"prompt": "p", "image_urls": [REF] * 9, "mask_url": REF})
    assert status == 200, body


async def edit(fields: dict[str, str], files: list[str]) -> tuple[int, Any]:
    async with FakeDimilinks() as fake, aiohttp.ClientSession(fake.url) as http:
        form = aiohttp.FormData(fields, default_to_multipart=True)
        for name in files:
            form.add_field(name, fake.png(8, 8, name), filename=f"{name}.png",
                           content_type="image/png")
        async with http.post("/v1/images/edits", data=form, headers=AUTH) as r:
            return r.status, await r.json(content_type=None)


@pytest.mark.parametrize("files", [["image"], ["image[]", "image[]"], ["images"],
                                   ["image_1", "image_2"], ["image", "mask"]])
async def test_edit_file_fields_of_the_001_seed(files: list[str]) -> None:
    status, body = await edit({"model": "gpt-image-2", "prompt": "复古胶片风格", "size": "16:9",
                               "resolution": "2k"}, files)
    assert status == 200, body
    assert body["data"][0]["url"].startswith("/p/img/")


@pytest.mark.parametrize("files", [[], ["mask"], ["photo"]])
async def test_edit_needs_an_image_file(files: list[str]) -> None:
    status, body = await edit({"prompt": "p"}, files)
    assert_refused(status, body, "at least one image file is required")
