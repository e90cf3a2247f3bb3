"""Task polling and cancel: `GET /v1/tasks/{id}`, the legacy `GET /v1/images/tasks/{id}`,
`POST /v1/tasks/{id}/cancel`. A task belongs to the key that made it; any other key gets
the same 404 as for an id that never existed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from imagegate.accounts.keys import ApiKey
from imagegate.api.deps import api_key, services
from imagegate.api.profiles import native
from imagegate.api.responses import JSONResponse
from imagegate.domain.task import Task
from imagegate.errors import NotFoundError

router = APIRouter(tags=["tasks"])


def not_found(task_id: str) -> NotFoundError:
    return NotFoundError(f"No task found with id '{task_id}'", param="task_id",
                         code="task_not_found")


async def _owned(request: Request, task_id: str, key: ApiKey) -> Task:
    task = await services(request).tasks.get(task_id, key.id)
    if task is None:
        raise not_found(task_id)
    return task


@router.get("/v1/tasks/{task_id}")
async def get_task(task_id: str, request: Request, key: ApiKey = Depends(api_key)
                   ) -> JSONResponse:
    task = await _owned(request, task_id, key)
    return JSONResponse(await native.task_object(services(request), task))


@router.get("/v1/images/tasks/{task_id}")
async def get_image_task(task_id: str, request: Request, key: ApiKey = Depends(api_key)
                         ) -> JSONResponse:
    """The older path; the same object as /v1/tasks/{id}."""
    return await get_task(task_id, request, key)


@router.post("/v1/tasks/{task_id}/cancel")
async def cancel_task(task_id: str, request: Request, key: ApiKey = Depends(api_key)
                      ) -> JSONResponse:
    """Idempotent: cancelling a finished or already-cancelled task returns it unchanged."""
    svc = services(request)
    task = await svc.tasks.cancel(task_id, key.id)
    if task is None:
        raise not_found(task_id)
    return JSONResponse(await native.task_object(svc, task))
