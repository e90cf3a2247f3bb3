"""What a route may ask for, one narrow dependency each, and the request-scoped helpers
every router shares (authentication, the JSON body).

The backends are built by the composition root (`wiring.py`) and hang off `app.state`; a route
names the few it uses (`intake: IntakeDep`) and never sees the rest, so reading a route's
signature tells what it touches. The accessors are `async` because FastAPI runs a plain
function dependency in a thread pool, a cost not worth paying for an attribute read; the
plain Starlette routes (task polling) await them directly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request

from imagegate.accounts.keys import ApiKey, KeyStore
from imagegate.accounts.usage import UsageReporter
from imagegate.api.origin import request_origin
from imagegate.config import Settings
from imagegate.domain.catalog import Catalog
from imagegate.errors import AuthenticationError, InvalidRequestError, PayloadTooLargeError
from imagegate.metrics import Metrics
from imagegate.moderation.service import Moderation
from imagegate.moderation.store import ModerationStore
from imagegate.providers.registry import ProviderRegistry
from imagegate.storage.links import ResultLinks
from imagegate.tasks.intake import TaskIntake
from imagegate.tasks.service import TaskService
from imagegate.webhooks.sender import WebhookDispatcher
from imagegate.webhooks.store import WebhookStore


def _backends(request: Request) -> Any:
    # ImagegateApp keeps them as a plain attribute too: Starlette's `State` lookup, four
    # times a request, was ~5% of a task poll. Other apps (the worker's probe app, tests)
    # have them on their state only.
    app = request.scope["app"]
    found = getattr(app, "backends", None)
    return found if found is not None else app.state.backends


async def settings(request: Request) -> Settings:
    found: Settings = _backends(request).settings
    return found


async def catalog(request: Request) -> Catalog:
    found: Catalog = _backends(request).catalog
    return found


async def keys(request: Request) -> KeyStore:
    found: KeyStore = _backends(request).keys
    return found


async def intake(request: Request) -> TaskIntake:
    found: TaskIntake = _backends(request).intake
    return found


async def tasks(request: Request) -> TaskService:
    found: TaskService = _backends(request).tasks
    return found


async def links(request: Request) -> ResultLinks:
    """Result links as this request's client sees them: absolute URLs get the origin it
    reached us at when no `public_base_url` is configured (see `api/origin.py`)."""
    backends = _backends(request)
    found: ResultLinks = backends.links
    if found.needs_origin:
        return found.for_origin(request_origin(request.scope, backends.trusted_proxies))
    return found


async def providers(request: Request) -> ProviderRegistry:
    found: ProviderRegistry = _backends(request).providers
    return found


async def usage(request: Request) -> UsageReporter:
    found: UsageReporter = _backends(request).usage
    return found


async def webhook_store(request: Request) -> WebhookStore:
    found: WebhookStore = _backends(request).webhooks
    return found


async def dispatcher(request: Request) -> WebhookDispatcher | None:
    """None in an API-only process (`run_workers = false`): deliveries wait for a worker."""
    found: WebhookDispatcher | None = _backends(request).dispatcher
    return found


async def metrics(request: Request) -> Metrics:
    found: Metrics = _backends(request).metrics
    return found


async def moderation(request: Request) -> Moderation:
    found: Moderation = _backends(request).moderation
    return found


async def moderation_store(request: Request) -> ModerationStore:
    found: ModerationStore = _backends(request).moderation_store
    return found


async def readiness_checks(request: Request) -> Mapping[str, Callable[[], Awaitable[None]]]:
    """What `/readyz` asks, by name (the database, the blob store, Redis when configured)."""
    found: Mapping[str, Callable[[], Awaitable[None]]] = _backends(request).checks
    return found


async def admin_token(request: Request) -> str:
    found: str = _backends(request).admin_token
    return found


SettingsDep = Annotated[Settings, Depends(settings)]
CatalogDep = Annotated[Catalog, Depends(catalog)]
KeysDep = Annotated[KeyStore, Depends(keys)]
IntakeDep = Annotated[TaskIntake, Depends(intake)]
TasksDep = Annotated[TaskService, Depends(tasks)]
LinksDep = Annotated[ResultLinks, Depends(links)]
ProvidersDep = Annotated[ProviderRegistry, Depends(providers)]
UsageDep = Annotated[UsageReporter, Depends(usage)]
WebhookStoreDep = Annotated[WebhookStore, Depends(webhook_store)]
DispatcherDep = Annotated[WebhookDispatcher | None, Depends(dispatcher)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ModerationDep = Annotated[Moderation, Depends(moderation)]
ModerationStoreDep = Annotated[ModerationStore, Depends(moderation_store)]
ChecksDep = Annotated[Mapping[str, Callable[[], Awaitable[None]]], Depends(readiness_checks)]


async def api_key(request: Request) -> ApiKey:
    """The caller's key from `Authorization: Bearer …` (or `api-key` / `x-api-key`)."""
    header = request.headers.get("authorization", "")
    token = ""
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
    token = token or request.headers.get("x-api-key", "") or request.headers.get("api-key", "")
    if not token:
        # The 004 seed lists one 401 code, `invalid_api_key`, missing key included; clients
        # match on it, so the message alone says the key is missing.
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
            code="invalid_api_key",
        )
    key = await (await keys(request)).find(token)
    if key is None or not key.active:
        # Never echo the key, not even a part of it: logs and proxies keep response bodies.
        raise AuthenticationError("Incorrect API key provided, or the key was revoked.")
    if key.expired:
        # Only the holder of the whole secret gets here, so naming the expiry leaks nothing.
        when = datetime.fromtimestamp(key.expires_at or 0, UTC).strftime("%Y-%m-%d %H:%M:%S")
        raise AuthenticationError(f"This API key expired at {when} UTC.", code="expired_api_key")
    return key


async def json_body(request: Request) -> dict[str, Any]:
    """The parsed JSON object, read with a cap: JSON is parsed in memory, so its limit
    (max_json_body_bytes) is lower than the general body limit that multipart streams under."""
    limit = (await settings(request)).max_json_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(
                f"The JSON body is larger than the maximum of {limit} bytes; send large "
                "images as URLs or as multipart file uploads",
                param="body",
            )
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequestError("The request body is empty; send a JSON object",
                                  param="body", code="invalid_json")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc}",
                                  param="body", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("The request body must be a JSON object",
                                  param="body", code="invalid_json")
    return data
