"""`/docs` and `/redoc` work offline (`imagegate/api/docs_pages.py`): every script, stylesheet
and icon they name is served by imagegate itself, from the same origin, with its type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from imagegate.app import build_app
from imagegate.config import Settings

pytestmark = pytest.mark.anyio
ORIGIN = "http://testserver"
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class Links(HTMLParser):
    """Every `src` and `href` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.extend(value for name, value in attrs if name in ("src", "href") and value)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(Settings(data_dir=tmp_path, blob_store="memory", run_workers=False))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url=ORIGIN) as c:
        yield c


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_page_loads_only_its_own_assets(client: httpx.AsyncClient, page: str) -> None:
    resp = await client.get(page)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    parser = Links()
    parser.feed(resp.text)
    assert parser.found, f"{page} names no assets"
    for link in parser.found:
        url = urljoin(ORIGIN + page, link)
        assert urlsplit(url)._replace(path="", query="", fragment="").geturl() == ORIGIN, (
            f"{page} loads {link} from another origin")
        asset = await client.get(url)
        assert asset.status_code == 200, link
        wanted = TYPES[Path(urlsplit(url).path).suffix]
        assert asset.headers["content-type"].split(";")[0] == wanted, link
        assert len(asset.content) > 0
    assert "googleapis" not in resp.text and "cdn." not in resp.text


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_browser_is_told_to_load_nothing_foreign(client: httpx.AsyncClient,
                                                            page: str) -> None:
    """ReDoc's bundle asks for its footer logo from cdn.redoc.ly whatever its options say;
    the Content-Security-Policy is what keeps the browser from sending that request."""
    policy = (await client.get(page)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["img-src"] == "'self' data:"
    allowed = {"'self'", "'none'", "'unsafe-inline'", "data:", "blob:"}
    for name, sources in directives.items():
        assert set(sources.split()) <= allowed, f"{name} allows {sources}"


async def test_swagger_ui_has_no_online_validator(client: httpx.AsyncClient) -> None:
    """Swagger UI would send the document's URL to validator.swagger.io for a badge."""
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html
    assert "'/openapi.json'" in html or '"/openapi.json"' in html


async def test_both_pages_and_the_schema_are_served(client: httpx.AsyncClient) -> None:
    names = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
    pages = (await client.get("/docs")).text + (await client.get("/redoc")).text
    assert {n for n in names if f"/docs/static/{n}" in pages} == names
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200


@pytest.mark.parametrize("name", ["index.html", "..%2Fcore.py", "swagger-ui-bundle.js.map"])
async def test_only_the_known_assets_are_served(client: httpx.AsyncClient, name: str) -> None:
    resp = await client.get(f"/docs/static/{name}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "unknown_url"
