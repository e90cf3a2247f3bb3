"""FakeOpenAI holds the 003 and 004 seeds' own rules (`openai_rules`), not the gateway's: the
sizes and parameters those seeds list are accepted, the ones they rule out are refused, in
OpenAI's error shape `{"error": {message, type, param, code}}`."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import aiohttp
import pytest

from imagegate.testing.upstreams.openai_api import FakeOpenAI, variation_seed

pytestmark = pytest.mark.anyio

AUTH = {"Authorization": "Bearer sk-fake"}


async def generate(body: dict[str, Any]) -> tuple[int, Any]:
    """(status, JSON answer); a streamed answer as its list of (event, data)."""
    async with FakeOpenAI() as fake, aiohttp.ClientSession(fake.url) as http:
        async with http.post("/v1/images/generations", json=body, headers=AUTH) as r:
            if r.content_type == "text/event-stream":
                return r.status, sse_events(await r.text())
            return r.status, await r.json(content_type=None)


def sse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


async def test_streams_like_the_images_api() -> None:
    status, events = await generate({"model": "gpt-image-1", "prompt": "p", "n": 2,
                                     "stream": True, "partial_images": 2})
    assert status == 200
    assert [e for e, _ in events] == (["image_generation.partial_image"] * 2
                                      + ["image_generation.completed"]) * 2
    for name, data in events:
        assert data["type"] == name
        assert {"b64_json", "created_at", "size", "quality", "background",
                "output_format"} <= set(data)
        if name.endswith("partial_image"):
            assert data["partial_image_index"] in (0, 1)
        else:
            assert set(data["usage"]) >= {"input_tokens", "output_tokens", "total_tokens"}


def assert_refused(status: int, body: Any, param: str | None,
                   code: str | None = "invalid_value") -> dict[str, Any]:
    assert status == 400, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param,
                                                              code)
    return error


# ---------------------------------------------------------------- gpt-image-2 (004)

@pytest.mark.parametrize(("size", "rendered"), [
    # 004's size table
    ("1024x1024", "1024x1024"), ("1536x1024", "1536x1024"), ("1024x1536", "1024x1536"),
    ("2048x2048", "2048x2048"), ("2048x1152", "2048x1152"), ("3840x2160", "3840x2160"),
    ("2160x3840", "2160x3840"), ("auto", "1024x1024"),
    # custom sizes at the edges of 004's rules
    ("1024x640", "1024x640"),  # exactly 655 360 pixels
    ("2864x960", "2864x960"),  # 2.98:1, just under 3:1
    ("1280x720", "1280x720"),
])
async def test_gpt_image_2_sizes_the_seed_allows(size: str, rendered: str) -> None:
    status, body = await generate({"model": "gpt-image-2", "prompt": "p", "size": size})
    assert status == 200, body
    assert body["size"] == rendered


@pytest.mark.parametrize(("size", "why"), [
    ("1000x1000", "multiple of 16"),
    ("3856x2176", "at most 3840"),
    ("3072x1024", "less than 3:1"),  # 004 says "< 3:1": exactly 3:1 is out
    ("1024x3072", "less than 3:1"),
    ("1008x640", "between 655360 and 8294400"),
    ("3840x2176", "between 655360 and 8294400"),
    ("1024X1024", "WxH"),
    ("1024*1024", "WxH"),
    ("16:9", "WxH"),
])
async def test_gpt_image_2_sizes_the_seed_refuses(size: str, why: str) -> None:
    status, body = await generate({"model": "gpt-image-2-pro", "prompt": "p", "size": size})
    error = assert_refused(status, body, "size")
    assert size in error["message"] and why in error["message"]


async def test_gpt_image_2_has_no_transparent_background() -> None:
    status, body = await generate({"model": "gpt-image-2", "prompt": "p",
                                   "background": "transparent"})
    assert_refused(status, body, "background")


async def test_stream_needs_partial_images_word_for_word() -> None:
    status, body = await generate({"model": "gpt-image-2", "prompt": "p", "stream": True})
    assert status == 400
    assert body == {"error": {"message": "Streaming must have non-zero partial images",
                              "type": "invalid_request_error", "param": None, "code": None}}
    status, body = await generate({"model": "gpt-image-2", "prompt": "p", "stream": True,
                                   "partial_images": 4})
    assert_refused(status, body, "partial_images")


async def test_response_format_is_unknown_to_gpt_image_models() -> None:
    status, body = await generate({"model": "gpt-image-2", "prompt": "p",
                                   "response_format": "url"})
    assert_refused(status, body, "response_format", "unknown_parameter")


async def test_the_seeds_gpt_image_2_examples() -> None:
    for body in ({"model": "gpt-image-2", "prompt": "A sharp product hero image",
                  "size": "1024x1024", "quality": "high", "n": 1},
                 {"model": "gpt-image-2", "prompt": "a white desk lamp", "size": "1536x1024",
                  "quality": "medium", "output_format": "webp"}):
        status, answer = await generate(body)
        assert status == 200, answer
        assert answer["output_format"] == body.get("output_format", "png")


@pytest.mark.parametrize(("body", "quality", "background"), [
    ({}, "high", "opaque"),  # auto made high, as the 003 seed's response example shows
    ({"quality": "auto", "background": "auto"}, "high", "opaque"),
    ({"quality": "low", "background": "opaque"}, "low", "opaque"),
    ({"model": "gpt-image-1", "quality": "medium", "background": "transparent"},
     "medium", "transparent"),
])
async def test_gpt_image_answers_report_what_was_made(body: dict[str, Any], quality: str,
                                                      background: str) -> None:
    """003's `ImagesResponse`: quality low|medium|high, background transparent|opaque."""
    status, answer = await generate({"model": "gpt-image-2", "prompt": "p", **body})
    assert status == 200, answer
    assert (answer["quality"], answer["background"]) == (quality, background)


