"""Task polling, listing and cancel: `GET /v1/tasks/{id}`, the legacy
`GET /v1/images/tasks/{id}`, `GET /v1/tasks` (the key's tasks, newest first),
`POST /v1/tasks/{id}/cancel`. A task belongs to the key that made it; any other key gets
the same 404 as for an id that never existed.

These are plain Starlette routes, not FastAPI path operations: polling is the hottest path
of the service, they need no body parsing or dependency injection, and FastAPI's per-route
machinery was measured at a third of a poll's cost. Their OpenAPI entries are declared in
`api/openapi.py`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import QueryParams

from imagegate.api import deps
from imagegate.api.deps import api_key
from imagegate.api.paging import page_limit
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse, json_response
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import InvalidRequestError, NotFoundError
from imagegate.storage.links import ResultLinks

router = APIRouter(tags=["tasks"])

_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_STATUSES = tuple(s.value for s in TaskStatus)


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


async def get_task(request: Request) -> Response:
    """Also serves the older path /v1/images/tasks/{id}: the same object."""
    task = await owned_task(request)
    links: ResultLinks = await deps.links(request)
    outlook = await (await deps.tasks(request)).outlook(task)
    return await json_response(await native.task_object(links, task, outlook, streamed=True))


async def cancel_task(request: Request) -> Response:
    """Idempotent: cancelling a finished or already-cancelled task returns it unchanged."""
    key = await api_key(request)
    task_id: str = request.path_params["task_id"]
    service = await deps.tasks(request)
    task = await service.cancel(task_id, key.id)
    if task is None:
        raise not_found(task_id)
    outlook = await service.outlook(task)
    return await json_response(await native.task_object(await deps.links(request), task,
                                                        outlook, streamed=True))


def _seconds(query: QueryParams, name: str) -> float | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not _SECONDS.fullmatch(raw):
        raise InvalidRequestError(f"{name} must be a time in Unix seconds, e.g. 1795236861",
                                  param=name)
    return float(raw)


async def task_page(request: Request, key_id: str | None) -> JSONResponse:
    """One page of tasks, newest first, filtered by the query (`status`, `model`,
    `created_after`, `created_before`; `limit`, `after`): a key's own (`key_id`) or, for
    the admin list, everyone's. Results are shown as links, never inlined bytes."""
    query = request.query_params
    limit = page_limit(query.get("limit"))
    status = query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise InvalidRequestError(f"status must be one of {', '.join(_STATUSES)}",
                                  param="status")
    service = await deps.tasks(request)
    found = await service.page(
        key_id=key_id, limit=limit + 1, after=query.get("after") or None, status=status,
        model=query.get("model") or None, created_after=_seconds(query, "created_after"),
        created_before=_seconds(query, "created_before"))
    # One row more than the page was read: it says whether another page follows.
    has_more = len(found) > limit
    links = await deps.links(request)
    data: list[dict[str, Any]] = [
        await native.task_object(links, task, await service.outlook(task), inline=False)
        for task in found[:limit]
    ]
    return JSONResponse({"object": "list", "data": data, "has_more": has_more,
                         "last_id": data[-1]["id"] if data else None})


async def list_tasks(request: Request) -> JSONResponse:
    key = await api_key(request)
    return await task_page(request, key.id)


# For HotRoutesMiddleware, which serves these before the router (same endpoint).
HOT_ROUTES = [
    (re.compile(r"/v1/tasks/(?P<task_id>[^/]+)"), get_task),
    (re.compile(r"/v1/images/tasks/(?P<task_id>[^/]+)"), get_task),
]

router.add_route("/v1/tasks", list_tasks, methods=["GET"])
router.add_route("/v1/tasks/{task_id}", get_task, methods=["GET"])
router.add_route("/v1/images/tasks/{task_id}", get_task, methods=["GET"])
router.add_route("/v1/tasks/{task_id}/cancel", cancel_task, methods=["POST"])
