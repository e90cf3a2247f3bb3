"""The web UI: the playground at `/ui/` and the admin console at `/ui/admin` (docs/ui.md).

Plain HTML, CSS and JavaScript modules kept in `imagegate/api/ui/` and shipped inside the
package (no build step, nothing from another origin, no third-party code). Only the files of
that folder with a known type are served, by exact name; there is no directory listing and
no path with a separator, so nothing outside the folder can be asked for.

Every UI response carries a strict Content-Security-Policy: no inline script, no framing.
Result images come from this origin, except in deployments whose links point elsewhere
(`public_base_url`, or presigned S3 redirects): `img-src` then names those origins too.
"""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from imagegate.api.deps import SettingsDep
from imagegate.config import Settings
from imagegate.errors import NotFoundError

PREFIX = "/ui"
STATIC = f"{PREFIX}/static"
MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# A file name of the folder: letters, digits, dashes and one extension; no separator, no dot
# first, so neither `..` nor a hidden file can be named.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\.[a-z]+")
# The files change with the package; a short cache keeps a reload after an upgrade honest.
_CACHE = "no-cache"
# Presigned S3 URLs of AWS itself (no s3_endpoint) live on these hosts.
_AWS_S3 = "https://*.amazonaws.com"

router = APIRouter(include_in_schema=False)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def image_origins(settings: Settings) -> list[str]:
    """Origins other than this one that result images may be loaded from."""
    out: list[str] = []
    if settings.public_base_url:
        origin = _origin(settings.public_base_url)
        if origin:
            out.append(origin)
    if settings.blob_store == "s3" and settings.s3_presigned_redirect:
        origin = _origin(settings.s3_endpoint) if settings.s3_endpoint else _AWS_S3
        if origin:
            out.append(origin)
    return out


def content_security_policy(settings: Settings) -> str:
    img = " ".join(("'self'", "data:", "blob:", *image_origins(settings)))
    return "; ".join((
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src {img}",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ))


def _headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "Cache-Control": _CACHE,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _asset_dir() -> Any:
    return files("imagegate.api") / "ui"


def _file(name: str, settings: Settings) -> Response:
    media_type = MEDIA_TYPES.get("." + name.rpartition(".")[2])
    path = _asset_dir() / name
    if not _NAME.fullmatch(name) or media_type is None or not path.is_file():
        raise NotFoundError("Unknown path", code="unknown_url")
    return Response(path.read_bytes(), media_type=media_type, headers=_headers(settings))


@router.get("/")
async def root(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{request.scope.get('root_path', '')}{PREFIX}/", status_code=307)


@router.get(f"{PREFIX}/")
async def playground(settings: SettingsDep) -> Response:
    return _file("index.html", settings)


@router.get(f"{PREFIX}/admin")
async def admin_console(settings: SettingsDep) -> Response:
    return _file("admin.html", settings)


@router.get(STATIC + "/{name}")
async def asset(name: str, settings: SettingsDep) -> Response:
    return _file(name, settings)
