"""UpstreamClient over a real fake server: every upstream failure becomes the right
`imagegate.errors` exception (the translation table of the shared upstream API)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from imagegate.config import ChannelConfig
from imagegate.errors import ProviderError, ProviderRejectedError
from imagegate.providers.upstream import UpstreamClient, retry_after_seconds, translate
from imagegate.testing.upstreams.openai_api import FakeOpenAI

pytestmark = pytest.mark.anyio

BODY = {"model": "gpt-image-2", "prompt": "a red fox", "size": "1024x1024"}


def channel(url: str, **kw: Any) -> ChannelConfig:
    values: dict[str, Any] = {
        "name": "up1", "adapter": "openai", "base_url": url + "/v1",
        "api_key": SecretStr("sk-fake"), "models": ["gpt-image-2"],
    }
    values.update(kw)
    return ChannelConfig(**values)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[UpstreamClient]:
    c = UpstreamClient(channel(fake.url))
    try:
        yield c
    finally:
        await c.aclose()


async def test_post_json_sends_bearer_and_parses(fake: FakeOpenAI, client: UpstreamClient) -> None:
    answer = await client.post_json("/images/generations", BODY)
    assert len(answer["data"]) == 1
    assert fake.requests[-1].headers["Authorization"] == "Bearer sk-fake"
    assert fake.requests[-1].json == BODY
    assert client.origin == fake.url


TABLE: list[tuple[int, Any, dict[str, str], type[ProviderError], str, float | None]] = [
    (400, {"error": {"message": "Your request was rejected by the safety system.",
                     "type": "image_generation_user_error", "code": "moderation_blocked"}},
     {}, ProviderRejectedError, "content_policy_violation", None),  # one code for all
    (400, {"error": {"code": 400, "message": "提示词包含违规内容",
                     "type": "invalid_request_error"}},
     {}, ProviderRejectedError, "content_policy_violation", None),
    (400, {"error": {"code": 400, "message": "bad size", "type": "invalid_request_error"}},
     {}, ProviderRejectedError, "upstream_rejected", None),
    (413, "payload too large", {}, ProviderRejectedError, "upstream_rejected", None),
    (422, {"msg": "prompt is empty"}, {}, ProviderRejectedError, "upstream_rejected", None),
    (401, None, {}, ProviderError, "upstream_auth", None),
    (403, {"message": "forbidden key"}, {}, ProviderError, "upstream_auth", None),
    (402, None, {}, ProviderError, "upstream_quota", None),
    (404, None, {}, ProviderError, "upstream_not_found", None),
    (429, None, {"Retry-After": "7"}, ProviderError, "upstream_rate_limited", 7.0),
    (429, {"error": {"message": "quota", "type": "insufficient_quota",
                     "code": "insufficient_quota"}}, {}, ProviderError, "upstream_quota", None),
    (500, None, {}, ProviderError, "upstream_error", None),
    (502, "<html>bad gateway</html>", {}, ProviderError, "upstream_error", None),
    (503, None, {}, ProviderError, "upstream_error", None),
]


@pytest.mark.parametrize(("status", "body", "headers", "cls", "code", "retry_after"), TABLE)
async def test_translation_table(
    fake: FakeOpenAI, client: UpstreamClient, status: int, body: Any,
    headers: dict[str, str], cls: type[ProviderError], code: str, retry_after: float | None,
) -> None:
    fake.fail_next(status, body, headers=headers)
    with pytest.raises(ProviderError) as info:
        await client.post_json("/images/generations", BODY)
    exc = info.value
    assert type(exc) is cls
    assert exc.code == code
    assert exc.retryable is (cls is ProviderError)
    if retry_after is not None:
        assert exc.retry_after == retry_after
    if cls is ProviderRejectedError and isinstance(body, dict):
        # The client sees the upstream's own words.
        inner = body.get("error", body)
        assert exc.message == inner.get("message", inner.get("msg"))


async def test_default_429_carries_retry_after(fake: FakeOpenAI, client: UpstreamClient) -> None:
    fake.fail_next(429)
    with pytest.raises(ProviderError) as info:
        await client.post_json("/images/generations", BODY)
    assert info.value.code == "upstream_rate_limited"
    assert info.value.retry_after == 1.0


async def test_wrong_key_is_upstream_auth(fake: FakeOpenAI) -> None:
    c = UpstreamClient(channel(fake.url, api_key=SecretStr("sk-wrong-secret")))
    try:
        with pytest.raises(ProviderError) as info:
            await c.post_json("/images/generations", BODY)
    finally:
        await c.aclose()
    assert info.value.code == "upstream_auth"
    assert info.value.retryable
    assert "sk-wrong-secret" not in str(info.value)
    assert fake.submissions == 0


async def test_hang_times_out(fake: FakeOpenAI) -> None:
    fake.fail_next(kind="hang")
    c = UpstreamClient(channel(fake.url, timeout=0.3))
    try:
        with pytest.raises(ProviderError) as info:
            await c.post_json("/images/generations", BODY)
    finally:
        await c.aclose()
    assert info.value.code == "upstream_timeout"
    assert info.value.retryable


async def test_dropped_connection_is_unavailable(fake: FakeOpenAI, client: UpstreamClient) -> None:
    fake.fail_next(kind="drop")
    with pytest.raises(ProviderError) as info:
        await client.post_json("/images/generations", BODY)
    assert info.value.code == "upstream_unavailable"
    # The next request works: the fault was consumed and the pool recovered.
    assert (await client.post_json("/images/generations", BODY))["data"]


async def test_connection_refused_is_unavailable() -> None:
    server = FakeOpenAI()
    url = await server.start()
    await server.stop()  # nothing listens on that port any more
    c = UpstreamClient(channel(url, connect_timeout=2))
    try:
        with pytest.raises(ProviderError) as info:
            await c.get_json("/models")
    finally:
        await c.aclose()
    assert info.value.code == "upstream_unavailable"


async def test_non_json_2xx_is_bad_response(fake: FakeOpenAI) -> None:
    path = fake.store_file(b"not json at all", "text/plain")
    c = UpstreamClient(channel(fake.url, base_url=fake.url))
    try:
        with pytest.raises(ProviderError) as info:
            await c.get_json(path)
    finally:
        await c.aclose()
    assert info.value.code == "upstream_bad_response"


async def test_get_bytes_same_origin_capped(fake: FakeOpenAI, client: UpstreamClient) -> None:
    path = fake.store_file(b"x" * 5000)
    assert await client.get_bytes(fake.url + path, 5000) == b"x" * 5000
    with pytest.raises(ProviderError) as info:
        await client.get_bytes(fake.url + path, 4999)
    assert info.value.code == "upstream_bad_response"
    with pytest.raises(ProviderError) as info:
        await client.get_bytes("http://127.0.0.2:1" + path, 5000)
    assert info.value.code == "upstream_bad_result"
    with pytest.raises(ProviderError) as info:
        await client.get_bytes(fake.url + "/files/missing.png", 5000)
    assert info.value.code == "upstream_bad_result"


def test_translate_redacts_the_key_and_reads_bodies() -> None:
    exc = translate(401, b'{"error": {"message": "bad key sk-secret-123"}}', {},
                    secret="sk-secret-123")
    assert "sk-secret-123" not in exc.message
    assert translate(400, b"plain words", {}).message == "plain words"
    assert translate(400, {"error": "a string error"}).message == "a string error"
    assert translate(400, b"", {}).message == "HTTP 400"
    assert translate(408, b"", {}).code == "upstream_timeout"
    assert translate(418, b"", {}).code == "upstream_error"


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    seconds = retry_after_seconds(later)
    assert seconds is not None and 100 < seconds <= 120


class _Gathering:
    """A loopback upstream that holds every request until `expected` are in flight at once
    (or 20 s pass), then answers them all: the peak it saw is what the client let through."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.in_flight = self.peak = 0
        self.all_here = asyncio.Event()

    async def handle(self, _request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.in_flight >= self.expected:
            self.all_here.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                await self.all_here.wait()
        self.in_flight -= 1
        return web.json_response({"data": []})


@contextlib.asynccontextmanager
async def serve_get(handler: Any, path: str = "/v1/ping") -> AsyncIterator[str]:
    """A loopback HTTP server answering GET `path` with `handler`; yields its base URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_channel_without_concurrency_has_no_hidden_cap() -> None:
    """aiohttp's connector holds 100 connections unless told otherwise: a channel without
    `concurrency` must hold as many upstream calls as there are tasks for it."""
    upstream = _Gathering(150)
    async with serve_get(upstream.handle) as url:
        client = UpstreamClient(channel(url))
        try:
            await asyncio.gather(*(client.get_json("/ping") for _ in range(150)))
        finally:
            await client.aclose()
    assert upstream.peak == 150


async def test_a_channels_concurrency_caps_its_connections() -> None:
    upstream = _Gathering(10**6)  # never all here: each waits for a release instead
    async with serve_get(upstream.handle) as url:
        client = UpstreamClient(channel(url, concurrency=5))
        try:
            calls = asyncio.gather(*(client.get_json("/ping") for _ in range(20)))
            for _ in range(200):  # until the cap is reached (bounded)
                if upstream.in_flight >= 5:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # room for a sixth, if the cap leaked
            assert upstream.in_flight == 5
            upstream.all_here.set()
            await calls
        finally:
            await client.aclose()
    assert upstream.peak == 5
