"""The web UI's pages and files (`imagegate/api/ui_pages.py`): what is served, with which
Content-Security-Policy, and that nothing else is (the browser tests are in tests/ui/)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from imagegate.api import ui_pages
from imagegate.app import build_app
from imagegate.config import Settings
from imagegate.wiring import build_backends

pytestmark = pytest.mark.anyio

UI_DIR = Path(ui_pages.__file__).parent / "ui"


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    backends = await build_backends(settings)
    app = build_app(settings, backends)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await backends.aclose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(Settings(data_dir=tmp_path, blob_store="memory", run_workers=False)):
        yield c


def _csp(r: httpx.Response) -> dict[str, str]:
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1]
            for part in r.headers["content-security-policy"].split("; ")}


async def test_root_redirects_to_the_playground(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/ui/"


@pytest.mark.parametrize(("path", "marker"), [("/ui/", 'data-testid="api-key"'),
                                              ("/ui/admin", 'data-testid="admin-token"')])
async def test_pages_carry_a_strict_policy(client: httpx.AsyncClient, path: str,
                                           marker: str) -> None:
    r = await client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert marker in r.text
    csp = _csp(r)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'" and csp["connect-src"] == "'self'"
    assert csp["img-src"] == "'self' data: blob:"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_no_inline_script_style_or_handler_and_nothing_foreign() -> None:
    """What the policy would block anyway, checked in the source so a mistake shows here."""
    for path in UI_DIR.iterdir():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path.name
            assert "<style" not in text and " style=" not in text, path.name
            assert not re.search(r"\son[a-z]+=", text), path.name
        assert not re.search(r"(?:src|href)=\"(?:https?:)?//", text), path.name
        assert "@import" not in text and "url(http" not in text, path.name


async def test_every_file_of_the_folder_is_served(client: httpx.AsyncClient) -> None:
    for path in UI_DIR.iterdir():
        r = await client.get(f"/ui/static/{path.name}")
        assert r.status_code == 200, path.name
        assert r.content == path.read_bytes()
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


@pytest.mark.parametrize("name", ["missing.js", "..%2Fui_pages.py", "%2E%2E%2Fapp.py",
                                  ".hidden.js", "ui_pages.py", "index.HTML"])
async def test_nothing_else_is_served(client: httpx.AsyncClient, name: str) -> None:
    r = await client.get(f"/ui/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "unknown_url"


async def test_ui_is_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]


async def test_image_origins_follow_the_settings(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, blob_store="memory", run_workers=False,
                        public_base_url="https://img.example.com/base")
    assert ui_pages.image_origins(settings) == ["https://img.example.com"]
    s3 = Settings(data_dir=tmp_path, blob_store="s3", s3_bucket="b",
                  s3_endpoint="https://s3.example.net:9000", s3_presigned_redirect=True)
    assert ui_pages.image_origins(s3) == ["https://s3.example.net:9000"]
    aws = Settings(data_dir=tmp_path, blob_store="s3", s3_bucket="b",
                   s3_presigned_redirect=True)
    assert ui_pages.image_origins(aws) == ["https://*.amazonaws.com"]
    async for c in _client(settings):
        assert _csp(await c.get("/ui/"))["img-src"] == "'self' data: blob: https://img.example.com"