# ---------------------------------------------------------------- enumerated sizes (003)

@pytest.mark.parametrize(("model", "size"), [
    ("gpt-image-1", "1024x1024"), ("gpt-image-1", "1536x1024"), ("gpt-image-1", "1024x1536"),
    ("gpt-image-1", "auto"),
    ("dall-e-3", "1024x1024"), ("dall-e-3", "1792x1024"), ("dall-e-3", "1024x1792"),
    ("dall-e-2", "256x256"), ("dall-e-2", "512x512"), ("dall-e-2", "1024x1024"),
])
async def test_enumerated_sizes_the_seed_lists(model: str, size: str) -> None:
    status, body = await generate({"model": model, "prompt": "p", "size": size})
    assert status == 200, body


@pytest.mark.parametrize(("model", "size"), [
    ("gpt-image-1", "2048x2048"), ("gpt-image-1", "1792x1024"), ("gpt-image-1.5", "1280x720"),
    ("dall-e-3", "1536x1024"), ("dall-e-3", "512x512"), ("dall-e-3", "auto"),
    ("dall-e-2", "1792x1024"), ("dall-e-2", "auto"),
])
async def test_enumerated_sizes_the_seed_does_not_list(model: str, size: str) -> None:
    status, body = await generate({"model": model, "prompt": "p", "size": size})
    error = assert_refused(status, body, "size")
    assert error["message"] == f"Invalid size '{size}' for {model}."


# ---------------------------------------------------------------- other parameters (003)

async def test_the_seeds_dalle_examples() -> None:
    examples = [
        {"model": "dall-e-3", "prompt": "一只可爱的小猫", "n": 1, "size": "1024x1024"},
        {"model": "dall-e-3", "prompt": "未来主义城市天际线", "n": 1, "size": "1792x1024",
         "quality": "hd", "style": "vivid"},
        {"model": "dall-e-2", "prompt": "抽象艺术", "n": 4, "size": "256x256"},
    ]
    for example in examples:
        status, body = await generate(example)
        assert status == 200, body
        assert len(body["data"]) == example["n"]


