"""What every create route (generations, edits; each profile) answers with: the task
intake, the task service to wait on, the result links to render with, the catalog to
normalize against, and the settings that time the waiting. FastAPI builds one `Creation` per
request from the narrow dependencies in `deps.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imagegate.api.deps import CatalogDep, IntakeDep, LinksDep, SettingsDep, TasksDep
from imagegate.config import Settings
from imagegate.domain.catalog import Catalog
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


CreationDep = Annotated[Creation, Depends(Creation)]


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")
