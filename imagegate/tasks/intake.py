"""The create path: the one way a normalized request becomes a task, whichever surface it
came through (native, openai, apimart; JSON, multipart or a stream).

In order, and nothing is changed before a check passes: the webhook URL may be called later
(net policy) → the key may use the model → some channel serves the model → an
`Idempotency-Key` seen before answers with its task (no rate-limit hit, no charge) → the rate
limit → the prompt against the blocklists (moderation) → the request's images are fetched,
validated and stored → the moderation model on the prompt and those images → a size taken
from the reference image is settled (`settle_reference_size`: only now are its dimensions
known) → the price (catalog), for the tier that will be made → the hold, the task row and the
idempotency record in ONE transaction (`TaskStore.create`). If anything after the images were
stored refuses (400 `content_policy_violation`, a 400 on the settled size, 402, 429, a lost
idempotency race), they are removed again: a refused request leaves nothing behind, and
nothing was sent upstream.
"""

from __future__ import annotations

import asyncio
import dataclasses

import sqlalchemy.exc

from imagegate.accounts import idempotency
from imagegate.accounts.idempotency import IdempotencyStore
from imagegate.accounts.keys import ApiKey
from imagegate.accounts.limits import RateLimiter
from imagegate.domain.catalog import Catalog
from imagegate.domain.normalize import settle_reference_size
from imagegate.domain.request import ImageRequest
from imagegate.domain.task import Task, new_id
from imagegate.errors import ModelNotAllowedError, ModelNotFoundError, NotFoundError
from imagegate.ingest import Ingestor
from imagegate.moderation.service import Moderation
from imagegate.net.urls import validate_webhook_url
from imagegate.providers.registry import ProviderRegistry
from imagegate.tasks.events import EventBus
from imagegate.tasks.inline import InlineRunner
from imagegate.tasks.store import TaskStore


