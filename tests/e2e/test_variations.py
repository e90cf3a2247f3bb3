"""`POST /v1/images/variations` end to end: `imagegate serve` as a real process, the official
`openai` SDK's `client.images.create_variation` as the client, on both base URLs (`/v1` and
`/openai/v1`), against the sandbox; then relayed to the fake OpenAI upstream on a loopback
thread (bytes, fields, billing, and a `kill -9` during the synchronous upstream call), and to
a dimilinks channel, which has no variations endpoint: refused with a 400, refunded, and
nothing sent upstream.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import openai
import pytest
import pyvips
from openai import OpenAI

from imagegate.testing.upstreams.dimilinks_api import FakeDimilinks
from imagegate.testing.upstreams.openai_api import FakeOpenAI, variation_seed
from tests.support.e2e import (
    Server,
    ServerFactory,
    assert_error_body,
    decode_image,
    image_format,
    poll_task,
    until_terminal,
)
from tests.support.relay import FAKE_KEY, FakeLoop, calls, channel, wait_for, write_config

pytestmark = [
    pytest.mark.e2e,
    # The SDK marks create_variation deprecated (OpenAI is retiring dall-e-2); the route stays.
    pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning"),
]

FAST_ENV = {"IMAGEGATE_SANDBOX_LATENCY": "0", "IMAGEGATE_UPSTREAM_BACKOFF_SECONDS": "0.05"}
CRASH_ENV = {
    **FAST_ENV,
    "IMAGEGATE_LEASE_SECONDS": "2",
    "IMAGEGATE_REAPER_INTERVAL_SECONDS": "0.5",
    "IMAGEGATE_POLL_INTERVAL_SECONDS": "0.25",
}
DIMI_MODEL = "dall-e-2-dimi"  # a second variations model, served by dimilinks only
PRICE = 20_000  # dall-e-2's price per image in the default catalog (0.02), in micro-units


def source_png(path: Path, size: int = 96) -> Path:
    """A square noise PNG: every variation of it must come out of the input's pixels."""
    bands = [pyvips.Image.gaussnoise(size, size, mean=128 + 30 * i, sigma=50, seed=i)
             for i in range(3)]
    img = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    path.write_bytes(bytes(img.pngsave_buffer()))
    return path


def sdk(server: Server, prefix: str) -> OpenAI:
    return OpenAI(base_url=server.base_url + prefix, api_key=server.key, max_retries=0,
                  timeout=30)


def download(server: Server, url: str) -> bytes:
    with httpx.Client(timeout=30) as anon:  # the signed link is the credential
        resp = anon.get(url if url.startswith(("http://", "https://")) else
                        server.base_url + url)
    assert resp.status_code == 200, resp.text
    return resp.content


def ledger_sum(server: Server, task_id: str) -> int:
    total: int = server.query("SELECT coalesce(sum(amount), 0) FROM ledger WHERE task_id = ?",
                              (task_id,))[0][0]
    return total


def task_row(server: Server, task_id: str) -> dict[str, object]:
    (row,) = server.query("SELECT * FROM tasks WHERE id = ?", (task_id,))
    return dict(row)


# ---------------------------------------------------------------- the sandbox, via the SDK


@pytest.fixture(scope="module")
def sandbox(module_server_factory: ServerFactory) -> Server:
    return module_server_factory.start(FAST_ENV)


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_sdk_create_variation(sandbox: Server, tmp_path: Path, prefix: str) -> None:
    path = source_png(tmp_path / "source.png")
    with sdk(sandbox, prefix) as client, path.open("rb") as image:
        resp = client.images.create_variation(image=image, n=2, size="512x512")
    assert resp.data is not None and len(resp.data) == 2
    got = []
    for item in resp.data:
        assert item.url and item.b64_json is None
        data = download(sandbox, item.url)
        assert image_format(data) == "png"
        img = decode_image(data)
        assert (img.width, img.height) == (512, 512)
        got.append(data)
    assert got[0] != got[1]
    extra = resp.model_extra or {}
    if prefix == "/openai/v1":
        assert not extra and resp.size is None  # exactly OpenAI's answer for dall-e-2
    else:
        assert extra["task_id"].startswith("img_") and resp.size == "512x512"