@pytest.mark.parametrize(("body", "param", "code"), [
    ({"model": "dall-e-3", "n": 2, "size": "1024x1024"}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "n": 11}, "n", "invalid_value"),
    ({"model": "dall-e-2", "n": 0, "size": "256x256"}, "n", "invalid_value"),
    ({"model": "gpt-image-1", "n": "two"}, "n", "invalid_type"),
    ({"model": "gpt-image-1", "quality": "hd"}, "quality", "invalid_value"),
    ({"model": "dall-e-3", "quality": "high", "size": "1024x1024"}, "quality", "invalid_value"),
    ({"model": "dall-e-2", "quality": "hd", "size": "256x256"}, "quality", "invalid_value"),
    ({"model": "dall-e-3", "style": "bold", "size": "1024x1024"}, "style", "invalid_value"),
    ({"model": "dall-e-3", "response_format": "png", "size": "1024x1024"}, "response_format",
     "invalid_value"),
    ({"model": "dall-e-3", "background": "opaque", "size": "1024x1024"}, "background",
     "unknown_parameter"),
    ({"model": "dall-e-2", "style": "vivid", "size": "256x256"}, "style", "unknown_parameter"),
    ({"model": "gpt-image-1", "output_format": "gif"}, "output_format", "invalid_value"),
    ({"model": "gpt-image-1", "output_compression": 101}, "output_compression",
     "invalid_value"),
    ({"model": "gpt-image-1", "moderation": "high"}, "moderation", "invalid_value"),
    ({"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"},
     "background", "invalid_value"),
    ({"model": "gpt-image-1", "prompt": ""}, "prompt", "missing_required_parameter"),
])
async def test_parameters_the_seed_refuses(body: dict[str, Any], param: str, code: str) -> None:
    status, answer = await generate({"prompt": "p", **body})
    assert_refused(status, answer, param, code)


@pytest.mark.parametrize(("model", "limit"), [("dall-e-2", 1000), ("dall-e-3", 4000),
                                              ("gpt-image-1", 32000)])
async def test_prompt_length_per_model(model: str, limit: int) -> None:
    size = "256x256" if model == "dall-e-2" else "1024x1024"
    status, body = await generate({"model": model, "prompt": "x" * limit, "size": size})
    assert status == 200, body
    status, body = await generate({"model": model, "prompt": "x" * (limit + 1), "size": size})
    assert_refused(status, body, "prompt", "string_above_max_length")


@pytest.mark.parametrize("body", [
    {"model": "dall-e-2", "quality": "auto", "size": "256x256"},  # auto: every model's default
    {"model": "dall-e-3", "quality": "auto", "size": "1024x1024"},
    {"model": "gpt-image-1.5", "background": "transparent", "output_format": "webp"},
    {"model": "gpt-image-1", "output_format": "jpeg", "output_compression": 0},
    {"model": "gpt-image-1", "stream": True, "partial_images": 3},
])
async def test_parameters_the_seed_allows(body: dict[str, Any]) -> None:
    status, answer = await generate({"prompt": "p", **body})
    assert status == 200, answer


async def test_unknown_model_is_a_404() -> None:
    status, body = await generate({"model": "gpt-image-9", "prompt": "p"})
    assert status == 404
    assert body["error"]["code"] == "model_not_found"


# ---------------------------------------------------------------- variations (dall-e-2)

def square_png(fake: FakeOpenAI, width: int = 32, height: int = 32) -> bytes:
    return fake.png(width, height, "source")


async def vary(fields: dict[str, str], image: bytes | str | None = "square",
               content_type: str = "image/png") -> tuple[int, Any, FakeOpenAI]:
    async with FakeOpenAI() as fake, aiohttp.ClientSession(fake.url) as http:
        form = aiohttp.FormData()
        for key, value in fields.items():
            form.add_field(key, value)
        data = square_png(fake) if image == "square" else image
        if isinstance(data, bytes):
            # A stream: aiohttp warns about (and the suite errors on) bytes bodies over 1 MiB.
            form.add_field("image", io.BytesIO(data), filename="in.png",
                           content_type=content_type)
        async with http.post("/v1/images/variations", data=form, headers=AUTH) as r:
            return r.status, await r.json(content_type=None), fake


