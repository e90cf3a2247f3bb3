"""The one path every surface takes from a normalized request to a task: check the key may
make it, store its inputs, create the task with its hold, and (for synchronous callers) wait
for it. Profiles only differ in how they read the request before this and render the task
after it."""

from __future__ import annotations

import sqlalchemy.exc

from imagegate.accounts import idempotency
from imagegate.accounts.keys import ApiKey
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import (
    ModelNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    error_from_json,
)
from imagegate.services import Services


async def create_task(svc: Services, key: ApiKey, image_request: ImageRequest,
                      task_id: str | None = None, *, idempotency_key: str | None = None,
                      route: str = "") -> Task:
    """Ingest the request's images and create its task; nothing is left behind on failure.
    Pass `task_id` to know the id before the task exists (a stream subscribes first).
    With an `idempotency_key` seen before (same body) the earlier task is returned instead."""
    if key.allowed_models is not None and image_request.model not in key.allowed_models:
        raise ModelNotAllowedError(
            f"This API key may not use the model {image_request.model!r}", param="model"
        )
    if not svc.providers.serves(image_request.model):
        # The 004 seed's 404: the model exists but is not enabled on this deployment.
        raise ModelNotFoundError(
            f"The model {image_request.model!r} is not served here: no channel is configured "
            "for it", param="model",
        )
    idem = request_hash = None
    if idempotency_key is not None:
        idem = idempotency.check_key(idempotency_key)
        request_hash = idempotency.fingerprint(route, image_request)
        seen = await svc.idempotency.lookup(key.id, idem)
        if seen is not None:  # a replay is not a new request: no rate-limit hit, no charge
            return await _replayed(svc, key, idempotency.replay(seen, request_hash))
    await svc.limiter.check(key)
    spec = svc.catalog.models[image_request.model]
    unit_price = spec.price(image_request.tier, image_request.quality)
    task_id = task_id or svc.tasks.new_task_id()
    image_request = await svc.ingestor.prepare(image_request, task_id)
    steps = () if idem is None or request_hash is None else svc.idempotency.record_steps(
        key.id, idem, request_hash, task_id)
    try:
        return await svc.tasks.submit(image_request, key.id, task_id, unit_price=unit_price,
                                      extra_steps=steps)
    except sqlalchemy.exc.IntegrityError:
        await svc.ingestor.discard(task_id)
        # Lost a race with the same Idempotency-Key: answer with the winner's task.
        seen = await svc.idempotency.lookup(key.id, idem) if idem else None
        if seen is None or request_hash is None:
            raise
        return await _replayed(svc, key, idempotency.replay(seen, request_hash))
    except BaseException:
        await svc.ingestor.discard(task_id)  # no task row, so no blobs either
        raise


async def _replayed(svc: Services, key: ApiKey, task_id: str) -> Task:
    task = await svc.tasks.get(task_id, key.id)
    if task is None:  # removed by retention while its idempotency record lived on
        raise NotFoundError(f"The task {task_id} of this Idempotency-Key no longer exists",
                            param="Idempotency-Key")
    return task


async def wait_for_result(svc: Services, task: Task) -> Task:
    """The finished task, or raise the error it failed with. A task still running after
    `sync_wait_seconds` is returned as it is: the caller hands over its id instead."""
    done = await svc.tasks.wait(task, svc.settings.sync_wait_seconds)
    if done.status in (TaskStatus.FAILED, TaskStatus.CANCELLED) and done.error:
        raise error_from_json(done.error)
    return done
