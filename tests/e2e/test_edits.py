"""Edits and reference images against a real `imagegate serve` process, with real clients:
the `curl` binary running the 001 seed's examples, the official `openai` SDK, and a loopback
HTTP server for `image_urls`. The in-process forms and limits are covered in
tests/api/test_references.py; this module checks what a client on the wire sees, that the
bytes which arrive are the bytes that were sent, and that a refused upload stores nothing.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pyvips
from openai import OpenAI

from tests.support.e2e import (
    Server,
    ServerFactory,
    decode_image,
    image_format,
    poll_task,
    task_count,
    until_terminal,
)

pytestmark = pytest.mark.e2e

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="the curl binary is not installed")

MAX_REFERENCE_BYTES = 1024 * 1024  # small, so "too large" needs only a few MB
EDITS_ENV = {
    "IMAGEGATE_SANDBOX_LATENCY": "0",
    "IMAGEGATE_MAX_REFERENCE_BYTES": str(MAX_REFERENCE_BYTES),
    # The test's image server is on loopback, which the SSRF guard refuses by default.
    "IMAGEGATE_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',
    "IMAGEGATE_FETCH_TIMEOUT": "5",
}

# The 001 seed's two curl examples, verbatim. Only the origin, the key (the environment
# variable the seed names) and the file paths are substituted when they run.
SEED_SINGLE = """curl "https://dimilinks.com/v1/images/edits" \\
  -H "Authorization: Bearer $DIMILINKS_API_KEY" \\
  -F "model=gpt-image-2" \\
  -F "prompt=把图片改成复古胶片风格,保留主体" \\
  -F "size=16:9" \\
  -F "resolution=2k" \\
  -F "image=@/path/to/reference.png\""""

SEED_MULTI = """curl "https://dimilinks.com/v1/images/edits" \\
  -H "Authorization: Bearer $DIMILINKS_API_KEY" \\
  -F "model=gpt-image-2" \\
  -F "prompt=融合两张参考图的风格,生成电商主图" \\
  -F "size=1:1" \\
  -F "resolution=4k" \\
  -F "image[]=@/path/to/ref-1.png" \\
  -F "image[]=@/path/to/ref-2.png\""""


# --------------------------------------------------------------------------- inputs


def _noise_png(width: int, height: int, seed: int) -> bytes:
    """A noisy RGB PNG: incompressible enough that a small one spans several read chunks."""
    bands = [pyvips.Image.gaussnoise(width, height, mean=128 + 20 * i, sigma=40, seed=seed + i)
             for i in range(3)]
    image = bands[0].bandjoin(bands[1:]).cast("uchar")
    data: bytes = image.write_to_buffer(".png")
    return data


def _bomb_png() -> bytes:
    """A valid PNG signature and IHDR claiming 50,000 × 50,000 pixels, then junk."""
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\0" * 200)


