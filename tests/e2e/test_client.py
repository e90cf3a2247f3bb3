"""`imagegate.client` against a served sandbox (`imagegate serve` as a subprocess): every
method of `Client` and `AsyncClient`, all three URL forms of a result (and `b64_json`), the
typed errors, the served `/events` stream, and the fall-back for a server without
`GET /v1/tasks`."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import pytest

from imagegate.client import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    InputError,
    InsufficientBalanceError,
    NotFoundError,
    RateLimitError,
    Task,
    TaskFailedError,
    TaskTimeoutError,
)
from tests.support.e2e import Server, decode_image, free_port, task_count
from tests.support.images import flat_png

pytestmark = pytest.mark.e2e



@pytest.fixture
def server(client_server: Server) -> Server:
    return client_server  # latency 0, relative result URLs (tests/e2e/conftest.py)


@pytest.fixture
def slow(slow_server: Server) -> Server:
    return slow_server


def client(server: Server, key: str | None = None, **kwargs: object) -> Client:
    return Client(server.base_url, key or server.key, poll_interval=0.2, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- creating images


def test_generate_waits_and_downloads(server: Server, tmp_path: Path) -> None:
    seen: list[Task] = []
    with client(server) as c:
        task = c.generate("a red bicycle", size="3:2", resolution="2k", n=2,
                          output_format="webp", on_progress=seen.append)
        paths = c.download_all(task, tmp_path)
    assert task.status == "succeeded" and task.model == "gpt-image-2"
    assert seen[-1].status == "succeeded"
    assert [p.name for p in paths] == [f"{task.id}_0.webp", f"{task.id}_1.webp"]
    assert task.images[0].url is not None and task.images[0].url.startswith("/p/img/")
    image = decode_image(paths[0].read_bytes())
    assert (image.width, image.height) == (2048, 1360)


def test_every_url_form_downloads(server: Server, basic_server: Server,
                                  tmp_path: Path) -> None:
    with client(server) as c:
        as_data = c.generate("data url", extra={"response_format": "data_url"})
        as_b64 = c.generate("base64", extra={"response_format": "b64_json"})
        assert as_data.images[0].url.startswith("data:image/png;base64,")  # type: ignore[union-attr]
        assert as_b64.images[0].b64_json
        data_path = c.download(as_data.images[0], tmp_path / "data.png")
        b64_path = c.download(as_b64.images[0], tmp_path)
    with client(basic_server) as c:
        absolute = c.generate("absolute")
        assert absolute.images[0].url.startswith(basic_server.base_url)  # type: ignore[union-attr]
        abs_path = c.download(absolute.images[0], tmp_path / "sub" / "abs.png")
    for path in (data_path, b64_path, abs_path):
        assert path.read_bytes().startswith(b"\x89PNG")
    assert b64_path.name == f"{as_b64.id}_0.png"


def test_edit_takes_paths_bytes_files_urls_and_a_mask(server: Server, tmp_path: Path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(flat_png(64, 64))
    mask = tmp_path / "mask.png"
    mask.write_bytes(flat_png(64, 64))
    data_url = "data:image/png;base64," + base64.b64encode(flat_png(32, 32)).decode()
    with client(server) as c, ref.open("rb") as handle:
        task = c.edit("blend them", [ref, flat_png(48, 48), handle, data_url], mask=mask,
                      size="1:1")
        single = c.edit("one image", str(ref))
    usage = task.result["usage"]  # type: ignore[index]
    assert usage["input_tokens_details"]["image_tokens"] == 4 * 256  # four references
    assert task.status == single.status == "succeeded"


def test_variations(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "square.png"
    source.write_bytes(flat_png(64, 64))
    with client(server) as c:
        task = c.variations(source, n=2, size="256x256")
        paths = c.download_all(task, tmp_path / "out")
    assert task.model == "dall-e-2" and len(paths) == 2
    assert decode_image(paths[1].read_bytes()).width == 256


def test_idempotency_key_gives_back_the_same_task(server: Server) -> None:
    with client(server) as c:
        first = c.generate("once", wait=False, idempotency_key="client-test-1")
        again = c.generate("once", wait=False, idempotency_key="client-test-1")
    assert first.id == again.id


# ---------------------------------------------------------------------- tasks


def test_tasks_get_events_wait_and_the_fallbacks(server: Server) -> None:
    with client(server) as c:
        queued = c.generate("later", wait=False)
        assert queued.status == "queued"
        events = list(c.tasks.events(queued.id))  # the served /events stream, ids and all
        assert events[-1].type == "task.succeeded" and all(e.id is not None for e in events)
        assert c.tasks.wait(queued.id).status == "succeeded"
        got = c.tasks.get(queued.id)
        assert got.status == "succeeded" and got.expires_at is not None
        # The server lists tasks (GET /v1/tasks): the newest is this one.
        page = c.tasks.list(limit=1)
        assert [t.id for t in page.data] == [queued.id] and page.last_id == queued.id
        with pytest.raises(NotFoundError, match="task_not_found"):
            c.tasks.get("img_nope")


def test_cancel_timeout_and_a_wait_that_is_not_an_error(slow: Server) -> None:
    with client(slow) as c:
        with pytest.raises(TaskTimeoutError) as waited:
            c.generate("slow", timeout=0.5)
        running = waited.value.task
        assert running.status in ("queued", "in_progress")
        cancelled = c.tasks.cancel(running.id)
        assert cancelled.status == "cancelled"
        assert c.tasks.wait(running.id).status == "cancelled"  # an answer, not an error


def test_a_failed_task_raises_with_its_error(failing_server: Server) -> None:
    with client(failing_server) as c:
        with pytest.raises(TaskFailedError) as failed:
            c.generate("doomed")
        assert failed.value.code == "upstream_error" and failed.value.task.status == "failed"
        queued = c.generate("doomed too", wait=False)
        assert c.tasks.wait(queued.id).status == "failed"


# ---------------------------------------------------------------------- errors


def test_typed_errors(server: Server, tmp_path: Path) -> None:
    before = task_count(server)
    with client(server, key="ig_wrong") as c, pytest.raises(AuthenticationError) as auth:
        c.generate("x")
    assert auth.value.code == "invalid_api_key" and auth.value.status == 401
    with client(server) as c:
        with pytest.raises(BadRequestError) as bad:
            c.generate("x", size="1000x1000")
        assert bad.value.param == "size" and bad.value.code == "invalid_value"
        with pytest.raises(NotFoundError) as unknown:
            c.generate("x", model="no-such-model")
        assert unknown.value.code == "model_not_found"
        with pytest.raises(InputError, match="cannot read"):
            c.edit("x", tmp_path / "missing.png")
    poor = server.create_key("poor", "--balance", "0")["key"]
    with client(server, key=poor) as c, pytest.raises(InsufficientBalanceError) as broke:
        c.generate("x")
    assert broke.value.code == "insufficient_balance"
    limited = server.create_key("limited", "--rpm", "1")["key"]
    with client(server, key=limited, max_retries=0) as c:
        c.generate("first", wait=False)
        with pytest.raises(RateLimitError) as limit:
            c.generate("second", wait=False)
    assert limit.value.retry_after is not None and limit.value.retry_after > 0
    assert task_count(server) == before + 1  # only the rate-limited key's first task
    with Client(f"http://127.0.0.1:{free_port()}", "ig_x", max_retries=0) as c, \
            pytest.raises(APIConnectionError, match="cannot reach"):
        c.generate("x")


# ---------------------------------------------------------------------- the async twin


def test_the_async_client_does_the_same(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "square.png"
    source.write_bytes(flat_png(64, 64))

    async def run() -> None:
        async with AsyncClient(server.base_url, server.key, poll_interval=0.2) as c:
            task = await c.generate("async", n=2)
            paths = await c.download_all(task, tmp_path / "a")
            assert len(paths) == 2
            edit = await c.edit("async edit", io.BytesIO(flat_png(32, 32)), mask=source)
            assert edit.status == "succeeded"
            variation = await c.variations(source, size="256x256")
            assert await c.download(variation.images[0], tmp_path / "v.png")
            queued = await c.generate("async later", wait=False)
            events = [e.type async for e in c.tasks.events(queued.id)]
            assert events[-1] == "task.succeeded"
            assert (await c.tasks.get(queued.id)).status == "succeeded"
            assert (await c.tasks.wait(queued.id)).status == "succeeded"
            assert (await c.tasks.cancel(queued.id)).status == "succeeded"  # already ended
            listed = await c.tasks.list(limit=1)
            assert [t.id for t in listed.data] == [queued.id]
            with pytest.raises(BadRequestError):
                await c.generate("x", size="1000x1000")

    asyncio.run(run())
