"""Absolute result URLs: `public_base_url`, else the origin the request came to, with
`X-Forwarded-Proto`/`X-Forwarded-Host` believed only from `trusted_proxies`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Scope

from imagegate.api.origin import ProxyTrust, parse_networks, request_origin
from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.wiring import build_backends

pytestmark = pytest.mark.anyio

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "img.example.com"}
LOOPBACK = ProxyTrust(parse_networks(["127.0.0.0/8", "::1/128"]))


@asynccontextmanager
async def client_for(tmp_path: Path, peer: str = "127.0.0.1", **settings: Any
                     ) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    config = Settings(data_dir=tmp_path, blob_store="memory", **settings)
    backends = await build_backends(config)
    key, _ = await backends.keys.create("origin")
    transport = httpx.ASGITransport(app=build_app(config, backends), client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, {"Authorization": f"Bearer {key}"}
    finally:
        await backends.aclose()


async def _sync_url(client: httpx.AsyncClient, auth: dict[str, str],
                    headers: dict[str, str] | None = None) -> str:
    r = await client.post("/v1/images/generations", json={"prompt": "origin"},
                          headers={**auth, **(headers or {})})
    assert r.status_code == 200, r.text
    url: str = r.json()["data"][0]["url"]
    return url


async def test_default_is_the_requests_own_origin(tmp_path: Path) -> None:
    async with client_for(tmp_path) as (client, auth):
        url = await _sync_url(client, auth)
        assert url.startswith("http://testserver/p/img/img_")
        # The URL downloads as given, without the API key.
        image = await client.get(url)
        assert image.status_code == 200 and image.content[:4] == b"\x89PNG"
        # The same URL on the task, by every path a client reads it.
        task_id = url.split("/")[5]
        task = (await client.get(f"/v1/tasks/{task_id}", headers=auth)).json()
        assert task["result"]["data"][0]["url"].startswith("http://testserver/p/img/")
        r = await client.post("/apimart/v1/images/generations", json={"prompt": "x"},
                              headers=auth)
        apimart_id = r.json()["data"][0]["task_id"]
        for _ in range(200):
            data = (await client.get(f"/apimart/v1/tasks/{apimart_id}", headers=auth)
                    ).json()["data"]
            if data["status"] == "completed":
                break
            await asyncio.sleep(0.05)
        assert data["result"]["images"][0]["url"][0].startswith("http://testserver/p/img/")
        r = await client.post("/openai/v1/images/generations",
                              json={"model": "dall-e-3", "prompt": "x"}, headers=auth)
        assert r.json()["data"][0]["url"].startswith("http://testserver/p/img/")


async def test_forwarded_headers_from_a_trusted_proxy(tmp_path: Path) -> None:
    async with client_for(tmp_path) as (client, auth):
        url = await _sync_url(client, auth, FORWARDED)
        assert url.startswith("https://img.example.com/p/img/img_")


async def test_forwarded_headers_from_anyone_else_are_ignored(tmp_path: Path) -> None:
    async with client_for(tmp_path, peer="203.0.113.9") as (client, auth):
        assert (await _sync_url(client, auth, FORWARDED)).startswith("http://testserver/")
    async with client_for(tmp_path / "b", trusted_proxies=[]) as (client, auth):
        assert (await _sync_url(client, auth, FORWARDED)).startswith("http://testserver/")


async def test_a_configured_proxy_network(tmp_path: Path) -> None:
    async with client_for(tmp_path, peer="10.1.2.3",
                          trusted_proxies=["10.0.0.0/8"]) as (client, auth):
        assert (await _sync_url(client, auth, FORWARDED)).startswith("https://img.example.com/")


async def test_public_base_url_wins_over_everything(tmp_path: Path) -> None:
    async with client_for(tmp_path, public_base_url="https://cdn.example.net/") as (client,
                                                                                   auth):
        url = await _sync_url(client, auth, FORWARDED)
        assert url.startswith("https://cdn.example.net/p/img/img_")


async def test_relative_and_data_modes_stay_available(tmp_path: Path) -> None:
    async with client_for(tmp_path, url_mode="relative") as (client, auth):
        assert (await _sync_url(client, auth)).startswith("/p/img/img_")
    async with client_for(tmp_path / "d", url_mode="data") as (client, auth):
        assert (await _sync_url(client, auth)).startswith("data:image/png;base64,")


def _scope(headers: dict[str, str], client: str = "127.0.0.1", scheme: str = "http",
           server: tuple[str, int] | None = ("127.0.0.1", 8000)) -> Scope:
    return {"type": "http", "scheme": scheme, "server": server, "client": (client, 1),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize("headers, client, expected", [
    ({"host": "img.example.com:8443"}, "127.0.0.1", "http://img.example.com:8443"),
    ({"host": "[::1]:8000"}, "::1", "http://[::1]:8000"),
    ({"host": "a", "x-forwarded-proto": "https, http", "x-forwarded-host": "b.example, c"},
     "127.0.0.1", "https://b.example"),
    ({"host": "a", "x-forwarded-proto": "gopher"}, "127.0.0.1", "http://a"),
    ({"host": "a", "x-forwarded-proto": "https"}, "192.0.2.1", "http://a"),
    # Nothing that could break out of the URL's authority is copied into links.
    ({"host": "evil.example/x?"}, "192.0.2.1", "http://127.0.0.1:8000"),
    ({"host": "a@evil.example"}, "192.0.2.1", "http://127.0.0.1:8000"),
    ({"host": "a", "x-forwarded-host": "evil.example/#"}, "127.0.0.1", "http://127.0.0.1:8000"),
    ({}, "192.0.2.1", "http://127.0.0.1:8000"),
])
def test_request_origin(headers: dict[str, str], client: str, expected: str) -> None:
    assert request_origin(_scope(headers, client), LOOPBACK) == expected


def test_request_origin_without_a_server_address() -> None:
    assert request_origin(_scope({}, server=None), LOOPBACK) == "http://localhost"
    assert request_origin(_scope({"host": "h"}, scheme="https"), ProxyTrust()) == "https://h"


def test_proxy_trust_remembers_verdicts_within_a_bound() -> None:
    trust = ProxyTrust(parse_networks(["10.0.0.0/8"]))
    assert trust.trusts("10.1.2.3") and trust.trusts("10.1.2.3")
    assert not trust.trusts("192.0.2.1") and not trust.trusts("not-an-address")
    for i in range(5000):  # more peers than the memo keeps: answers stay right
        assert trust.trusts(f"10.0.{i // 256}.{i % 256}")
        assert not trust.trusts(f"192.168.{i // 256}.{i % 256}")
    assert len(trust._memo) <= 4096
    assert not ProxyTrust().trusts("127.0.0.1")
