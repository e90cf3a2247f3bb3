"""Streaming against a real server: the official SDK's streaming API, and a client that
disconnects mid-stream without losing its task."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.support.e2e import Server, ServerFactory, decode_image

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def slow_server(module_server_factory: ServerFactory) -> Server:
    return module_server_factory.start({"IMAGEGATE_SANDBOX_LATENCY": "1.2",
                                        "IMAGEGATE_STREAM_KEEPALIVE_SECONDS": "0.2"})


def _sdk(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/v1", api_key=server.key, max_retries=0)


def test_sdk_streams_partials_then_the_image(slow_server: Server) -> None:
    with _sdk(slow_server) as client:
        stream = client.images.generate(model="gpt-image-2", prompt="a lighthouse at dusk",
                                        size="1024x1024", stream=True, partial_images=2)
        events = list(stream)
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + [
        "image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]  # type: ignore[union-attr]
    final = events[-1]
    assert final.type == "image_generation.completed" and final.usage.total_tokens > 0
    import base64

    image = decode_image(base64.b64decode(final.b64_json))
    assert (image.width, image.height) == (1024, 1024)


def test_sdk_stream_errors(slow_server: Server) -> None:
    with _sdk(slow_server) as client, pytest.raises(openai.BadRequestError) as info:
        client.images.generate(model="gpt-image-2", prompt="x", stream=True)
    assert "non-zero partial images" in str(info.value)


def test_disconnect_mid_stream_keeps_the_task(slow_server: Server) -> None:
    with httpx.Client(base_url=slow_server.base_url, timeout=30) as http:
        with http.stream("POST", "/v1/images/generations", headers=slow_server.headers(),
                         json={"prompt": "walk away", "stream": True,
                               "partial_images": 3}) as r:
            task_id = r.headers["x-task-id"]
            first = next(r.iter_lines())
            assert first == f": task_id={task_id}"
        # The connection is closed here, long before the image is done.
        deadline = time.monotonic() + 20
        status = ""
        while time.monotonic() < deadline:
            body = http.get(f"/v1/tasks/{task_id}", headers=slow_server.headers()).json()
            status = body["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert status == "succeeded"
        url = body["result"]["data"][0]["url"]
        assert decode_image(http.get(url).content).width == 1024
