"""`build_app(settings)`: the HTTP surface — routers, error handlers, middleware and the
lifespan that builds the backends (`wiring.build_backends`) when the app starts. No globals:
the backends hang off `app.state.backends`, and routes take the few they use through the
dependencies of `api/deps.py`. `build_probe_app(backends)`: the little listener of an
`imagegate worker` (`metrics_port`): `/metrics`, `/healthz`, `/readyz`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from imagegate import __version__
from imagegate.api import (
    admin,
    edits,
    files,
    health,
    images,
    models,
    tasks,
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
from imagegate.api.openapi import TASK_PATHS
from imagegate.api.profiles import apimart
from imagegate.api.profiles import openai as openai_profile
from imagegate.api.profiles.errors import render_error
from imagegate.api.responses import JSONResponse
from imagegate.config import Settings
from imagegate.errors import ImagegateError, InvalidRequestError, NotFoundError
from imagegate.wiring import Backends, build_backends


def _error_response(exc: ImagegateError, path: str | None, status: int | None = None
                    ) -> JSONResponse:
    body, code = render_error(exc, path, status)
    return JSONResponse(body, status_code=code, headers=exc.headers)


async def _imagegate_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImagegateError)
    return _error_response(exc, request.url.path)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        # No route matched, so no profile owns the path: always the native shape.
        return _error_response(NotFoundError("Unknown path", code="unknown_url"), None)
    if exc.status_code == 405:
        allow = ", ".join(_allowed_methods(request)) or (exc.headers or {}).get("Allow", "")
        err = InvalidRequestError("Method not allowed for this path", code="method_not_allowed",
                                  headers={"Allow": allow})
        return _error_response(err, request.url.path, 405)
    generic = ImagegateError(str(exc.detail), code=None)
    return _error_response(generic, request.url.path, exc.status_code)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 §15.5.6: a 405 carries `Allow`).
    Starlette's own 405 names only the first route that matched the path, and a path such as
    `/admin/keys` has one route per method."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in routes)]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    return _error_response(
        InvalidRequestError(f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid')}",
                            param=".".join(loc) or None),
        request.url.path,
    )


def build_app(settings: Settings, backends: Backends | None = None) -> FastAPI:
    """The ASGI app. Pass `backends` to share already-built ones (tests do)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = backends is None
        app.state.backends = backends or await build_backends(settings)
        try:
            yield
        finally:
            if own:
                await app.state.backends.aclose()

    app = FastAPI(
        title="imagegate",
        version=__version__,
        description="OpenAI-compatible image generation with async tasks and signed URLs.",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        openapi_tags=[openai_profile.OPENAPI_TAG, apimart.OPENAPI_TAG],
        # FastAPI's built-in OpenTelemetry hooks check for providers on every request; we
        # export Prometheus metrics instead, so switch the hooks off.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if backends is not None:
        app.state.backends = backends
    app.add_exception_handler(ImagegateError, _imagegate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for router in (images.router, edits.router, variations.router, tasks.router, files.router,
                   models.router, openai_profile.router, apimart.router, usage.router,
                   webhooks.router, admin.router, metrics_api.router, health.router):
        app.include_router(router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema["paths"].update(TASK_PATHS)
            schema["paths"].update(apimart.OPENAPI_PATHS)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # Added last = outermost: the request id exists before anything else runs.
    app.add_middleware(HotRoutesMiddleware, routes=tasks.HOT_ROUTES)
    app.add_middleware(BodyBudgetMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
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