async def test_variation_answers_n_images_seeded_by_the_input() -> None:
    status, body, fake = await vary({"n": "2", "size": "256x256",
                                     "response_format": "b64_json"})
    assert status == 200, body
    assert set(body) == {"created", "data"} and len(body["data"]) == 2
    source = square_png(fake)
    expected = [fake.png(256, 256, variation_seed(source, i)) for i in range(2)]
    assert [base64.b64decode(d["b64_json"]) for d in body["data"]] == expected
    status, body, _ = await vary({})  # dall-e-2, 1024x1024, one URL by default
    assert status == 200 and set(body["data"][0]) == {"url"}


@pytest.mark.parametrize(("fields", "param", "code"), [
    ({"model": "dall-e-3"}, "model", "invalid_value"),
    ({"model": "gpt-image-1"}, "model", "invalid_value"),
    ({"prompt": "p"}, "prompt", "unknown_parameter"),
    ({"quality": "standard"}, "quality", "unknown_parameter"),
    ({"n": "11"}, "n", "invalid_value"),
    ({"n": "x"}, "n", "invalid_type"),
    ({"size": "1792x1024"}, "size", "invalid_value"),
    ({"response_format": "data_url"}, "response_format", "invalid_value"),
])
async def test_variation_fields_the_seed_refuses(fields: dict[str, str], param: str,
                                                 code: str) -> None:
    status, body, fake = await vary(fields)
    assert_refused(status, body, param, code)
    assert fake.submissions == 0


async def test_variation_unknown_model_is_a_404() -> None:
    status, body, _ = await vary({"model": "dall-e-9"})
    assert status == 404 and body["error"]["code"] == "model_not_found"


async def test_variation_image_must_be_a_square_png_under_4_mb() -> None:
    async with FakeOpenAI() as fake:
        wide = fake.png(48, 32, "wide")
    jpeg = b"\xff\xd8\xff\xe0" + b"\0" * 32
    for image, why in ((wide, "square"), (jpeg, "PNG"),
                       (b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * 1024 * 1024), "PNG")):
        status, body, _ = await vary({}, image=image)
        error = assert_refused(status, body, "image", "invalid_image")
        assert why in error["message"]
    status, body, _ = await vary({"n": "1"}, image=None)
    assert_refused(status, body, "image", "missing_required_parameter")


@pytest.mark.parametrize("body", [
    {"model": "gpt-image-1", "prompt": "p", "n": 2},
    {"model": "dall-e-3", "prompt": "p", "size": "1024x1024", "response_format": "b64_json"},
    {"model": "gpt-image-1", "prompt": "p", "stream": True, "partial_images": 1},
])
async def test_a_fixed_image_is_answered_whole_from_its_shared_copy(body: dict[str, Any]) -> None:
    """bench_relay's fake answers one fixed image, written in slices from one shared copy:
    the answer is the same JSON, with a Content-Length, the image byte for byte."""
    image = bytes(range(256)) * 1000 + b"tail"  # 256,004 bytes: several 64 KiB slices
    async with FakeOpenAI(fixed_image=image) as fake, aiohttp.ClientSession(fake.url) as http:
        async with http.post("/v1/images/generations", json=body, headers=AUTH) as r:
            assert r.status == 200
            raw = await r.read()
            if r.content_type == "text/event-stream":
                done = [d for e, d in sse_events(raw.decode()) if e.endswith("completed")]
                assert [base64.b64decode(d["b64_json"]) for d in done] == [image]
                return
            assert r.content_length == len(raw)
    answer = json.loads(raw)
    assert [base64.b64decode(item["b64_json"]) for item in answer["data"]] == \
        [image] * body.get("n", 1)
    if body["model"] == "dall-e-3":
        assert answer["data"][0]["revised_prompt"] == "revised: p"
