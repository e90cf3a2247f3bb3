"""Task polling and cancel: `GET /v1/tasks/{id}`, the legacy `GET /v1/images/tasks/{id}`,
`POST /v1/tasks/{id}/cancel`. A task belongs to the key that made it; any other key gets
the same 404 as for an id that never existed.

These are plain Starlette routes, not FastAPI path operations: polling is the hottest path
of the service, they need no body parsing or dependency injection, and FastAPI's per-route
machinery was measured at a third of a poll's cost. Their OpenAPI entries are declared in
`api/openapi.py`.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request

from imagegate.api import deps
from imagegate.api.deps import api_key
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse
from imagegate.domain.task import Task
from imagegate.errors import NotFoundError
from imagegate.storage.links import ResultLinks

router = APIRouter(tags=["tasks"])


def not_found(task_id: str) -> NotFoundError:
    return NotFoundError(f"No task found with id '{task_id}'", param="task_id",
                         code="task_not_found")


async def owned_task(request: Request) -> Task:
    """The `{task_id}` of the path as its owner sees it; every profile's task route reads
    tasks this way."""
    key = await api_key(request)
    task_id: str = request.path_params["task_id"]
    task = await (await deps.tasks(request)).get(task_id, key.id)
    if task is None:
        raise not_found(task_id)
    return task


async def get_task(request: Request) -> JSONResponse:
    """Also serves the older path /v1/images/tasks/{id}: the same object."""
    task = await owned_task(request)
    links: ResultLinks = await deps.links(request)
    outlook = await (await deps.tasks(request)).outlook(task)
    return JSONResponse(await native.task_object(links, task, outlook))


async def cancel_task(request: Request) -> JSONResponse:
    """Idempotent: cancelling a finished or already-cancelled task returns it unchanged."""
    key = await api_key(request)
    task_id: str = request.path_params["task_id"]
    service = await deps.tasks(request)
    task = await service.cancel(task_id, key.id)
    if task is None:
        raise not_found(task_id)
    outlook = await service.outlook(task)
    return JSONResponse(await native.task_object(await deps.links(request), task, outlook))


# For HotRoutesMiddleware, which serves these before the router (same endpoint).
HOT_ROUTES = [
    (re.compile(r"/v1/tasks/(?P<task_id>[^/]+)"), get_task),
    (re.compile(r"/v1/images/tasks/(?P<task_id>[^/]+)"), get_task),
]

router.add_route("/v1/tasks/{task_id}", get_task, methods=["GET"])
router.add_route("/v1/images/tasks/{task_id}", get_task, methods=["GET"])
router.add_route("/v1/tasks/{task_id}/cancel", cancel_task, methods=["POST"])
