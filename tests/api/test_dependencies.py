"""Every FastAPI dependency of every route is a coroutine function: FastAPI runs a plain
callable (a class given to `Depends` too) in its thread pool, a thread hop per request."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from imagegate.app import build_app
from imagegate.config import Settings


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[APIRoute, list[object]]]:
    """Every APIRoute, with the dependencies of the routers that include it."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route, []
        router = getattr(route, "original_router", None)  # an included router, lazily
        if router is not None:
            extra = [d.dependency for d in router.dependencies if d.dependency is not None]
            for inner, deps in api_routes(router.routes):
                yield inner, [*extra, *deps]


def calls(dependant: Dependant) -> Iterator[object]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from calls(sub)


def test_no_dependency_runs_in_the_thread_pool(tmp_path: Path) -> None:
    app = build_app(Settings(data_dir=tmp_path, blob_store="memory", run_workers=False))
    routes = list(api_routes(app.routes))
    assert any(r.path == "/v1/images/generations" for r, _ in routes)
    sync = {f"{r.path}: {getattr(c, '__qualname__', c)}" for r, extra in routes
            for c in [*extra, *calls(r.dependant)] if not inspect.iscoroutinefunction(c)}
    assert sync == set()
