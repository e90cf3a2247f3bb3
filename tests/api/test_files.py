"""`GET`/`HEAD /p/img/{task_id}/{index}?exp=&sig=`: the signed image link, read exactly as the
server wrote it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.profiles import Env, open_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with open_env(tmp_path) as e:
        yield e


async def _image_url(env: Env) -> str:
    r = await env.post("/v1/images/generations", {"prompt": "a signed lighthouse"})
    assert r.status_code == 200, r.text
    url: str = r.json()["data"][0]["url"]
    return url


def _parts(url: str) -> tuple[str, str, str, str]:
    path, query = urlsplit(url)[2:4]
    _, _, _, task_id, index = path.split("/")
    q = parse_qs(query)
    return task_id, index, q["exp"][0], q["sig"][0]


async def test_head_answers_like_get_without_the_body(env: Env) -> None:
    url = await _image_url(env)
    got = await env.client.get(url)
    head = await env.client.head(url)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert head.headers[name] == got.headers[name], name
    assert int(head.headers["content-length"]) == len(got.content) > 0
    cached = await env.client.head(url, headers={"If-None-Match": got.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""


async def test_head_errors_match_get(env: Env) -> None:
    url = await _image_url(env)
    task_id, _, exp, _ = _parts(url)
    forged = url.replace("sig=", "sig=x")
    assert (await env.client.head(forged)).status_code == 403
    assert (await env.client.get(forged)).status_code == 403
    beyond = env.backends.links.signer.path(task_id, 7, int(exp))
    assert (await env.client.head(beyond)).status_code == 404
    assert (await env.client.get(beyond)).status_code == 404


@pytest.mark.parametrize("spell", [
    lambda n: "+" + n, lambda n: "0" + n, lambda n: n[:1] + "_" + n[1:], lambda n: "%20" + n,
    lambda n: n + "%20", lambda n: n.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
])
async def test_exp_and_index_only_in_canonical_form(env: Env, spell: Callable[[str], str]
                                                     ) -> None:
    url = await _image_url(env)
    task_id, index, exp, sig = _parts(url)
    assert (await env.client.get(url)).status_code == 200
    for bad_index, bad_exp in ((spell(index), exp), (index, spell(exp))):
        r = await env.client.get(f"/p/img/{task_id}/{bad_index}?exp={bad_exp}&sig={sig}")
        assert r.status_code == 403, (bad_index, bad_exp)
        assert r.json()["error"]["code"] == "invalid_signature"
