"""What every create route (generations, edits; each profile) answers with: the task
intake, the task service to wait on, the result links to render with, the catalog to
normalize against, and the settings that time the waiting. FastAPI builds one `Creation` per
request from the narrow dependencies in `deps.py`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request

from imagegate.api import deps
from imagegate.api.deps import CatalogDep, IntakeDep, LinksDep, SettingsDep, TasksDep
from imagegate.config import Settings
from imagegate.domain import deadlines
from imagegate.domain.catalog import Catalog
from imagegate.domain.request import ImageRequest
from imagegate.storage.links import ResultLinks
from imagegate.tasks.intake import TaskIntake
from imagegate.tasks.service import TaskService


class Creation:
    def __init__(self, settings: SettingsDep, catalog: CatalogDep, intake: IntakeDep,
                 tasks: TasksDep, links: LinksDep) -> None:
        self.settings: Settings = settings
        self.catalog: Catalog = catalog
        self.intake: TaskIntake = intake
        self.tasks: TaskService = tasks
        self.links: ResultLinks = links


async def creation(settings: SettingsDep, catalog: CatalogDep, intake: IntakeDep,
                   tasks: TasksDep, links: LinksDep) -> Creation:
    # A coroutine, not `Depends(Creation)`: FastAPI runs a plain callable (a class too) in
    # its thread pool: a thread hand-off and wake-up on every create request.
    return Creation(settings, catalog, intake, tasks, links)


CreationDep = Annotated[Creation, Depends(creation)]


async def creation_of(request: Request) -> Creation:
    """`creation` for an endpoint served ahead of FastAPI's dependency resolution
    (`HotRoutesMiddleware`): the same backends, read off the request's app."""
    return await creation(await deps.settings(request), await deps.catalog(request),
                          await deps.intake(request), await deps.tasks(request),
                          await deps.links(request))


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


def with_deadline(request: Request, image_request: ImageRequest,
                  settings: Settings) -> ImageRequest:
    """`image_request` with the deadline its create request set: the `Cancel-After` header
    or the body's `deadline_seconds` (the earlier when both are sent), each checked against
    `max_deadline_seconds` (a 400 naming it, before anything is created)."""
    cap = settings.max_deadline_seconds
    seconds = image_request.deadline_seconds
    if seconds is not None:
        seconds = deadlines.check_deadline(seconds, deadlines.FIELD, cap)
    header = request.headers.get(deadlines.HEADER)
    if header is not None:
        from_header = deadlines.parse_cancel_after(header, cap)
        seconds = from_header if seconds is None else min(seconds, from_header)
    if seconds == image_request.deadline_seconds:
        return image_request
    return replace(image_request, deadline_seconds=seconds)
