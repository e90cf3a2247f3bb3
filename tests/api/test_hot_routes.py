"""`HotRoutesMiddleware`: `POST /v1/images/generations` is served ahead of FastAPI's stack,
with the body limit, the body budget, the request id and the API's error shape kept; every
other request still goes through the stack."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate.api.middleware import HotRoutesMiddleware
from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio

GENERATE = "/v1/images/generations"
BODY = {"model": "dall-e-2", "prompt": "a hot route", "size": "256x256"}


class Counted:
    """The app behind the hot routes, counting the requests that reach it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[tuple[str, str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path, max_body_bytes=4096) as e:
        yield e


@pytest.fixture
def stack(env: Env) -> Counted:
    front = env.app.front  # type: ignore[attr-defined]
    assert isinstance(front, HotRoutesMiddleware)
    counted = Counted(front.app)
    front.app = counted
    return counted


async def test_a_generation_is_served_ahead_of_the_stack(env: Env, stack: Counted) -> None:
    r = await env.post(GENERATE, BODY)
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["url"]
    assert r.headers["x-request-id"].startswith("req_")
    queued = await env.post(GENERATE + "?async=true", BODY)
    assert queued.status_code == 202, queued.text
    assert stack.paths == []
    # Everything else still goes through the stack: other routes, other methods.
    assert (await env.client.get("/v1/models", headers=env.auth)).status_code == 200
    wrong = await env.client.get(GENERATE, headers=env.auth)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == "method_not_allowed"
    assert stack.paths == [("GET", "/v1/models"), ("GET", GENERATE)]


async def test_errors_on_the_hot_route_keep_the_api_shape(env: Env, stack: Counted) -> None:
    tasks_before = await env.task_count()
    bad = await env.post(GENERATE, {**BODY, "size": "13x7"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "size"
    assert bad.json()["error"]["code"] == "invalid_value"
    assert bad.headers["x-request-id"].startswith("req_")
    anonymous = await env.client.post(GENERATE, json=BODY)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    not_json = await env.client.post(GENERATE, content=b"{", headers={
        **env.auth, "Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["type"] == (
        "invalid_request_error")
    assert await env.task_count() == tasks_before
    assert stack.paths == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_the_body_limit_holds_on_the_hot_route(env: Env, stack: Counted,
                                                     chunked: bool) -> None:
    body = b'{"prompt": "' + b"a" * 5000 + b'"}'

    async def pieces() -> AsyncIterator[bytes]:
        yield body[:2000]
        yield body[2000:]

    r = await env.client.post(GENERATE, content=pieces() if chunked else body, headers={
        **env.auth, "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert r.json()["error"]["param"] == "body"
    assert await env.task_count() == 0
    assert env.backends.body_budget.used == 0  # what the body held was given back
    assert stack.paths == []


def test_post_routes_need_the_body_limit() -> None:
    async def endpoint(_request: object) -> None: ...

    with pytest.raises(ValueError, match="max_body_bytes"):
        HotRoutesMiddleware(Counted(endpoint), [], posts={GENERATE: endpoint})  # type: ignore[arg-type,dict-item]
