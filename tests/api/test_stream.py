"""Streaming (SSE) through the in-process app, parsed by hand from the raw bytes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.wiring import build_backends

pytestmark = pytest.mark.anyio


def parse_sse(raw: str) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """(comments, [(event, data)]) of an SSE body."""
    comments: list[str] = []
    events: list[tuple[str, dict[str, Any]]] = []
    for block in raw.split("\n\n"):
        event, data = "", ""
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
        if event:
            events.append((event, json.loads(data)))
    return comments, events


class Client:
    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.auth = {"Authorization": f"Bearer {key}"}

    async def stream(self, body: dict[str, Any], path: str = "/v1/images/generations",
                     **kw: Any) -> tuple[httpx.Response, str]:
        async with self.http.stream("POST", path, json=body, headers=self.auth, **kw) as r:
            text = (await r.aread()).decode()
        return r, text


async def _client(tmp_path: Path, **settings: Any) -> AsyncIterator[Client]:
    s = Settings(data_dir=tmp_path, blob_store="memory", poll_interval_seconds=0.1, **settings)
    svc = await build_backends(s)
    key, _ = await svc.keys.create("stream")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(s, svc)),
                                 base_url="http://t", timeout=30) as http:
        try:
            yield Client(http, key)
        finally:
            await svc.aclose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async for c in _client(tmp_path, sandbox_latency=0.4, stream_keepalive_seconds=0.05):
        yield c


@pytest.mark.parametrize("partials", [1, 2, 3])
async def test_generation_stream_events(client: Client, partials: int) -> None:
    r, raw = await client.stream({"prompt": "stream me", "size": "3:2", "stream": True,
                                  "partial_images": partials, "output_format": "webp"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    task_id = r.headers["x-task-id"]
    assert r.headers["location"] == f"/v1/tasks/{task_id}"
    comments, events = parse_sse(raw)
    assert comments[0] == f"task_id={task_id}"  # the id goes out before anything else
    assert "keep-alive" in comments
    kinds = [e for e, _ in events]
    assert kinds == ["image_generation.partial_image"] * partials + ["image_generation.completed"]
    for i, (_, data) in enumerate(events[:-1]):
        assert data["type"] == "image_generation.partial_image"
        assert data["partial_image_index"] == i
        assert {"b64_json", "created_at", "size", "quality", "background",
                "output_format"} <= set(data)
        img = pyvips.Image.new_from_buffer(base64.b64decode(data["b64_json"]), "")
        assert (img.width, img.height) == (1536, 1024)  # previews are full-size too
    final = events[-1][1]
    assert final["size"] == "1536x1024" and final["output_format"] == "webp"
    assert set(final["usage"]) >= {"input_tokens", "output_tokens", "total_tokens"}
    assert base64.b64decode(final["b64_json"])[8:12] == b"WEBP"
    # Partial images get sharper: each differs from the final image until the last event.
    assert events[0][1]["b64_json"] != final["b64_json"]


async def test_edit_stream_uses_image_edit_events(client: Client, tmp_path: Path) -> None:
    blue = pyvips.Image.black(32, 32) + [0, 0, 255]  # noqa: RUF005 - pixel arithmetic
    png = blue.cast("uchar").write_to_buffer(".png")
    async with client.http.stream(
        "POST", "/v1/images/edits", headers=client.auth,
        files=[("image", ("a.png", png, "image/png"))],
        data={"prompt": "edit", "stream": "true", "partial_images": "1"},
    ) as r:
        raw = (await r.aread()).decode()
    _, events = parse_sse(raw)
    assert [e for e, _ in events] == ["image_edit.partial_image", "image_edit.completed"]


async def test_stream_without_partials_is_refused(client: Client) -> None:
    r = await client.http.post("/v1/images/generations", headers=client.auth,
                               json={"prompt": "x", "stream": True})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Streaming must have non-zero partial images",
                                 "type": "invalid_request_error", "param": "partial_images",
                                 "code": None}


async def test_events_name_what_is_made_never_auto(client: Client) -> None:
    """Issue 18: `quality`/`background` in every event are what is made (003's enums)."""
    _, raw = await client.stream({"prompt": "x", "stream": True, "partial_images": 1})
    _, events = parse_sse(raw)
    assert [(d["quality"], d["background"]) for _, d in events] == [("medium", "opaque")] * 2
    _, raw = await client.stream({"model": "gpt-image-1", "prompt": "x", "stream": True,
                                  "partial_images": 1, "quality": "low",
                                  "background": "transparent"})
    _, events = parse_sse(raw)
    assert [(d["quality"], d["background"]) for _, d in events] == [("low", "transparent")] * 2


# 003: "此参数仅支持 gpt-image-1": DALL·E models do not stream, on /v1 as on /openai/v1.
@pytest.mark.parametrize("path", ["/v1/images/generations", "/openai/v1/images/generations"])
@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2"])
async def test_dalle_models_do_not_stream(client: Client, path: str, model: str) -> None:
    for partials in ({"partial_images": 1}, {}):
        r = await client.http.post(path, headers=client.auth,
                                   json={"model": model, "prompt": "x", "stream": True,
                                         **partials})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == {
            "message": f"Streaming is not supported for the model {model}.",
            "type": "invalid_request_error", "param": "stream", "code": "unsupported_value"}


async def test_failed_task_ends_with_an_error_event(tmp_path: Path) -> None:
    async for c in _client(tmp_path, sandbox_latency=0.1, sandbox_failure_rate=1.0):
        _, raw = await c.stream({"prompt": "x", "stream": True, "partial_images": 1})
        _, events = parse_sse(raw)
        assert events[-1][0] == "error"
        assert events[-1][1]["error"]["type"] == "upstream_error"


async def test_the_task_is_retrievable_after_the_stream(client: Client) -> None:
    r, _ = await client.stream({"prompt": "x", "stream": True, "partial_images": 1})
    task = (await client.http.get(f"/v1/tasks/{r.headers['x-task-id']}",
                                  headers=client.auth)).json()
    assert task["status"] == "succeeded" and task["result"]["data"]
