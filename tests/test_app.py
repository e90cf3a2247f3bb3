"""The app's own answers: every 405 says which methods the path has (`Allow`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path, run_workers=False) as e:
        yield e


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/images/generations", "POST"),
    ("DELETE", "/v1/tasks/img_x", "GET, HEAD"),
    ("PUT", "/p/img/img_x/0", "GET, HEAD"),
    ("GET", "/v1/tasks/img_x/cancel", "POST"),
    # One route per method at this path: Allow names them all, not the first one matched.
    ("DELETE", "/admin/keys", "GET, POST"),
    ("GET", "/apimart/v1/images/generations", "POST"),
    # The literal route is the resource; `/apimart/v1/tasks/{task_id}` also matches the path.
    ("OPTIONS", "/apimart/v1/tasks/batch", "POST"),
])
async def test_every_405_carries_allow(env: Env, method: str, path: str, allow: str) -> None:
    r = await env.client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    error = r.json()["error"]
    if path.startswith("/apimart/"):
        assert error["code"] == 405
    else:
        assert error["code"] == "method_not_allowed" and error["type"] == "invalid_request_error"