@pytest.mark.parametrize("prefix", ["/v1", "/openai/v1"])
def test_sdk_b64_json_and_refusals(sandbox: Server, tmp_path: Path, prefix: str) -> None:
    path = source_png(tmp_path / "source.png", 64)
    with sdk(sandbox, prefix) as client:
        with path.open("rb") as image:
            resp = client.images.create_variation(image=image, model="dall-e-2",
                                                  size="256x256", response_format="b64_json")
        assert resp.data is not None and resp.data[0].b64_json
        img = decode_image(base64.b64decode(resp.data[0].b64_json))
        assert (img.width, img.height) == (256, 256)
        with path.open("rb") as image, pytest.raises(openai.BadRequestError) as bad:
            client.images.create_variation(image=image, model="gpt-image-1")
        assert bad.value.param == "model"
        with path.open("rb") as image, pytest.raises(openai.BadRequestError) as bad:
            client.images.create_variation(image=image, n=11)
        assert bad.value.param == "n"


def test_native_async_variation(sandbox: Server, tmp_path: Path) -> None:
    path = source_png(tmp_path / "source.png", 64)
    with sandbox.client() as c:
        resp = c.post("/v1/images/variations", params={"async": "true"},
                      data={"size": "256x256", "n": "3"},
                      files={"image": ("source.png", path.read_bytes(), "image/png")})
        assert resp.status_code == 202, resp.text
        assert resp.headers["location"] == f"/v1/tasks/{resp.json()['task_id']}"
        task = poll_task(c, resp.json()["task_id"], until_terminal)
    assert task["status"] == "succeeded", task
    assert len(task["result"]["data"]) == 3
    row = task_row(sandbox, task["id"])
    assert row["operation"] == "variation" and row["provider"] == "sandbox"


# ---------------------------------------------------------------- relayed upstream


@pytest.fixture(scope="module")
def fake_loop() -> Iterator[FakeLoop]:
    loop = FakeLoop()
    try:
        yield loop
    finally:
        loop.close()


def catalog_with_dimi_model(path: Path) -> Path:
    """The packaged catalog plus one more dall-e-2 model (so the dimilinks channel serves a
    variations model of its own)."""
    default = resources.files("imagegate.domain").joinpath("default_catalog.toml").read_text()
    path.write_text(default + f'\n[models.{DIMI_MODEL}]\nfamily = "dall-e-2"\n'
                    'description = "dall-e-2 through dimilinks"\n', encoding="utf-8")
    return path


class Relay:
    def __init__(self, server: Server, oa: FakeOpenAI, dimi: FakeDimilinks) -> None:
        self.server, self.oa, self.dimi = server, oa, dimi


@pytest.fixture(scope="module")
def relay(module_server_factory: ServerFactory, fake_loop: FakeLoop,
          tmp_path_factory: pytest.TempPathFactory) -> Relay:
    oa = fake_loop.start(lambda: FakeOpenAI(api_key=FAKE_KEY))
    dimi = fake_loop.start(lambda: FakeDimilinks(api_key=FAKE_KEY))
    folder = tmp_path_factory.mktemp("variations-relay")
    config = write_config(folder / "imagegate.toml", [
        channel("oa", "openai", oa, ["dall-e-2"]),
        channel("dimi", "dimilinks", dimi, [DIMI_MODEL], poll_interval=0.2),
    ], {"catalog_file": str(catalog_with_dimi_model(folder / "catalog.toml"))})
    server = module_server_factory.start({**FAST_ENV, "IMAGEGATE_CONFIG": str(config)})
    return Relay(server, oa, dimi)


def test_relay_to_openai(relay: Relay, tmp_path: Path) -> None:
    server, fake = relay.server, relay.oa
    path = source_png(tmp_path / "source.png", 80)
    source = path.read_bytes()
    with sdk(server, "/v1") as client, path.open("rb") as image:
        resp = client.images.create_variation(image=image, n=2, size="256x256", user="u-9")
    assert resp.data is not None and len(resp.data) == 2
    # Byte for byte the upstream's images, served from imagegate's own signed URLs.
    for i, item in enumerate(resp.data):
        assert item.url and "/p/img/" in item.url
        assert download(server, item.url) == fake.png(256, 256, variation_seed(source, i))
    sent = [r for r in calls(fake, "/images/variations")
            if r.files("image") and r.files("image")[0].data == source]
    assert len(sent) == 1, sent  # one upstream call
    assert sent[0].headers["Authorization"] == f"Bearer {FAKE_KEY}"
    assert sent[0].fields() == {"model": "dall-e-2", "n": "2", "size": "256x256",
                                "response_format": "b64_json", "user": "u-9"}
    task_id = (resp.model_extra or {})["task_id"]
    row = task_row(server, task_id)
    assert (row["operation"], row["provider"], row["charge_state"]) == (
        "variation", "oa", "settled")
    assert ledger_sum(server, task_id) == -2 * PRICE

    with sdk(server, "/openai/v1") as client, path.open("rb") as image:
        resp = client.images.create_variation(image=image, size="512x512",
                                              response_format="b64_json")
    assert resp.data is not None and resp.data[0].b64_json
    assert base64.b64decode(resp.data[0].b64_json) == fake.png(512, 512,
                                                               variation_seed(source, 0))


