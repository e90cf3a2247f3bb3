"""imagegate's Python client: `Client` (sync) and `AsyncClient`, httpx-style.

    from imagegate.client import Client

    with Client("http://127.0.0.1:8000", "ig_…") as client:
        task = client.generate("a lighthouse at dusk", size="16:9", resolution="2k")
        for path in client.download_all(task, "images"):
            print(path)

The same calling code talks to imagegate or, by `dialect=`, straight to the services of the
seeds: "dimilinks" (000/001), "apimart" (002) and "openai" (any OpenAI Images API,
synchronous only). See docs/client.md.

`AdminClient` (admin.py) is the operator's side, used by `imagegate channels`; it runs on
aiohttp, so it is imported only when asked for (a program using `Client` never loads it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagegate.client.admin import (
        AdminAnswerError,
        AdminClient,
        AdminError,
        ServerUnreachable,
        UnexpectedAnswer,
    )
from imagegate.client.async_client import AsyncClient, AsyncTasks
from imagegate.client.dialects import DIALECTS
from imagegate.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientError,
    ConflictError,
    InputError,
    InsufficientBalanceError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TaskFailedError,
    TaskTimeoutError,
    UnexpectedResponseError,
    UnsupportedError,
)
from imagegate.client.inputs import ImageInput
from imagegate.client.models import STATUSES, TERMINAL, ImageItem, Task, TaskEvent, TaskPage
from imagegate.client.profiles import Profile, load_profiles, profile_named
from imagegate.client.sync_client import Client, Tasks

__all__ = [
    "DIALECTS", "STATUSES", "TERMINAL", "APIConnectionError", "APIError", "APITimeoutError",
    "AdminAnswerError", "AdminClient", "AdminError", "AsyncClient", "AsyncTasks",
    "AuthenticationError", "BadRequestError", "Client", "ClientError", "ConflictError",
    "ImageInput", "ImageItem", "InputError", "InsufficientBalanceError", "NotFoundError",
    "PermissionDeniedError", "Profile", "RateLimitError", "ServerError",
    "ServerUnreachable", "Task", "TaskEvent", "TaskFailedError", "TaskPage",
    "TaskTimeoutError", "Tasks", "UnexpectedAnswer", "UnexpectedResponseError",
    "UnsupportedError", "load_profiles", "profile_named",
]

_ADMIN = frozenset({"AdminAnswerError", "AdminClient", "AdminError", "ServerUnreachable",
                    "UnexpectedAnswer"})


def __getattr__(name: str) -> Any:
    if name in _ADMIN:
        return getattr(importlib.import_module("imagegate.client.admin"), name)
    raise AttributeError(f"module 'imagegate.client' has no attribute {name!r}")