class TaskIntake:
    def __init__(self, *, catalog: Catalog, providers: ProviderRegistry,
                 idempotency: IdempotencyStore, limiter: RateLimiter, ingestor: Ingestor,
                 store: TaskStore, events: EventBus, retention_seconds: float,
                 moderation: Moderation | None = None) -> None:
        self._catalog = catalog
        self._providers = providers
        self._idempotency = idempotency
        self._limiter = limiter
        self._ingestor = ingestor
        self._store = store
        self._events = events
        self._retention = retention_seconds
        self._moderation = moderation
        self._runner: InlineRunner | None = None

    def attach_runner(self, runner: InlineRunner) -> None:
        """This process's worker, for `create_and_run`. Attached once it has started (it is
        built after the intake, from the same backends); without one, nothing runs inline."""
        self._runner = runner

    @staticmethod
    def new_task_id() -> str:
        return new_id("img_")

    async def create(self, key: ApiKey, request: ImageRequest, task_id: str | None = None, *,
                     idempotency_key: str | None = None, route: str = "") -> Task:
        """Create the task of `request` for `key` (see the module docstring for the checks).
        Pass `task_id` to know the id before the task exists (a stream subscribes first).
        With an `idempotency_key` seen before (same body) the earlier task is returned."""
        task, _ = await self._create(key, request, task_id, idempotency_key=idempotency_key,
                                     route=route, runner=None)
        return task

    async def create_and_run(self, key: ApiKey, request: ImageRequest, *,
                             idempotency_key: str | None = None, route: str = ""
                             ) -> tuple[Task, asyncio.Task[Task | None] | None]:
        """`create`, for a caller that will wait for the result: the task is created claimed
        by this process's worker and started at once (`tasks/inline.py`), and its run is
        returned to await. None instead when there is no worker here or no free slot, or the
        task already existed (an idempotent replay): the task is then an ordinary one."""
        runner = self._runner
        if runner is None or not await runner.reserve():
            return await self._create(key, request, None, idempotency_key=idempotency_key,
                                      route=route, runner=None)
        try:
            return await self._create(key, request, None, idempotency_key=idempotency_key,
                                      route=route, runner=runner)
        except BaseException:
            runner.release()
            raise

    async def _create(self, key: ApiKey, request: ImageRequest, task_id: str | None, *,
                      idempotency_key: str | None, route: str, runner: InlineRunner | None
                      ) -> tuple[Task, asyncio.Task[Task | None] | None]:
        """`runner`: holds a reserved slot, released here when the task it was for does not
        come to exist under its lease (a replay); raising leaves that to the caller."""
        if request.webhook_url is not None:
            validate_webhook_url(request.webhook_url)
        if key.allowed_models is not None and request.model not in key.allowed_models:
            raise ModelNotAllowedError(
                f"This API key may not use the model {request.model!r}", param="model"
            )
        if not self._providers.serves(request.model):
            # The 004 seed's 404: the model exists but is not enabled on this deployment.
            raise ModelNotFoundError(
                f"The model {request.model!r} is not served here: no channel is configured "
                "for it", param="model",
            )
        idem = request_hash = None
        if idempotency_key is not None:
            idem = idempotency.check_key(idempotency_key)
            request_hash = idempotency.fingerprint(route, request)
            seen = await self._idempotency.lookup(key.id, idem)
            if seen is not None:  # a replay is not a new request: no rate-limit hit, no charge
                return await self._replay(key, idempotency.replay(seen, request_hash), runner)
        await self._limiter.check(key)
        if self._moderation is not None:  # before any image is fetched
            await self._moderation.screen(key, request, route=route)
        task_id = task_id or self.new_task_id()
        params = [ref.param for ref in request.references]  # ingest drops the field names
        request = await self._ingestor.prepare(request, task_id)
        if self._moderation is not None:
            try:
                await self._moderation.review(key, request, params, route=route)
            except BaseException:
                await self._ingestor.discard(task_id)
                raise
        steps = () if idem is None or request_hash is None else self._idempotency.record_steps(
            key.id, idem, request_hash, task_id)
        try:
            request = settle_reference_size(request, self._catalog)
            if request.webhook_events is None and key.webhook_events is not None:
                # The key's filter, fixed at submit: the worker reads the request alone.
                request = dataclasses.replace(request, webhook_events=key.webhook_events)
            unit_price = self._catalog.models[request.model].price(request.tier,
                                                                   request.quality)
            task = await self._store.create(
                task_id=task_id, key_id=key.id, operation=request.operation,
                model=request.model, request=request.to_json(),
                retention_seconds=self._retention, unit_price=unit_price, extra_steps=steps,
                lease=None if runner is None else (runner.owner, runner.lease_seconds),
            )
        except sqlalchemy.exc.IntegrityError:
            await self._ingestor.discard(task_id)
            # Lost a race with the same Idempotency-Key: answer with the winner's task.
            seen = await self._idempotency.lookup(key.id, idem) if idem else None
            if seen is None or request_hash is None:
                raise
            return await self._replay(key, idempotency.replay(seen, request_hash), runner)
        except BaseException:
            await self._ingestor.discard(task_id)  # no task row, so no blobs either
            raise
        if runner is not None:
            return task, runner.adopt(task)
        await self._events.work_queued()
        return task, None

    async def _replay(self, key: ApiKey, task_id: str, runner: InlineRunner | None
                      ) -> tuple[Task, None]:
        if runner is not None:
            runner.release()  # the earlier task runs (or ran) wherever it was claimed
        return await self._replayed(key, task_id), None

    async def _replayed(self, key: ApiKey, task_id: str) -> Task:
        task = await self._store.get_for_key(task_id, key.id)
        if task is None:  # removed by retention while its idempotency record lived on
            raise NotFoundError(f"The task {task_id} of this Idempotency-Key no longer exists",
                                param="Idempotency-Key")
        return task
