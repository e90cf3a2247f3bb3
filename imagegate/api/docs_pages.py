"""`/docs` (Swagger UI) and `/redoc` (ReDoc), working offline: their scripts, stylesheet and
favicon are served by imagegate itself under `/docs/static/`, never from a CDN, so the pages
work on a machine with no internet and tell no third party who reads them.

The files come from the `fastapi-offline` package, which ships Swagger UI's bundle and
stylesheet, ReDoc's standalone bundle and FastAPI's favicon; nothing is copied into this
repository. Only those four files are served (a fixed table, not a directory listing).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response

from imagegate.errors import NotFoundError

STATIC = "/docs/static"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Swagger UI's default validatorUrl sends the document's URL to validator.swagger.io and
# shows a badge loaded from there; null turns that off, so the page loads nothing foreign.
SWAGGER_PARAMETERS: dict[str, Any] = {"validatorUrl": None}
# Bundles change only with the package version; a day of caching spares reloads.
_CACHE = "public, max-age=86400"
# The pages may load only from this origin, and the browser enforces it: ReDoc's sidebar
# footer asks for its logo from cdn.redoc.ly whatever its options say, and with this policy
# the request is never sent (ReDoc then leaves the logo out). The inline scripts are the
# pages' own set-up code; ReDoc's search runs in a worker made from a blob: URL; both UIs use
# inline styles and data: images.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'self'",
))

router = APIRouter(include_in_schema=False)


def _asset_dir() -> Any:
    return files("fastapi_offline") / "static"


def _root(request: Request) -> str:
    # Behind a proxy that mounts the app under a prefix, the pages must ask for it.
    root: str = request.scope.get("root_path", "")
    return root


def _page(html: HTMLResponse) -> HTMLResponse:
    html.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return html


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return _page(get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC}/favicon.png",
        oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT}",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    ))


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return _page(get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{STATIC}/favicon.png",
        with_google_fonts=False,
    ))


@router.get(STATIC + "/{name}")
async def asset(name: str) -> Response:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError("Unknown path", code="unknown_url")
    data = (_asset_dir() / name).read_bytes()
    return Response(data, media_type=media_type, headers={"Cache-Control": _CACHE})
