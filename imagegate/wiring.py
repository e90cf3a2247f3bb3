"""The composition root: the one place that turns Settings into the backends of a process,
wires them to each other, and closes them in reverse order. Nothing else constructs a
backend; the API reads what it needs off `app.state.backends` through the narrow
dependencies of `api/deps.py`, and the CLI commands call `build_backends` or
`open_database`.

Backends with several implementations are picked by a setting's name from a table of
`"module:factory"` strings (`BLOB_STORES`, `EVENT_BUSES`, `RATE_LIMITERS`; provider adapters
have theirs in `providers/factory.py`). A factory takes the Settings and returns the backend;
adding an implementation is one module and one line in its table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from imagegate import plugins, secret_files
from imagegate.accounts.idempotency import IdempotencyStore
from imagegate.accounts.keys import KeyStore
from imagegate.accounts.limits import RateLimiter
from imagegate.accounts.usage import UsageReporter
from imagegate.api.origin import Network, parse_networks
from imagegate.api.profiles.native import task_object
from imagegate.config import Settings
from imagegate.db.database import Database
from imagegate.db.database import open_database as open_db
from imagegate.domain.catalog import Catalog, load_catalog
from imagegate.ingest import IngestLimits, Ingestor
from imagegate.ingest.budget import MemoryBudget
from imagegate.metrics import Metrics
from imagegate.moderation.service import Moderation, SettingsLoader
from imagegate.moderation.store import ModerationStore
from imagegate.net.fetch import Fetcher, FetchLimits
from imagegate.net.guard import AddressPolicy
from imagegate.providers.factory import build_providers
from imagegate.providers.registry import ProviderRegistry
from imagegate.storage.base import BlobStore
from imagegate.storage.links import ResultLinks
from imagegate.storage.signing import UrlSigner
from imagegate.tasks.events import EventBus
from imagegate.tasks.intake import TaskIntake
from imagegate.tasks.service import TaskService
from imagegate.tasks.store import TaskStore
from imagegate.tasks.worker import Worker, WorkerConfig
from imagegate.webhooks.sender import DispatchConfig, WebhookDispatcher
from imagegate.webhooks.store import WebhookStore

BLOB_STORES: Mapping[str, str] = MappingProxyType({
    "local": "imagegate.storage.obstore_store:local_store",
    "memory": "imagegate.storage.obstore_store:memory_store",
})
EVENT_BUSES: Mapping[str, str] = MappingProxyType({
    "memory": "imagegate.tasks.events:memory_bus",
})
RATE_LIMITERS: Mapping[str, str] = MappingProxyType({
    "memory": "imagegate.accounts.limits:memory_limiter",
    "redis": "imagegate.accounts.limits:redis_limiter",
})


@dataclass
class Backends:
    """Everything one process built. Owned by the app's lifespan (or a CLI command)."""

    settings: Settings
    db: Database
    catalog: Catalog
    keys: KeyStore
    store: TaskStore
    events: EventBus
    blobs: BlobStore
    providers: ProviderRegistry
    ingestor: Ingestor
    idempotency: IdempotencyStore
    limiter: RateLimiter
    intake: TaskIntake
    tasks: TaskService
    links: ResultLinks
    usage: UsageReporter
    webhooks: WebhookStore
    metrics: Metrics
    moderation: Moderation
    moderation_store: ModerationStore
    admin_token: str
    # Client bytes held in memory at once: request bodies (api/middleware.py) and reference
    # images (the ingestor) draw on this one budget.
    body_budget: MemoryBudget
    # Reverse proxies whose forwarded headers the API believes (absolute result URLs).
    trusted_proxies: tuple[Network, ...] = ()
    worker: Worker | None = None
    dispatcher: WebhookDispatcher | None = None

    async def aclose(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.dispatcher is not None:  # after the worker: finishing tasks queue deliveries
            await self.dispatcher.stop()
        await self.providers.aclose()
        await self.moderation.aclose()
        await self.limiter.aclose()
        await self.ingestor.aclose()
        await self.events.aclose()
        await self.blobs.aclose()
        await self.db.aclose()


def address_policy(settings: Settings) -> AddressPolicy:
    """The SSRF guard's policy: every outbound fetch of a URL imagegate did not choose."""
    return AddressPolicy.from_config(settings.fetch_allow_hosts, settings.fetch_allow_networks)


def build_ingestor(settings: Settings, blobs: BlobStore, budget: MemoryBudget) -> Ingestor:
    fetcher = Fetcher(
        address_policy(settings),
        FetchLimits(
            max_bytes=settings.max_reference_bytes,
            connect_timeout=settings.fetch_connect_timeout,
            total_timeout=settings.fetch_timeout,
            max_redirects=settings.fetch_max_redirects,
        ),
    )
    return Ingestor(
        blobs,
        fetcher,
        IngestLimits(
            max_image_bytes=settings.max_reference_bytes,
            max_total_bytes=settings.max_reference_total_bytes,
            max_pixels=settings.max_reference_pixels,
            max_total_pixels=settings.max_reference_total_pixels,
        ),
        budget,
    )


async def open_database(settings: Settings) -> Database:
    """The configured database, migrated to head."""
    db = open_db(settings.effective_database_url)
    try:
        await db.migrate()
    except BaseException:
        await db.aclose()
        raise
    return db


async def build_backends(settings: Settings, *, with_worker: bool | None = None,
                         reload_settings: SettingsLoader | None = None) -> Backends:
    """Every backend of one process; with workers (task runner and webhook dispatcher)
    started when `with_worker` (default: `run_workers`) says so. `reload_settings` reads the
    configuration again when the moderation lists are reloaded (SIGHUP, the admin API)."""
    catalog = load_catalog(settings.catalog_file)
    db = await open_database(settings)
    try:
        backends = _assemble(settings, catalog, db, reload_settings)
    except BaseException:
        await db.aclose()
        raise
    try:
        # The blocklists first: a bad entry stops the start instead of serving unchecked.
        await backends.moderation.reload()
        if settings.run_workers if with_worker is None else with_worker:
            await _start_workers(backends)
    except BaseException:
        await backends.aclose()
        raise
    return backends


def _assemble(settings: Settings, catalog: Catalog, db: Database,
              reload_settings: SettingsLoader | None = None) -> Backends:
    store = TaskStore(db)
    events: EventBus = plugins.choose(EVENT_BUSES, "memory", "event bus")(settings)
    blobs: BlobStore = plugins.choose(BLOB_STORES, settings.blob_store, "blob_store")(settings)
    limiter: RateLimiter = plugins.choose(
        RATE_LIMITERS, "redis" if settings.redis_url else "memory", "rate limiter")(settings)
    metrics = Metrics()
    metrics.watch_tasks(store.count_by_status)
    providers = build_providers(settings, catalog, metrics=metrics)
    body_budget = MemoryBudget(settings.max_inflight_body_bytes,
                               settings.inflight_body_wait_seconds)
    ingestor = build_ingestor(settings, blobs, body_budget)
    idempotency = IdempotencyStore(db, settings.idempotency_ttl_seconds)
    moderation_store = ModerationStore(db, settings.retention_seconds)
    moderation = Moderation(settings, store=moderation_store, blobs=blobs, metrics=metrics,
                            load_settings=reload_settings)
    return Backends(
        settings=settings,
        db=db,
        catalog=catalog,
        keys=KeyStore(db),
        store=store,
        events=events,
        blobs=blobs,
        providers=providers,
        ingestor=ingestor,
        idempotency=idempotency,
        limiter=limiter,
        intake=TaskIntake(catalog=catalog, providers=providers, idempotency=idempotency,
                          limiter=limiter, ingestor=ingestor, store=store, events=events,
                          retention_seconds=settings.retention_seconds, moderation=moderation),
        tasks=TaskService(store, events, poll_interval=settings.poll_interval_seconds,
                          sync_wait_seconds=settings.sync_wait_seconds),
        links=ResultLinks(
            UrlSigner(secret_files.signing_secret(settings), settings.url_ttl_seconds), blobs,
            url_mode=settings.url_mode, public_base_url=settings.public_base_url),
        usage=UsageReporter(db, settings.currency),
        webhooks=WebhookStore(db),
        metrics=metrics,
        moderation=moderation,
        moderation_store=moderation_store,
        admin_token=secret_files.admin_token(settings),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        body_budget=body_budget,
    )


async def _start_workers(b: Backends) -> None:
    settings = b.settings
    b.worker = Worker(
        b.store,
        b.events,
        b.providers,
        b.blobs,
        WorkerConfig(
            concurrency=settings.worker_concurrency,
            lease_seconds=settings.lease_seconds,
            poll_interval=settings.poll_interval_seconds,
            reaper_interval=settings.reaper_interval_seconds,
            max_attempts=settings.max_attempts,
        ),
        housekeeping=(b.idempotency.purge, b.moderation_store.purge),
        on_refused=b.moderation.upstream_refused,
    )
    await b.worker.start()
    b.dispatcher = WebhookDispatcher(b.webhooks, _task_renderer(b), address_policy(settings),
                                     DispatchConfig.from_settings(settings))
    await b.dispatcher.start()


def _task_renderer(b: Backends) -> Callable[[str], Awaitable[dict[str, Any] | None]]:
    """A webhook's `data`: the task object exactly as `GET /v1/tasks/{id}` shows it."""

    async def render(task_id: str) -> dict[str, Any] | None:
        task = await b.tasks.lookup(task_id)
        return None if task is None else await task_object(b.links, task)

    return render
