"""One calling code, every service: the same function makes, edits and saves images through
`Client(dialect=…)` against imagegate and straight against the fake upstreams of the seed
services, each a real process (`python -m imagegate.testing.upstreams`) — dimilinks (000/001:
async tasks, relative `/p/img/…` results), apimart (002: `{code, data}` bodies, `image_urls`)
and openai (any OpenAI Images API: synchronous) — and against imagegate's own profiles of
those dialects (`/v1`, `/apimart`, `/openai`)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegate.client import AsyncClient, Client, Task, UnsupportedError
from tests.support.e2e import Server, decode_image
from tests.support.fake_procs import FakeProcess, fake_processes
from tests.support.images import flat_png

pytestmark = pytest.mark.e2e

TASKS = {"imagegate": True, "dimilinks": True, "apimart": True, "openai": False}
CANCELS = {"imagegate"}
VARIES = {"imagegate", "openai"}
# (dialect, where): "fake" is the seed service's fake, any other the path of imagegate's
# profile that speaks the dialect.
TARGETS = [("imagegate", ""), ("dimilinks", "fake"), ("dimilinks", ""), ("apimart", "fake"),
           ("apimart", "/apimart"), ("openai", "fake"), ("openai", "/openai")]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProcess]]:
    with fake_processes("dimilinks", "apimart", "openai") as started:
        yield started


@pytest.fixture
def gateway(client_server: Server) -> Server:
    return client_server


def where(dialect: str, target: str, fakes: dict[str, FakeProcess],
          gateway: Server) -> tuple[str, str]:
    if target == "fake":
        return fakes[dialect].url, fakes[dialect].api_key
    return gateway.base_url + target, gateway.key


def make_images(client: Client, out: Path, reference: Path) -> list[Task]:
    """What a user's program does, written once."""
    made = client.generate("a cat on a mat", model="gpt-image-2", size="1024x1024")
    edited = client.edit("the same cat, in blue", reference, model="gpt-image-2",
                         size="1024x1024")
    for task in (made, edited):
        client.download_all(task, out)
    return [made, edited]


@pytest.mark.parametrize(("dialect", "target"), TARGETS)
def test_the_same_code_against_each_service(dialect: str, target: str,
                                            fakes: dict[str, FakeProcess], gateway: Server,
                                            tmp_path: Path) -> None:
    url, key = where(dialect, target, fakes, gateway)
    reference = tmp_path / "ref.png"
    reference.write_bytes(flat_png(64, 64))
    out = tmp_path / "out"
    with Client(url, key, dialect=dialect, poll_interval=0.2) as client:
        made, edited = make_images(client, out, reference)
        saved = sorted(out.iterdir())
        assert len(saved) == 2, saved
        for path in saved:
            image = decode_image(path.read_bytes())
            assert (image.width, image.height) == (1024, 1024)
        if TASKS[dialect]:
            assert client.tasks.get(made.id).status == "succeeded"
            assert client.tasks.wait(edited.id).status == "succeeded"
        else:
            assert made.id.startswith("sync_")
            with pytest.raises(UnsupportedError, match="synchronously"):
                client.tasks.get(made.id)
            with pytest.raises(UnsupportedError, match="wait=True"):
                client.generate("x", wait=False)
        if dialect in CANCELS:
            assert client.tasks.cancel(made.id).status == "succeeded"  # it had ended
        else:
            with pytest.raises(UnsupportedError):
                client.tasks.cancel(made.id)
        if dialect in VARIES:
            variation = client.variations(reference, model="dall-e-2", size="256x256")
            assert client.download(variation.images[0], tmp_path / "v.png").exists()
        else:
            with pytest.raises(UnsupportedError, match="no variations"):
                client.variations(reference)


@pytest.mark.parametrize("dialect", ["dimilinks", "apimart", "openai"])
def test_the_async_client_against_each_fake(dialect: str, fakes: dict[str, FakeProcess],
                                            tmp_path: Path) -> None:
    fake = fakes[dialect]
    url_ref = "data:image/png;base64," + base64.b64encode(flat_png(8, 8)).decode()

    async def run() -> list[Path]:
        async with AsyncClient(fake.url, fake.api_key, dialect=dialect,
                               poll_interval=0.2) as client:
            made = await client.generate("an async cat", model="gpt-image-2",
                                         size="1024x1024")
            edited = await client.edit("from a URL", url_ref, model="gpt-image-2",
                                       size="1024x1024")
            return [*await client.download_all(made, tmp_path),
                    *await client.download_all(edited, tmp_path)]

    paths = asyncio.run(run())
    assert len(paths) == 2 and all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_a_dialect_the_service_refuses_is_said_before_sending(tmp_path: Path,
                                                              fakes: dict[str, FakeProcess]
                                                              ) -> None:
    mask = tmp_path / "mask.png"
    mask.write_bytes(flat_png(8, 8))
    fake = fakes["apimart"]
    with Client(fake.url, fake.api_key, dialect="apimart") as client, \
            pytest.raises(UnsupportedError, match="no mask"):
        client.edit("x", mask, mask=mask)
