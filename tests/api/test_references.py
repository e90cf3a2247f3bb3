"""Reference images and edits through the in-process API: every input form, the limits, and
proof that a refused request stores nothing."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import pyvips
import sqlalchemy as sa

from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.db.database import read_scalar
from imagegate.db.tables import tasks
from imagegate.wiring import Backends, build_backends
from tests.support.images import flat_png

pytestmark = pytest.mark.anyio


def make_image(width: int = 64, height: int = 48, fmt: str = ".png",
               colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    img = (pyvips.Image.black(width, height) + list(colour)).cast("uchar")
    data: bytes = img.write_to_buffer(fmt)
    return data


RED = make_image()
BLUE_JPEG = make_image(80, 60, ".jpg", (0, 0, 255))
GREEN_WEBP = make_image(50, 50, ".webp", (0, 255, 0))


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class ImageServer:
    """A loopback HTTP server for reference URLs; counts the requests it gets."""

    def __init__(self) -> None:
        self.hits = 0
        self.files: dict[str, bytes] = {"/red.png": RED, "/blue.jpg": BLUE_JPEG}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = outer.files.get(self.path)
                if self.path == "/slow":
                    threading.Event().wait(3)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    srv = ImageServer()
    try:
        yield srv
    finally:
        srv.close()


class Env:
    def __init__(self, client: httpx.AsyncClient, backends: Backends, key: str, blob_dir: Path
                 ) -> None:
        self.client, self.backends, self.key, self.blob_dir = client, backends, key, blob_dir
        self.auth = {"Authorization": f"Bearer {key}"}

    async def gen(self, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post("/v1/images/generations", json=body, headers=self.auth)

    async def edit(self, files: list[tuple[str, tuple[str, bytes, str]]],
                   data: dict[str, str] | None = None, query: str = "") -> httpx.Response:
        return await self.client.post(f"/v1/images/edits{query}", files=files,
                                      data=data or {"prompt": "edit it"}, headers=self.auth)

    def stored_files(self) -> list[Path]:
        return [p for p in self.blob_dir.rglob("*") if p.is_file()]

    async def task_count(self) -> int:
        return int(await read_scalar(self.backends.db,
                                     sa.select(sa.func.count()).select_from(tasks)))

    async def assert_nothing_written(self) -> None:
        assert await self.task_count() == 0
        assert self.stored_files() == []


@pytest.fixture
async def env(tmp_path: Path, image_server: ImageServer) -> AsyncIterator[Env]:
    settings = Settings(
        data_dir=tmp_path, poll_interval_seconds=0.2, fetch_timeout=1.0,
        max_reference_bytes=2 * 1024 * 1024, max_reference_total_bytes=5 * 1024 * 1024,
        # The test image server is on loopback, which the SSRF guard refuses by default.
        fetch_allow_networks=["127.0.0.1/32"],
    )
    backends = await build_backends(settings)
    key, _ = await backends.keys.create("refs")
    app = build_app(settings, backends)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver", timeout=30) as client:
        try:
            yield Env(client, backends, key, settings.effective_blob_dir)
        finally:
            await backends.aclose()


async def _task_refs(env: Env, task_id: str) -> list[dict[str, Any]]:
    task = await env.backends.store.get(task_id)
    assert task is not None
    refs: list[dict[str, Any]] = task.request["reference_images"]
    return refs


@pytest.mark.parametrize("alias", ["image_urls", "reference_images", "images", "image",
                                   "image_url", "input_image", "input_images"])
@pytest.mark.parametrize("shape", ["string", "list", "object_url", "object_image_url"])
async def test_every_alias_and_shape(env: Env, alias: str, shape: str) -> None:
    value: Any = data_url(RED)
    if shape == "list":
        value = [value]
    elif shape == "object_url":
        value = {"url": value}
    elif shape == "object_image_url":
        value = {"image_url": value}
    r = await env.gen({"prompt": "with a reference", alias: value})
    assert r.status_code == 200, r.text
    refs = await _task_refs(env, r.json()["task_id"])
    assert [(x["width"], x["height"], x["content_type"]) for x in refs] == [
        (64, 48, "image/png")]


async def test_mixed_forms_in_one_list(env: Env, image_server: ImageServer) -> None:
    r = await env.gen({"prompt": "mix", "image_urls": [
        image_server.url("/blue.jpg"), data_url(RED), base64.b64encode(GREEN_WEBP).decode(),
    ], "mask_url": data_url(make_image(64, 48))})
    assert r.status_code == 200, r.text
    task = await env.backends.store.get(r.json()["task_id"])
    assert task is not None
    refs = task.request["reference_images"]
    assert [x["content_type"] for x in refs] == ["image/jpeg", "image/png", "image/webp"]
    assert task.request["mask_image"]["content_type"] == "image/png"
    assert "data:" not in str(task.request)  # the row holds blob keys, not the payloads
    assert image_server.hits == 1


async def test_multipart_edit_forms(env: Env) -> None:
    r = await env.edit([("image[]", ("a.png", RED, "image/png")),
                        ("image[]", ("b.jpg", BLUE_JPEG, "image/jpeg")),
                        ("mask", ("m.png", make_image(64, 48), "image/png"))],
                       {"prompt": "merge", "size": "1:1", "n": "2"})
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 2
    refs = await _task_refs(env, r.json()["task_id"])
    assert len(refs) == 2
    for field in ("image", "images", "images[]", "image_1"):
        r = await env.edit([(field, ("a.png", RED, "image/png"))])
        assert r.status_code == 200, (field, r.text)


async def test_json_edit_form(env: Env) -> None:
    r = await env.client.post("/v1/images/edits", headers=env.auth, json={
        "prompt": "json edit", "images": [{"image_url": data_url(RED)}],
        "mask": {"image_url": data_url(make_image(64, 48))}})
    assert r.status_code == 200, r.text
    task = await env.backends.store.get(r.json()["task_id"])
    assert task is not None and task.operation == "edit"


async def test_async_edit_and_task(env: Env) -> None:
    r = await env.edit([("image", ("a.png", RED, "image/png"))], query="?async=true")
    assert r.status_code == 202
    task_id = r.json()["task_id"]
    for _ in range(100):
        body = (await env.client.get(f"/v1/tasks/{task_id}", headers=env.auth)).json()
        if body["status"] == "succeeded":
            break
        await asyncio.sleep(0.05)
    assert body["status"] == "succeeded"


async def test_sandbox_output_shows_the_reference(env: Env) -> None:
    plain = await env.gen({"prompt": "same prompt", "response_format": "b64_json"})
    with_ref = await env.gen({"prompt": "same prompt", "response_format": "b64_json",
                              "image_urls": [data_url(RED)]})
    a = base64.b64decode(plain.json()["data"][0]["b64_json"])
    b = base64.b64decode(with_ref.json()["data"][0]["b64_json"])
    assert a != b


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"image_urls": ["blob:https://app.example/1"]}, 400, "image_urls[0]", "invalid_value"),
        ({"image_urls": [data_url(b"GIF89a" + b"\0" * 20, "image/gif")]}, 400,
         "image_urls[0]", "unsupported_image_format"),
        ({"image_urls": [data_url(b"")]}, 400, "image_urls[0]", None),
        ({"image_urls": [data_url(RED[: len(RED) // 2])]}, 400, "image_urls[0]",
         "corrupt_image"),
        ({"image_urls": ["data:text/plain;base64,aGVsbG8="]}, 400, "image_urls[0]",
         "invalid_data_url"),
        ({"image_urls": ["not an image at all!"]}, 400, "image_urls[0]",
         "invalid_image_reference"),
        ({"image_urls": ["ftp://example.com/a.png"]}, 400, "image_urls[0]", None),
        ({"image_urls": ["http://127.0.0.2:9/a.png"]}, 400, "image_urls[0]", "url_refused"),
        ({"image_urls": ["http://169.254.169.254/latest/meta-data"]}, 400, "image_urls[0]",
         "url_refused"),
        ({"mask_url": data_url(RED)}, 400, "mask_url", None),
        ({"image_urls": [data_url(RED)] * 10}, 400, "image_urls", None),
    ],
)
async def test_bad_references_write_nothing(env: Env, body: dict[str, Any], status: int,
                                            param: str, code: str | None) -> None:
    r = await env.gen({"prompt": "bad", **body})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param
    if code is not None:
        assert err["code"] == code
    await env.assert_nothing_written()


async def test_second_item_error_names_its_index_and_cleans_up(env: Env) -> None:
    r = await env.gen({"prompt": "x", "image_urls": [data_url(RED), data_url(b"junk" * 10)]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image_urls[1]"
    await env.assert_nothing_written()


async def test_size_limits(env: Env) -> None:
    big = make_image(1400, 1400, ".png") + b"\0" * (2 * 1024 * 1024)  # over the 2 MiB cap
    r = await env.gen({"prompt": "x", "image_urls": [base64.b64encode(big).decode()]})
    assert r.status_code == 413 and r.json()["error"]["param"] == "image_urls[0]"
    r = await env.edit([("image", ("big.png", big, "image/png"))])
    assert r.status_code == 413
    await env.assert_nothing_written()


async def test_bomb_refused_from_header(env: Env) -> None:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
           + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 100)
    r = await env.edit([("image", ("bomb.png", png, "image/png"))])
    assert r.status_code == 400 and "50000" in r.json()["error"]["message"].replace(",", "")
    await env.assert_nothing_written()


async def test_pixel_budget_of_a_request(env: Env) -> None:
    # Sixteen one-colour 49-megapixel PNGs of ~6 KB each: each under max_reference_pixels,
    # together 784 megapixels. Refused from their headers, as JSON and as uploads.
    bomb = flat_png(7000, 7000)
    r = await env.gen({"model": "gpt-image-2-pro", "prompt": "x",
                       "image_urls": [data_url(bomb)] * 16})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("request_too_large_dimensions", "image_urls")
    r = await env.edit([("image[]", (f"{i}.png", bomb, "image/png")) for i in range(16)],
                       data={"prompt": "x", "model": "gpt-image-2-pro"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    await env.assert_nothing_written()


async def test_url_failures(env: Env, image_server: ImageServer) -> None:
    r = await env.gen({"prompt": "x", "image_urls": [image_server.url("/missing.png")]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_status"
    r = await env.gen({"prompt": "x", "image_urls": [image_server.url("/slow")]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "fetch_timeout"
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    r = await env.gen({"prompt": "x", "image_urls": [f"http://127.0.0.1:{dead}/a.png"]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "fetch_failed"
    await env.assert_nothing_written()


async def test_edit_needs_an_image_and_known_fields(env: Env) -> None:
    r = await env.client.post("/v1/images/edits", headers=env.auth,
                              files=[("other", ("x.png", RED, "image/png"))],
                              data={"prompt": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "other"
    r = await env.client.post("/v1/images/edits", headers=env.auth,
                              files=[("prompt", (None, b"x"))])  # multipart, no image
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    r = await env.client.post("/v1/images/edits", headers={**env.auth,
                              "Content-Type": "text/plain"}, content=b"hello")
    assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
    await env.assert_nothing_written()


async def test_too_many_files(env: Env) -> None:
    files = [("image[]", (f"{i}.png", RED, "image/png")) for i in range(18)]
    r = await env.edit(files)
    assert r.status_code == 400
    await env.assert_nothing_written()


async def test_cleanup_removes_reference_blobs(env: Env) -> None:
    r = await env.gen({"prompt": "x", "image_urls": [data_url(RED)]})
    assert any("refs" in str(p) for p in env.stored_files())
    await env.backends.db.write(tasks.update().values(expires_at=0))
    assert env.backends.worker is not None
    assert await env.backends.worker.clean_expired() == 1
    assert env.stored_files() == [], r.json()["task_id"]