def test_relay_to_openai_refuses_what_openai_would(relay: Relay, tmp_path: Path) -> None:
    """A non-square input is refused before the upstream is called: 400, refunded."""
    server, fake = relay.server, relay.oa
    wide = pyvips.Image.black(64, 32, bands=3).copy(interpretation="srgb")
    before = len(calls(fake, "/images/variations"))
    with server.client() as c:
        resp = c.post("/v1/images/variations", data={"size": "256x256"},
                      files={"image": ("wide.png", bytes(wide.pngsave_buffer()), "image/png")})
    err = assert_error_body(resp, 400, code="invalid_image_for_variation", param="image")
    assert "square PNG" in err["message"]
    assert len(calls(fake, "/images/variations")) == before
    (row,) = server.query("SELECT id, status, charge_state FROM tasks WHERE model = ? AND "
                          "status = 'failed'", ("dall-e-2",))
    assert row["charge_state"] == "refunded"
    assert ledger_sum(server, row["id"]) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_relay_to_dimilinks_is_refused_and_refunded(relay: Relay, tmp_path: Path,
                                                    mode: str) -> None:
    server, fake = relay.server, relay.dimi
    path = source_png(tmp_path / "source.png", 64)
    params = {"async": "true"} if mode == "async" else {}
    with server.client() as c:
        resp = c.post("/v1/images/variations", params=params, data={"model": DIMI_MODEL},
                      files={"image": ("source.png", path.read_bytes(), "image/png")})
        if mode == "sync":
            err = assert_error_body(resp, 400, code="unsupported_operation")
            task_id = server.query("SELECT id FROM tasks WHERE model = ? ORDER BY created_at "
                                   "DESC LIMIT 1", (DIMI_MODEL,))[0]["id"]
        else:
            assert resp.status_code == 202, resp.text
            task_id = resp.json()["task_id"]
            task = poll_task(c, task_id, until_terminal)
            assert task["status"] == "failed", task
            err = task["error"]
            assert err["code"] == "unsupported_operation"
    assert "'dimi' (dimilinks) does not offer image variations" in err["message"]
    assert fake.requests == [] and fake.submissions == 0  # nothing reached the upstream
    row = task_row(server, task_id)
    assert (row["status"], row["charge_state"], row["operation"]) == (
        "failed", "refunded", "variation")
    assert ledger_sum(server, task_id) == 0


def test_kill9_during_the_upstream_variation_fails_and_refunds(
        server_factory: ServerFactory, fake_loop: FakeLoop, tmp_path: Path) -> None:
    """The synchronous upstream call is marked (SYNC_CALL) exactly as a generation's: after
    a crash mid-call the task fails as `upstream_interrupted`, is refunded, never resent."""
    fake = fake_loop.start(lambda: FakeOpenAI(api_key=FAKE_KEY, latency=5.0))
    config = write_config(tmp_path / "imagegate.toml",
                          [channel("slow-oa", "openai", fake, ["dall-e-2"])])
    first = server_factory.start({**CRASH_ENV, "IMAGEGATE_CONFIG": str(config)})
    path = source_png(tmp_path / "source.png", 64)
    with first.client() as c:
        resp = c.post("/v1/images/variations", params={"async": "true"},
                      files={"image": ("source.png", path.read_bytes(), "image/png")})
    assert resp.status_code == 202, resp.text
    task_id = resp.json()["task_id"]
    wait_for("the upstream to receive the variation",
             lambda: len(calls(fake, "/images/variations")) == 1)
    assert task_row(first, task_id)["charge_state"] == "held"
    first.kill9()

    second = server_factory.restart(first)
    with second.client() as c:
        task = poll_task(c, task_id, until_terminal, timeout=30)
    assert task["status"] == "failed", task
    assert task["error"]["code"] == "upstream_interrupted", task
    assert len(calls(fake, "/images/variations")) == 1  # never sent again
    assert task_row(second, task_id)["charge_state"] == "refunded"
    assert ledger_sum(second, task_id) == 0
