"""The wired-up backends of one process. Built from Settings, owned by the app's lifespan
(or by a CLI command), closed in reverse order. Nothing here is module-level state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagegate import secret_files
from imagegate.accounts.idempotency import IdempotencyStore
from imagegate.accounts.keys import KeyStore
from imagegate.accounts.limits import RateLimiter
from imagegate.accounts.usage import UsageReporter
from imagegate.config import Settings
from imagegate.db.database import Database
from imagegate.db.database import open_database as open_db
from imagegate.domain.catalog import Catalog, load_catalog
from imagegate.ingest import IngestLimits, Ingestor
from imagegate.ingest.fetch import Fetcher, FetchLimits
from imagegate.ingest.guard import AddressPolicy
from imagegate.metrics import Metrics
from imagegate.providers.factory import build_providers
from imagegate.providers.registry import ProviderRegistry
from imagegate.storage.base import BlobStore
from imagegate.storage.obstore_store import ObstoreBlobStore
from imagegate.storage.signing import UrlSigner
from imagegate.tasks.events import EventBus, MemoryEventBus
from imagegate.tasks.service import TaskService
from imagegate.tasks.store import TaskStore
from imagegate.tasks.worker import Worker, WorkerConfig
from imagegate.webhooks.sender import DispatchConfig, WebhookDispatcher
from imagegate.webhooks.store import WebhookStore


@dataclass
class Services:
    settings: Settings
    db: Database
    catalog: Catalog
    keys: KeyStore
    store: TaskStore
    tasks: TaskService
    events: EventBus
    blobs: BlobStore
    signer: UrlSigner
    providers: ProviderRegistry
    ingestor: Ingestor
    idempotency: IdempotencyStore
    limiter: RateLimiter
    usage: UsageReporter
    webhooks: WebhookStore
    metrics: Metrics
    admin_token: str = ""
    worker: Worker | None = None
    dispatcher: WebhookDispatcher | None = None

    async def aclose(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.dispatcher is not None:  # after the worker: finishing tasks queue deliveries
            await self.dispatcher.stop()
        await self.providers.aclose()
        await self.limiter.aclose()
        await self.ingestor.aclose()
        await self.events.aclose()
        await self.blobs.aclose()
        await self.db.aclose()


def build_blobs(settings: Settings) -> BlobStore:
    if settings.blob_store == "memory":
        return ObstoreBlobStore.memory()
    return ObstoreBlobStore.local(Path(settings.effective_blob_dir))


def build_ingestor(settings: Settings, blobs: BlobStore) -> Ingestor:
    fetcher = Fetcher(
        AddressPolicy.from_config(settings.fetch_allow_hosts, settings.fetch_allow_networks),
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
        ),
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


async def build_services(settings: Settings, *, with_worker: bool | None = None) -> Services:
    catalog = load_catalog(settings.catalog_file)
    db = await open_database(settings)
    try:
        return await _assemble(settings, catalog, db, with_worker)
    except BaseException:
        await db.aclose()
        raise


async def _assemble(settings: Settings, catalog: Catalog, db: Database,
                    with_worker: bool | None) -> Services:
    store = TaskStore(db)
    events = MemoryEventBus()
    blobs = build_blobs(settings)
    metrics = Metrics()
    metrics.watch_tasks(store.count_by_status)
    services = Services(
        settings=settings,
        db=db,
        catalog=catalog,
        keys=KeyStore(db),
        store=store,
        tasks=TaskService(store, events, retention_seconds=settings.retention_seconds,
                          poll_interval=settings.poll_interval_seconds),
        events=events,
        blobs=blobs,
        signer=UrlSigner(secret_files.signing_secret(settings), settings.url_ttl_seconds),
        providers=build_providers(settings, catalog, metrics=metrics),
        ingestor=build_ingestor(settings, blobs),
        idempotency=IdempotencyStore(db, settings.idempotency_ttl_seconds),
        limiter=RateLimiter(settings.redis_url),
        usage=UsageReporter(db, settings.currency),
        webhooks=WebhookStore(db),
        metrics=metrics,
        admin_token=secret_files.admin_token(settings),
    )
    run_worker = settings.run_workers if with_worker is None else with_worker
    if run_worker:
        services.worker = Worker(
            store,
            events,
            services.providers,
            services.blobs,
            WorkerConfig(
                concurrency=settings.worker_concurrency,
                lease_seconds=settings.lease_seconds,
                poll_interval=settings.poll_interval_seconds,
                reaper_interval=settings.reaper_interval_seconds,
                max_attempts=settings.max_attempts,
            ),
            housekeeping=(services.idempotency.purge,),
        )
        await services.worker.start()
        services.dispatcher = WebhookDispatcher(
            services.webhooks,
            _task_renderer(services),
            AddressPolicy.from_config(settings.fetch_allow_hosts, settings.fetch_allow_networks),
            DispatchConfig.from_settings(settings),
        )
        await services.dispatcher.start()
    return services


def _task_renderer(services: Services) -> Callable[[str], Awaitable[dict[str, Any] | None]]:
    """A webhook's `data`: the task object exactly as `GET /v1/tasks/{id}` shows it."""

    async def render(task_id: str) -> dict[str, Any] | None:
        # Imported here: the API layer imports Services from this module.
        from imagegate.api.profiles.native import task_object

        task = await services.store.get(task_id)
        return None if task is None else await task_object(services, task)

    return render
