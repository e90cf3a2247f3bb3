"""The one path every surface takes from a normalized request to a task: store its inputs,
create the task, and (for synchronous callers) wait for it. Profiles only differ in how they
read the request before this and render the task after it."""

from __future__ import annotations

from imagegate.accounts.keys import ApiKey
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import error_from_json
from imagegate.services import Services


async def create_task(svc: Services, key: ApiKey, image_request: ImageRequest,
                      task_id: str | None = None) -> Task:
    """Ingest the request's images and create its task; nothing is left behind on failure.
    Pass `task_id` to know the id before the task exists (a stream subscribes first)."""
    task_id = task_id or svc.tasks.new_task_id()
    image_request = await svc.ingestor.prepare(image_request, task_id)
    try:
        return await svc.tasks.submit(image_request, key.id, task_id)
    except BaseException:
        await svc.ingestor.discard(task_id)  # no task row, so no blobs either
        raise


async def wait_for_result(svc: Services, task: Task) -> Task:
    """The finished task, or raise the error it failed with. A task still running after
    `sync_wait_seconds` is returned as it is: the caller hands over its id instead."""
    done = await svc.tasks.wait(task, svc.settings.sync_wait_seconds)
    if done.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) and done.error:
        raise error_from_json(done.error)
    return done
