"""The Redis event bus beyond the shared contract: what happens when Redis goes away and
comes back (a private `redis-server` this test stops by PID), the wire format, and the bound
on a partial image's size."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagegate.domain.images import PartialImage
from imagegate.errors import BackendUnavailableError
from imagegate.tasks.events import EventKind, TaskEvent
from imagegate.tasks.redis_events import MAX_PARTIAL_BYTES, RedisEventBus, decode, encode, redact
from tests.support.e2e import free_port
from tests.support.redis import RedisProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


async def until(condition: object, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if condition():  # type: ignore[operator]
                return
            await asyncio.sleep(0.05)


async def test_an_outage_pauses_events_and_they_resume_without_a_restart(
        redis_process: RedisProcess, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="imagegate.events")
    api, worker = RedisEventBus(redis_process.url), RedisEventBus(redis_process.url)
    try:
        async with api.subscribe("img_o") as sub:
            await until(lambda: api.connected)
            await worker.publish(TaskEvent("img_o", EventKind.PROGRESS, progress=1))
            assert [e.progress for e in await sub.next(5)] == [1]

            redis_process.stop()
            await until(lambda: not api.connected)
            # Nothing raises, nothing hangs: publishing and waiting degrade to this process.
            await worker.publish(TaskEvent("img_o", EventKind.PROGRESS, progress=2))
            await worker.work_queued()
            assert await worker.wait_for_work(0.5) is True  # its own announcement
            assert await api.wait_for_work(0.2) is False
            await api.publish(TaskEvent("img_o", EventKind.PROGRESS, progress=3))
            assert [e.progress for e in await sub.next(2)] == [3]  # local delivery only
            assert any("unreachable" in r.getMessage() for r in caplog.records)

            redis_process.start()  # the same port: the same redis_url
            await until(lambda: api.connected)
            await worker.check()
            await until(lambda: worker.connected)
            # The subscription made before the outage is back, and so are wake-ups.
            await worker.publish(TaskEvent("img_o", EventKind.TERMINAL, status="succeeded"))
            assert [e.status for e in await sub.next(5)] == ["succeeded"]
            waiting = asyncio.create_task(api.wait_for_work(5))
            await asyncio.sleep(0.2)
            await worker.work_queued()
            assert await waiting is True
            assert any("is back" in r.getMessage() for r in caplog.records)
            # One warning each way, not one per reconnect attempt.
            assert sum("unreachable" in r.getMessage() for r in caplog.records) <= 2
    finally:
        await api.aclose()
        await worker.aclose()


async def test_a_refusing_redis_fails_the_check_naming_redis_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    bus = RedisEventBus(url)
    try:
        with pytest.raises(BackendUnavailableError) as err:
            await bus.check()
        assert err.value.setting == "redis_url"
        assert "hunter2" not in str(err.value) and "***" in str(err.value)
    finally:
        await bus.aclose()


def test_a_url_that_is_not_redis_is_refused_naming_redis_url() -> None:
    with pytest.raises(BackendUnavailableError) as err:
        RedisEventBus("http://127.0.0.1:6379")
    assert err.value.setting == "redis_url"


def test_the_wire_format_round_trips() -> None:
    for event in (TaskEvent("img_w", EventKind.STARTED),
                  TaskEvent("img_w", EventKind.PROGRESS, progress=55),
                  TaskEvent("img_w", EventKind.TERMINAL, status="failed"),
                  TaskEvent("img_w", EventKind.PARTIAL_IMAGE,
                            partial=PartialImage(2, 1, b"\x00\xffpng"))):
        payload = encode(event)
        assert payload is not None and decode(payload) == event


def test_malformed_messages_are_ignored() -> None:
    for junk in (b"", b"not json", b"{}", b'{"task_id": "x", "kind": "nope"}',
                 b'{"task_id": "x", "kind": "partial_image", "partial": {"b64": 5}}'):
        assert decode(junk) is None


def test_a_partial_image_over_the_bound_is_not_sent() -> None:
    big = PartialImage(0, 0, b"x" * (MAX_PARTIAL_BYTES + 1))
    assert encode(TaskEvent("img_big", EventKind.PARTIAL_IMAGE, partial=big)) is None


def test_passwords_are_redacted() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("rediss://user:s3cret@host/1") == "rediss://user:***@host/1"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
