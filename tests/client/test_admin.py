"""`AdminClient`, the client's admin side, against the real app served on loopback: channels
with the configured or the kept admin token, refusals as `AdminAnswerError`, no server as
`ServerUnreachable`; and against a fake server for answers the app never gives."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from imagegate.client import (
    AdminAnswerError,
    AdminClient,
    AdminError,
    ServerUnreachable,
    UnexpectedAnswer,
)
from imagegate.config import Settings
from imagegate.secret_files import read_admin_token

pytestmark = pytest.mark.anyio

ADMIN = "iga_admin-token-for-tests"
SECRET = "sk-channel-secret-value"
CHANNEL = {"name": "resale", "adapter": "openai_compatible",
           "base_url": "https://resale.example/v1", "api_key": SECRET,
           "models": ["gpt-image-2"], "concurrency": 2}


@pytest.fixture(autouse=True)
def _no_official_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    # An OPENAI_API_KEY in the environment would add the official channel to the list.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


async def channels(url: str, token: str | None) -> list[dict[str, Any]]:
    async with AdminClient(url, token) as admin:
        return await admin.channels()


async def test_channels_of_a_served_app(serve_app: Any) -> None:
    url = serve_app(admin_token=ADMIN, channels=[CHANNEL])
    rows = await channels(url, ADMIN)
    assert [r["name"] for r in rows] == ["resale"]
    row = rows[0]
    assert (row["adapter"], row["host"], row["models"]) == ("openai_compatible",
                                                            "resale.example", ["gpt-image-2"])
    assert row["breaker"] == "closed" and row["in_flight"] == 0 and row["concurrency"] == 2
    assert SECRET not in str(rows)
    assert await channels(url + "/", ADMIN) == rows  # a trailing slash is the same server


async def test_the_token_the_server_kept_is_the_one_a_client_reads(
        serve_app: Any, tmp_path: Path) -> None:
    url = serve_app()  # no admin_token configured: the server creates and keeps one
    token = read_admin_token(Settings(data_dir=tmp_path))
    assert token is not None and token.startswith("iga_")
    assert await channels(url, token) == []  # the sandbox serves every model: no channels


async def test_a_refusal_is_an_answer_error(serve_app: Any) -> None:
    url = serve_app(admin_token=ADMIN)
    with pytest.raises(AdminAnswerError) as wrong:
        await channels(url, "wrong")
    assert (wrong.value.status, wrong.value.message) == (403, "The admin token is not valid.")
    assert str(wrong.value) == f"{url} answered 403: The admin token is not valid."
    with pytest.raises(AdminAnswerError) as missing:
        await channels(url + "/", None)  # no token: no Authorization header at all
    assert missing.value.status == 401
    assert str(missing.value).startswith(f"{url}/ answered 401: ")  # the URL as given


async def test_no_server_is_unreachable_not_an_answer() -> None:
    with socket.socket() as sock:  # a port that was just free: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ServerUnreachable):
        await channels(f"http://127.0.0.1:{port}", ADMIN)
    assert issubclass(ServerUnreachable, AdminError) and issubclass(AdminAnswerError, AdminError)


async def serve_fake(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/admin/channels", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_channels_against_a_fake_server() -> None:
    rows = [{"name": "alpha", "adapter": "openai", "host": "h", "models": ["m"], "priority": 0,
             "weight": 1, "official": False, "health": "ok", "breaker": "closed",
             "in_flight": 0, "concurrency": None, "requests": 0, "errors": 0,
             "error_rate": 0.0, "p50_seconds": None, "last_error": None}]

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("authorization") != f"Bearer {ADMIN}":
            return web.json_response({"error": {"message": "The admin token is not valid."}},
                                     status=403)
        return web.json_response(rows)

    runner, url = await serve_fake(handler)
    try:
        assert await channels(url, ADMIN) == rows
        with pytest.raises(AdminAnswerError, match="403: The admin token is not valid"):
            await channels(url, "wrong")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("status", "body", "content_type", "error", "text"), [
    (200, "<html>a proxy page</html>", "text/html", UnexpectedAnswer,
     "unexpected answer from {url}: Expecting value: line 1 column 1 (char 0)"),
    (502, "Bad Gateway", "text/plain", UnexpectedAnswer, "unexpected answer from {url}: "),
    (200, '{"not": "a list"}', "application/json", AdminAnswerError,
     "{url} answered 200: None"),
    (500, '{"error": "a plain string"}', "application/json", AdminAnswerError,
     "{url} answered 500: None"),
    (500, '["odd"]', "application/json", AdminAnswerError, "{url} answered 500: ['odd']"),
])
async def test_answers_that_are_not_channels(status: int, body: str, content_type: str,
                                             error: type[AdminError], text: str) -> None:
    async def handler(_request: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=content_type)

    runner, url = await serve_fake(handler)
    try:
        with pytest.raises(error) as raised:
            await channels(url, ADMIN)
        assert str(raised.value).startswith(text.format(url=url))
    finally:
        await runner.cleanup()


async def test_calls_need_the_context_manager() -> None:
    with pytest.raises(RuntimeError, match="async with AdminClient"):
        await AdminClient("http://127.0.0.1:1", ADMIN).channels()
