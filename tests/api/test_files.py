"""`GET`/`HEAD /p/img/{task_id}/{index}?exp=&sig=`: the signed image link, read exactly as the
server wrote it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.contracts.conftest import s3_settings
from tests.support.profiles import Env, open_env
from tests.support.s3 import S3Server

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


@pytest.fixture(params=["local", "memory", "s3"])
async def stored(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    """The app on every blob store: results stream from files, memory or an S3 bucket."""
    async with open_env(tmp_path, **store_settings(request, request.param, tmp_path)) as e:
        yield e


def store_settings(request: pytest.FixtureRequest, store: str, tmp_path: Path, **more: Any
                   ) -> dict[str, Any]:
    """Settings of the app on `store` (S3: the session's moto server, a prefix of its own,
    and the shared secrets a distributed setup must configure)."""
    if store != "s3":
        return {"blob_store": store, **more}
    server: S3Server = request.getfixturevalue("s3_server")
    settings = s3_settings(tmp_path, server, request.getfixturevalue("s3_bucket"), **more)
    return {name: getattr(settings, name) for name in settings.model_fields_set
            if name != "data_dir"} | {"signing_secret": "s" * 32, "admin_token": "a" * 32}


async def test_a_range_gets_206_with_exactly_that_part(stored: Env) -> None:
    url = await _image_url(stored)
    whole = await stored.client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    body, size = whole.content, len(whole.content)
    for header, part in (("bytes=0-9", body[:10]), ("bytes=10-", body[10:]),
                         ("bytes=-5", body[-5:]), ("bytes=5-5", body[5:6]),
                         (f"bytes=3-{size + 100}", body[3:])):
        r = await stored.client.get(url, headers={"Range": header})
        assert r.status_code == 206, (header, r.text)
        assert r.content == part, header
        start = size - 5 if header == "bytes=-5" else int(header[6:].split("-")[0])
        assert r.headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/{size}"
        assert r.headers["content-length"] == str(len(part))
        assert r.headers["etag"] == whole.headers["etag"]
    head = await stored.client.head(url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 206 and head.content == b""
    assert head.headers["content-range"] == f"bytes 0-9/{size}"


async def test_ranges_it_does_not_serve(stored: Env) -> None:
    url = await _image_url(stored)
    whole = await stored.client.get(url)
    size, etag = len(whole.content), whole.headers["etag"]
    past = await stored.client.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
    assert past.json()["error"]["code"] == "range_not_satisfiable"
    for ignored in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=x-y"):
        r = await stored.client.get(url, headers={"Range": ignored})
        assert r.status_code == 200 and r.content == whole.content, ignored
    stale = await stored.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == whole.content
    fresh = await stored.client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == whole.content[:10]


async def test_a_deleted_blob_is_404_whatever_the_range(stored: Env) -> None:
    url = await _image_url(stored)
    task_id = _parts(url)[0]
    await stored.backends.blobs.delete_prefix(f"tasks/{task_id}/")
    for headers in ({}, {"Range": "bytes=0-9"}):
        for method in ("GET", "HEAD"):
            r = await stored.client.request(method, url, headers=headers)
            assert r.status_code == 404, (method, headers)


@pytest.mark.parametrize("store", ["memory", "s3"])
async def test_presigned_redirect(request: pytest.FixtureRequest, tmp_path: Path, store: str
                                  ) -> None:
    """With `s3_presigned_redirect` S3 answers a 302 to the object itself; a store without
    presigned URLs streams as before."""
    overrides = store_settings(request, store, tmp_path, s3_presigned_redirect=True)
    async with open_env(tmp_path, **overrides) as env:
        url = await _image_url(env)
        r = await env.client.get(url)
        if store == "memory":
            assert r.status_code == 200 and r.content
            return
        assert r.status_code == 302 and r.headers["cache-control"] == "private, no-store"
        location = r.headers["location"]
        assert location.startswith(overrides["s3_endpoint"]) and "X-Amz-Signature=" in location
        async with httpx.AsyncClient(timeout=10) as plain:
            direct = await plain.get(location)
        assert direct.status_code == 200 and direct.headers["content-type"] == "image/png"
        task = await env.backends.tasks.lookup(_parts(url)[0])
        assert task is not None and direct.content == await env.backends.links.read(
            task.images[0])