@dataclass(frozen=True)
class Inputs:
    dir: Path
    ref: Path  # the seed's /path/to/reference.png
    ref1: Path
    ref2: Path
    mask: Path
    not_image: Path  # text named x.png
    corrupt: Path  # a PNG cut in half
    bomb: Path
    too_large: Path  # a valid PNG over MAX_REFERENCE_BYTES

    def read(self, name: str) -> bytes:
        return (self.dir / name).read_bytes()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    d = tmp_path_factory.mktemp("edit-inputs")
    ref = _noise_png(320, 180, 1)  # ~170 KB: several 64 KiB chunks on the wire
    files = {
        "reference.png": ref,
        "ref-1.png": _noise_png(256, 256, 10),
        "ref-2.png": _noise_png(200, 300, 20),
        "mask.png": pyvips.Image.black(256, 256).new_from_image([255, 255, 255, 0])
        .cast("uchar").write_to_buffer(".png"),
        "x.png": b"this is a text file, not a picture\n" * 4,
        "corrupt.png": ref[: len(ref) // 2],
        "bomb.png": _bomb_png(),
        "too-large.png": _noise_png(1200, 1000, 30),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    assert len(files["too-large.png"]) > MAX_REFERENCE_BYTES
    assert len(files["reference.png"]) > 128 * 1024
    return Inputs(d, d / "reference.png", d / "ref-1.png", d / "ref-2.png", d / "mask.png",
                  d / "x.png", d / "corrupt.png", d / "bomb.png", d / "too-large.png")


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> Server:
    return module_server_factory.start(EDITS_ENV)


@pytest.fixture(scope="module")
def sdk(server: Server) -> Iterator[OpenAI]:
    client = OpenAI(base_url=server.base_url + "/v1", api_key=server.key, max_retries=0,
                    timeout=30)
    try:
        yield client
    finally:
        client.close()


class ImageHost:
    """A loopback HTTP server for `image_urls`; records every path it is asked for."""

    def __init__(self, files: dict[str, tuple[bytes, str]]) -> None:
        self.files = files
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                found = outer.files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, mime = found
                self.send_response(200)
                self.send_header("Content-Type", mime)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def image_host(inputs: Inputs) -> Iterator[ImageHost]:
    host = ImageHost({"/ref-1.png": (inputs.read("ref-1.png"), "image/png")})
    try:
        yield host
    finally:
        host.close()


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class CurlResult:
    status: int
    body: Any
    headers: dict[str, str]


def run_curl(server: Server, command: str, *, paths: dict[str, Path] | None = None,
             query: str = "") -> CurlResult:
    """Run a seed curl command line through bash with this server's origin and key."""
    command = command.replace('"https://dimilinks.com/v1/images/edits"',
                              shlex.quote(f"{server.base_url}/v1/images/edits{query}"))
    for seed_path, real in (paths or {}).items():
        assert seed_path in command
        command = command.replace(seed_path, str(real))
    # Added: no progress meter, errors on stderr, the response head before the body.
    command += " --silent --show-error --dump-header - --max-time 60"
    env = {**os.environ, "DIMILINKS_API_KEY": server.key}
    res = subprocess.run(["bash", "-c", command], capture_output=True, env=env, timeout=90,
                         check=False)
    assert res.returncode == 0, f"curl failed ({res.returncode}): {res.stderr!r}"
    text = res.stdout.decode("utf-8")
    head, _, body = text.partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 1"):  # curl sends Expect: 100-continue above 1 MB
        head, _, body = body.partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return CurlResult(int(status_line.split()[1]), json.loads(body), headers)


def download(server: Server, url: str) -> bytes:
    # Absolute and signed: downloads as given, no Bearer needed.
    assert url.startswith(server.base_url + "/p/img/"), url
    with httpx.Client(timeout=30) as client:
        resp = client.get(url)
    assert resp.status_code == 200, resp.text
    return resp.content


def assert_result_image(server: Server, body: dict[str, Any], size: tuple[int, int]) -> None:
    assert {"created", "task_id", "data"} <= set(body), body
    assert isinstance(body["created"], int) and body["created"] > 1_700_000_000
    assert body["task_id"].startswith("img_")
    assert len(body["data"]) == 1, body
    item = body["data"][0]
    assert {"url", "file_id"} <= set(item), item
    assert item["file_id"].startswith("file_")
    data = download(server, item["url"])
    assert image_format(data) == "png"
    img = decode_image(data)
    assert (img.width, img.height) == size


def stored_request(server: Server, task_id: str) -> dict[str, Any]:
    rows = server.query("SELECT operation, request FROM tasks WHERE id = ?", (task_id,))
    assert len(rows) == 1, task_id
    request: dict[str, Any] = json.loads(rows[0]["request"])
    request["_operation"] = rows[0]["operation"]
    return request


def stored_ref_bytes(server: Server, ref: dict[str, Any]) -> bytes:
    return (server.blob_dir / str(ref["key"])).read_bytes()


def data_files(server: Server) -> set[Path]:
    """Every file in the data dir except the SQLite database and its journal files."""
    return {p for p in server.data_dir.rglob("*")
            if p.is_file() and not p.name.startswith("imagegate.db")}


class NothingStored:
    """Snapshot of the task count and files; `check()` asserts neither changed."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.tasks = task_count(server)
        self.blobs = server.blob_files()
        self.files = data_files(server)

    def check(self) -> None:
        assert task_count(self.server) == self.tasks
        assert self.server.blob_files() == self.blobs
        assert data_files(self.server) == self.files


# --------------------------------------------------------------------------- the 001 seed


@needs_curl
def test_seed_001_single_image_curl(server: Server, inputs: Inputs) -> None:
    res = run_curl(server, SEED_SINGLE, paths={"/path/to/reference.png": inputs.ref})
    assert res.status == 200, res.body
    assert_result_image(server, res.body, (2048, 1152))
    request = stored_request(server, res.body["task_id"])
    assert request["_operation"] == "edit"
    assert request["prompt"] == "把图片改成复古胶片风格,保留主体"  # the comma did not split it
    assert (request["tier"], request["size_label"]) == ("2k", "2048x1152")
    [ref] = request["reference_images"]
    assert (ref["width"], ref["height"], ref["content_type"]) == (320, 180, "image/png")
    # The bytes curl streamed (several read chunks) are stored unchanged.
    assert stored_ref_bytes(server, ref) == inputs.ref.read_bytes()


@needs_curl
def test_seed_001_multi_image_curl(server: Server, inputs: Inputs) -> None:
    res = run_curl(server, SEED_MULTI, paths={"/path/to/ref-1.png": inputs.ref1,
                                               "/path/to/ref-2.png": inputs.ref2})
    assert res.status == 200, res.body
    assert_result_image(server, res.body, (2880, 2880))
    request = stored_request(server, res.body["task_id"])
    assert request["prompt"] == "融合两张参考图的风格,生成电商主图"
    refs = request["reference_images"]
    assert [(r["width"], r["height"]) for r in refs] == [(256, 256), (200, 300)]  # in order
    assert stored_ref_bytes(server, refs[0]) == inputs.ref1.read_bytes()
    assert stored_ref_bytes(server, refs[1]) == inputs.ref2.read_bytes()


@needs_curl
def test_seed_001_async_curl_then_poll(server: Server, inputs: Inputs) -> None:
    res = run_curl(server, SEED_SINGLE, paths={"/path/to/reference.png": inputs.ref},
                   query="?async=true")
    assert res.status == 202, res.body
    assert set(res.body) == {"created", "task_id", "data"} and res.body["data"] == []
    task_id = res.body["task_id"]
    assert res.headers["location"] == f"/v1/tasks/{task_id}"
    with server.client() as client:
        task = poll_task(client, task_id, until_terminal, timeout=20)
    assert task["status"] == "succeeded", task
    assert task["result"]["task_id"] == task_id
    assert_result_image(server, task["result"], (2048, 1152))
    assert len(stored_request(server, task_id)["reference_images"]) == 1


# --------------------------------------------------------------------------- the openai SDK


def test_sdk_edit_two_images(server: Server, sdk: OpenAI, inputs: Inputs) -> None:
    with inputs.ref1.open("rb") as a, inputs.ref2.open("rb") as b:
        resp = sdk.images.edit(model="gpt-image-2", image=[a, b],
                               prompt="merge the two references", size="1024x1024")
    assert resp.data is not None and len(resp.data) == 1
    url = resp.data[0].url
    assert url
    img = decode_image(download(server, url))
    assert (img.width, img.height) == (1024, 1024)
    task_id = (resp.model_extra or {})["task_id"]
    refs = stored_request(server, task_id)["reference_images"]
    assert [(r["width"], r["height"]) for r in refs] == [(256, 256), (200, 300)]
    assert stored_ref_bytes(server, refs[1]) == inputs.ref2.read_bytes()


def test_sdk_edit_single_image_and_mask(server: Server, sdk: OpenAI, inputs: Inputs) -> None:
    with inputs.ref1.open("rb") as a:
        single = sdk.images.edit(model="gpt-image-2", image=a, prompt="one reference",
                                 size="1024x1024")
    assert single.data is not None and single.data[0].url
    single_img = decode_image(download(server, single.data[0].url))
    assert (single_img.width, single_img.height) == (1024, 1024)
    single_req = stored_request(server, (single.model_extra or {})["task_id"])
    assert len(single_req["reference_images"]) == 1 and single_req["mask_image"] is None

    with inputs.ref1.open("rb") as a, inputs.mask.open("rb") as m:
        masked = sdk.images.edit(model="gpt-image-2", image=a, mask=m, prompt="inpaint",
                                 size="1536x1024")
    assert masked.data is not None and masked.data[0].url
    img = decode_image(download(server, masked.data[0].url))
    assert (img.width, img.height) == (1536, 1024)
    request = stored_request(server, (masked.model_extra or {})["task_id"])
    assert len(request["reference_images"]) == 1
    mask = request["mask_image"]
    assert mask is not None and (mask["width"], mask["height"]) == (256, 256)
    assert stored_ref_bytes(server, mask) == inputs.mask.read_bytes()


def test_sdk_non_image_is_bad_request(server: Server, sdk: OpenAI, inputs: Inputs) -> None:
    before = NothingStored(server)
    with inputs.not_image.open("rb") as f, pytest.raises(openai.BadRequestError) as info:
        sdk.images.edit(model="gpt-image-2", image=f, prompt="x")
    err = info.value
    assert err.status_code == 400
    assert err.code == "unsupported_image_format", err.body
    assert isinstance(err.param, str) and err.param.startswith("image"), err.body
    # The second of two files is named by its index; the valid first one is not kept.
    with inputs.ref1.open("rb") as a, inputs.not_image.open("rb") as f, \
            pytest.raises(openai.BadRequestError) as info:
        sdk.images.edit(model="gpt-image-2", image=[a, f], prompt="x")
    assert info.value.param == "image[1]", info.value.body
    before.check()


# --------------------------------------------------------------------------- image_urls


def test_image_urls_loopback_with_allowlist(server: Server, image_host: ImageHost,
                                            inputs: Inputs) -> None:
    ref2 = inputs.read("ref-2.png")
    body = {"model": "gpt-image-2", "prompt": "two references", "size": "16:9",
            "resolution": "1k", "image_urls": [
                image_host.url("/ref-1.png"),
                "data:image/png;base64," + base64.b64encode(ref2).decode()]}
    with server.client() as client:
        resp = client.post("/v1/images/generations", json=body)
    assert resp.status_code == 200, resp.text
    assert_result_image(server, resp.json(), (1536, 864))
    assert image_host.requests == ["/ref-1.png"]
    request = stored_request(server, resp.json()["task_id"])
    refs = request["reference_images"]
    assert [(r["width"], r["height"]) for r in refs] == [(256, 256), (200, 300)]
    assert stored_ref_bytes(server, refs[0]) == inputs.read("ref-1.png")
    assert stored_ref_bytes(server, refs[1]) == ref2
    assert "data:" not in json.dumps(request)  # the row holds blob keys, not payloads


def test_image_urls_loopback_refused_without_allowlist(basic_server: Server,
                                                       image_host: ImageHost) -> None:
    before = NothingStored(basic_server)
    with basic_server.client() as client:
        resp = client.post("/v1/images/generations", json={
            "model": "gpt-image-2", "prompt": "x", "image_urls": [image_host.url("/ref-1.png")]})
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert (err["code"], err["param"]) == ("url_refused", "image_urls[0]"), err
    assert image_host.requests == []  # refused before any connection was made
    before.check()


# --------------------------------------------------------------------------- refusals


@needs_curl
@pytest.mark.parametrize(
    ("files", "status", "code", "param"),
    [
        (["corrupt.png"], 400, "corrupt_image", "image[0]"),
        (["bomb.png"], 400, "image_too_large_dimensions", "image[0]"),
        (["too-large.png"], 413, "image_too_large", "image[0]"),
        (["x.png"], 400, "unsupported_image_format", "image[0]"),
        # A valid first file is validated and stored before the second fails: it must go.
        (["ref-1.png", "corrupt.png"], 400, "corrupt_image", "image[1]"),
        (["ref-1.png", "too-large.png"], 413, "image_too_large", "image[1]"),
    ],
    ids=["corrupt", "bomb-50000x50000", "too-large", "text", "valid-then-corrupt",
         "valid-then-too-large"],
)
def test_refused_upload_stores_nothing(server: Server, inputs: Inputs, files: list[str],
                                       status: int, code: str, param: str) -> None:
    before = NothingStored(server)
    parts = " ".join(f'-F "image[]=@{inputs.dir / name}"' for name in files)
    command = ('curl "https://dimilinks.com/v1/images/edits" '
               '-H "Authorization: Bearer $DIMILINKS_API_KEY" '
               f'-F "model=gpt-image-2" -F "prompt=refuse me" {parts}')
    res = run_curl(server, command)
    assert res.status == status, res.body
    err = res.body["error"]
    assert (err["code"], err["param"]) == (code, param), err
    if code == "image_too_large_dimensions":
        assert "50000" in err["message"].replace(",", ""), err
    before.check()
