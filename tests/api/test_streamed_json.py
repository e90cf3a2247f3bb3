"""`json_response` streams stored images' base64 into JSON bodies: the bytes are exactly the
whole body's `orjson.dumps` for every size around the piece and blob-chunk boundaries, and
the routes that answer base64 (native sync, the openai profile, task polls) send it."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from starlette.types import Message

from imagegate.api import responses
from imagegate.api.profiles import native
from imagegate.api.responses import InlineImage, json_response
from imagegate.db.database import read_scalar
from imagegate.db.tables import tasks
from imagegate.domain.task import StoredImage
from imagegate.storage import obstore_store
from imagegate.storage.base import BlobNotFoundError, BlobStore
from imagegate.storage.links import ResultLinks, data_url_head
from imagegate.storage.obstore_store import ObstoreBlobStore
from imagegate.storage.signing import UrlSigner
from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio

_BLOB_CHUNK = obstore_store._CHUNK
SIZES = sorted({0, 1, 2, 3, 4, 5, 6, 7,
                *(base + d for base in (responses._PIECE, _BLOB_CHUNK, 2 * _BLOB_CHUNK)
                  for d in (-3, -2, -1, 0, 1, 2, 3)),
                2_188_475})


@pytest.fixture(params=["memory", "local"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return ObstoreBlobStore.memory()
    return ObstoreBlobStore.local(tmp_path)


def links_for(blobs: BlobStore) -> ResultLinks:
    return ResultLinks(UrlSigner(b"0123456789abcdef0123", 3600), blobs)


async def stored(blobs: BlobStore, size: int, name: str = "x") -> tuple[StoredImage, bytes]:
    data = os.urandom(size)
    key = f"tasks/t/{name}-{size}.png"
    await blobs.put(key, data, "image/png")
    return StoredImage(key=key, content_type="image/png", size=size, etag="e", width=1,
                       height=1), data


async def sent(body: Any) -> tuple[dict[bytes, bytes], list[bytes]]:
    response = await json_response(body, headers={"x-extra": "1"})
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    await response({"type": "http"}, receive, send)
    assert messages[0]["type"] == "http.response.start"
    headers = dict(messages[0]["headers"])
    assert messages[-1].get("more_body", False) is False
    return headers, [m["body"] for m in messages[1:]]


async def test_bytes_are_the_whole_bodys_for_every_size(blobs: BlobStore) -> None:
    links = links_for(blobs)
    for size in SIZES:
        image, data = await stored(blobs, size)
        b64 = base64.b64encode(data).decode()
        streamed = {"created": 1, "data": [{"b64_json": InlineImage(links, image),
                                            "revised_prompt": "a \"quoted\" cat"}]}
        whole = {"created": 1, "data": [{"b64_json": b64,
                                         "revised_prompt": "a \"quoted\" cat"}]}
        headers, pieces = await sent(streamed)
        body = b"".join(pieces)
        assert body == orjson.dumps(whole), size
        assert headers[b"content-length"] == str(len(body)).encode()
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"x-extra"] == b"1"
        # Pieces stay small: one send never carries the whole image.
        assert max(map(len, pieces)) <= responses._PIECE // 3 * 4 + 200
        assert all(len(piece) < 128 * 1024 for piece in pieces)


async def test_several_images_and_data_urls_in_one_body(blobs: BlobStore) -> None:
    links = links_for(blobs)
    sizes = (0, 1, 2, responses._PIECE + 1, _BLOB_CHUNK + 2)
    images = [await stored(blobs, size, f"n{i}") for i, size in enumerate(sizes)]
    streamed = {"data": [{"b64_json": InlineImage(links, image), "i": i}
                         for i, (image, _) in enumerate(images)],
                "urls": [InlineImage(links, image, data_url_head(image))
                         for image, _ in images],
                "after": [1, 2.5, None, "tail"]}
    whole = {"data": [{"b64_json": base64.b64encode(data).decode(), "i": i}
                      for i, (_, data) in enumerate(images)],
             "urls": [await links.data_url(image) for image, _ in images],
             "after": [1, 2.5, None, "tail"]}
    headers, pieces = await sent(streamed)
    assert b"".join(pieces) == orjson.dumps(whole)
    assert headers[b"content-length"] == str(len(orjson.dumps(whole))).encode()


async def test_without_images_it_is_a_plain_json_response() -> None:
    headers, pieces = await sent({"a": [1, "x"]})
    assert b"".join(pieces) == b'{"a":[1,"x"]}' and headers[b"content-length"] == b"13"


async def test_a_missing_blob_raises_before_anything_is_sent(blobs: BlobStore) -> None:
    links = links_for(blobs)
    image, _ = await stored(blobs, 10)
    gone = StoredImage(key="tasks/t/gone.png", content_type="image/png", size=5, etag="e",
                       width=1, height=1)
    with pytest.raises(BlobNotFoundError):
        await json_response({"data": [InlineImage(links, image), InlineImage(links, gone)]})


@pytest.mark.parametrize("recorded", [99, 101, 300_000])
async def test_a_blob_of_another_size_is_never_completed(blobs: BlobStore,
                                                         recorded: int) -> None:
    """The length is promised by the header: a blob that does not match it ends the body
    short (the connection is dropped) instead of sending a different body."""
    links = links_for(blobs)
    image, _ = await stored(blobs, 100)
    wrong = StoredImage(key=image.key, content_type="image/png", size=recorded, etag="e",
                        width=1, height=1)
    response = await json_response({"b64_json": InlineImage(links, wrong)})
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    with pytest.raises(RuntimeError, match="recorded"):
        await response({"type": "http"}, receive, send)
    promised = int(dict(messages[0]["headers"])[b"content-length"])
    assert len(b"".join(m["body"] for m in messages[1:])) < promised
    assert all(m["more_body"] for m in messages[1:])


# The routes: every image's base64 is its blob's, in a body whose length is what was sent.

@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as e:
        yield e


async def blob_b64(env: Env, task_id: str) -> list[str]:
    task = await env.backends.tasks.lookup(task_id)
    assert task is not None
    return [base64.b64encode(await env.backends.links.read(image)).decode()
            for image in task.images]


async def test_native_sync_and_task_poll(env: Env) -> None:
    r = await env.post("/v1/images/generations",
                       {"prompt": "b64", "n": 3, "response_format": "b64_json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-length"] == str(len(r.content))
    body = r.json()
    expected = await blob_b64(env, body["task_id"])
    assert [item["b64_json"] for item in body["data"]] == expected
    assert all(item["url"] and item["file_id"] for item in body["data"])

    poll = await env.client.get(f"/v1/tasks/{body['task_id']}", headers=env.auth)
    assert poll.status_code == 200
    assert poll.headers["content-length"] == str(len(poll.content))
    assert [i["b64_json"] for i in poll.json()["result"]["data"]] == expected
    # Byte for byte what the body used whole gives (the signed URLs aside, which carry
    # the time they were made).
    task = await env.backends.tasks.lookup(body["task_id"])
    assert task is not None
    whole = await native.task_object(env.backends.links, task, None)
    got = poll.json()
    for item in got["result"]["data"] + whole["result"]["data"]:
        item.pop("url")
    assert got | {"queue_position": None, "estimated_seconds": None} == whole


async def test_native_data_url(env: Env) -> None:
    r = await env.post("/v1/images/generations",
                       {"prompt": "d", "n": 2, "response_format": "data_url"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = await blob_b64(env, body["task_id"])
    assert [item["url"] for item in body["data"]] == [
        "data:image/png;base64," + b64 for b64 in expected]


async def test_openai_profile(env: Env) -> None:
    r = await env.post("/openai/v1/images/generations",
                       {"model": "gpt-image-2", "prompt": "a lighthouse", "n": 2})
    assert r.status_code == 200, r.text
    assert r.headers["content-length"] == str(len(r.content))
    data = r.json()["data"]
    assert len(data) == 2 and all(set(item) == {"b64_json"} for item in data)
    # The env's only task: its blobs are what was sent.
    task_id = await read_scalar(env.backends.db, sa.select(tasks.c.id))
    assert [item["b64_json"] for item in data] == await blob_b64(env, str(task_id))
