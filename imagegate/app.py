"""`build_app(settings)`: the HTTP surface — routers, error handlers, middleware and the
lifespan that builds the backends (`wiring.build_backends`) when the app starts. No globals:
the backends hang off `app.state.backends`, and routes take the few they use through the
dependencies of `api/deps.py`. `build_probe_app(backends)`: the little listener of an
`imagegate worker` (`metrics_port`): `/metrics`, `/healthz`, `/readyz`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from imagegate import __version__
from imagegate.api import (
    admin,
    async_aliases,
    docs_pages,
    edits,
    files,
    health,
    images,
    models,
    moderation,
    openapi,
    task_events,
    tasks,
    ui_pages,
    usage,
    variations,
    webhooks,
)
from imagegate.api import metrics as metrics_api
from imagegate.api.middleware import (
    BodyBudgetMiddleware,
    BodyLimitMiddleware,
    HotRoutesMiddleware,
    RequestContextMiddleware,
)
from imagegate.api.profiles import apimart
from imagegate.api.profiles import openai as openai_profile
from imagegate.api.profiles.errors import render_error
from imagegate.api.responses import JSONResponse
from imagegate.config import Settings
from imagegate.domain.catalog import load_catalog
from imagegate.errors import ImagegateError, InvalidRequestError, NotFoundError
from imagegate.moderation.service import SettingsLoader
from imagegate.reload import reload_on_sighup
from imagegate.wiring import Backends, build_backends


def _error_response(exc: ImagegateError, path: str | None, status: int | None = None
                    ) -> JSONResponse:
    body, code = render_error(exc, path, status)
    return JSONResponse(body, status_code=code, headers=exc.headers)


async def _imagegate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImagegateError)
    return _error_response(exc, request.url.path)


def _http_error_handler(routes: Sequence[BaseRoute]
                        ) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """Starlette's 404 and 405 in the API's error shape. `routes`: every route of the app,
    flattened (FastAPI keeps included routers as opaque branches of `app.router.routes`)."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            # No route matched, so no profile owns the path: always the native shape.
            return _error_response(NotFoundError("Unknown path", code="unknown_url"), None)
        if exc.status_code == 405:
            allow = (", ".join(_allowed_methods(request.scope, routes))
                     or (exc.headers or {}).get("Allow", ""))
            err = InvalidRequestError("Method not allowed for this path",
                                      code="method_not_allowed", headers={"Allow": allow})
            return _error_response(err, request.url.path, 405)
        generic = ImagegateError(str(exc.detail), code=None)
        return _error_response(generic, request.url.path, exc.status_code)

    return handle


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(scope: Scope, routes: Sequence[BaseRoute]) -> list[str]:
    """Every method the resource at this path is served with (RFC 9110 §15.5.6: a 405
    carries `Allow`). Starlette's own 405 names only the first route that matched, and a path
    such as `/admin/keys` has one route per method. A literal route wins over a template that
    also matches (`/apimart/v1/tasks/batch` is not `/apimart/v1/tasks/{task_id}`)."""
    matching = [r for r in routes if r.matches(scope)[0] is not Match.NONE]
    literal = [r for r in matching if getattr(r, "path", None) == scope["path"]]
    candidates = literal or matching
    return [method for method in _METHODS
            if any(route.matches({**scope, "method": method})[0] is Match.FULL
                   for route in candidates)]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    return _error_response(
        InvalidRequestError(f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}",
                            param=".".join(loc) or None),
        request.url.path,
    )


class ImagegateApp(FastAPI):
    """FastAPI with the hottest routes (task polls, `/healthz`, `POST
    /v1/images/generations`) served in front of its whole middleware stack
    (`HotRoutesMiddleware`, set by `build_app`)."""

    front: ASGIApp
    # The same object as `state.backends`, for `api/deps.py` to read without State's lookup.
    backends: Backends | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self  # endpoints reach the backends through request.app
        await self.front(scope, receive, send)


def build_app(settings: Settings, backends: Backends | None = None, *,
              reload_settings: SettingsLoader | None = None) -> FastAPI:
    """The ASGI app. Pass `backends` to share already-built ones (tests do);
    `reload_settings` reads the configuration again when the moderation lists reload."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = backends is None
        app.state.backends = backends or await build_backends(
            settings, reload_settings=reload_settings)
        if isinstance(app, ImagegateApp):
            app.backends = app.state.backends
        hangup = reload_on_sighup(app.state.backends.moderation)
        try:
            yield
        finally:
            hangup.close()
            if own:
                await app.state.backends.aclose()

    app = ImagegateApp(
        title="imagegate",
        version=__version__,
        description="OpenAI-compatible image generation with async tasks and signed URLs.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # Served by api/docs_pages.py from a package instead of FastAPI's CDN links.
        docs_url=None,
        redoc_url=None,
        openapi_tags=[openai_profile.OPENAPI_TAG, apimart.OPENAPI_TAG],
        # FastAPI's built-in OpenTelemetry hooks check for providers on every request; we
        # export Prometheus metrics instead, so switch the hooks off.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if backends is not None:
        app.state.backends = app.backends = backends
    app.add_exception_handler(ImagegateError, _imagegate_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    routers = (async_aliases.router, images.router, edits.router, variations.router,
               tasks.router, task_events.router, files.router, models.router,
               openai_profile.router, apimart.router, usage.router,
               webhooks.router, admin.router, moderation.router, metrics_api.router,
               docs_pages.router, ui_pages.router, health.router)
    for router in routers:
        app.include_router(router)

    def openapi_schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            # The request schemas name the models and qualities of the catalog this server
            # runs with (the same file the lifespan loads).
            openapi.finish(schema, load_catalog(settings.catalog_file),
                           {**openapi.TASK_PATHS, **apimart.OPENAPI_PATHS})
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_schema  # type: ignore[method-assign]

    # Registered once every route exists: a 405 lists the methods of all of them.
    own = [r for r in app.router.routes if getattr(r, "path", None) is not None]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler(
        [*own, *(route for router in routers for route in router.routes)]))

    # Added last = outermost: the request id exists before anything else runs.
    app.add_middleware(BodyBudgetMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.front = HotRoutesMiddleware(partial(FastAPI.__call__, app), routes=tasks.HOT_ROUTES,
                                    exact=health.HOT_ROUTES, posts=images.HOT_POSTS,
                                    max_body_bytes=settings.max_body_bytes)
    return app


def build_probe_app(backends: Backends) -> FastAPI:
    """What a worker process shows on `metrics_port`: its own metrics (upstream calls and
    breakers live in the worker that makes them) and the two probes. It shares the worker's
    backends and event loop; it has no lifespan of its own."""
    app = FastAPI(title="imagegate worker", version=__version__, openapi_url=None,
                  docs_url=None, redoc_url=None, default_response_class=JSONResponse,
                  telemetry={"tracing": False, "metrics": False, "logs": False,
                             "operation_spans": False})
    app.state.backends = backends
    app.include_router(health.router)
    app.add_api_route("/metrics", metrics_api.prometheus, methods=["GET"],
                      include_in_schema=False)
    return app
