"""The composition root: the one place that turns Settings into the backends of a process,
wires them to each other, and closes them in reverse order. Nothing else constructs a
backend; the API reads what it needs off `app.state.backends` through the narrow
dependencies of `api/deps.py`, and the CLI commands call `build_backends` or
`open_database`.

Backends with several implementations are picked by a setting's name from a table of
`"module:factory"` strings (`BLOB_STORES`, `EVENT_BUSES`, `RATE_LIMITERS`; provider adapters
have theirs in `providers/factory.py`). A factory takes the Settings and returns the backend;
adding an implementation is one module and one line in its table.

`preflight` is what `imagegate serve` and `imagegate worker` run before they start: every
shared backend reachable and every secret that must be shared configured, or one clear
error naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from imagegate import plugins, secret_files
from imagegate.accounts.idempotency import IdempotencyStore
from imagegate.accounts.keys import KeyStore
from imagegate.accounts.limits import RateLimiter
from imagegate.accounts.usage import UsageReporter
from imagegate.api.origin import ProxyTrust, parse_networks
from imagegate.api.profiles.native import task_object
from imagegate.config import Settings
from imagegate.db.database import Database, read_scalar
from imagegate.db.database import open_database as open_db
from imagegate.domain.catalog import Catalog, load_catalog
from imagegate.errors import BackendUnavailableError
from imagegate.ingest import IngestLimits, Ingestor
from imagegate.ingest.budget import MemoryBudget
from imagegate.metrics import Metrics
from imagegate.moderation.service import Moderation, SettingsLoader
from imagegate.moderation.store import ModerationStore
from imagegate.net.fetch import Fetcher, FetchLimits
from imagegate.net.guard import AddressPolicy
from imagegate.providers.factory import build_providers
from imagegate.providers.holding import ResultBudget
from imagegate.providers.reader import AnswerReader
from imagegate.providers.registry import ProviderRegistry
from imagegate.providers.spool import AnswerSpool
from imagegate.storage.base import BlobStore
from imagegate.storage.links import ResultLinks
from imagegate.storage.signing import UrlSigner
from imagegate.tasks.estimates import DurationEstimates
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
    "s3": "imagegate.storage.s3_store:s3_store",
})
EVENT_BUSES: Mapping[str, str] = MappingProxyType({
    "memory": "imagegate.tasks.events:memory_bus",
    "redis": "imagegate.tasks.redis_events:redis_bus",
})
RATE_LIMITERS: Mapping[str, str] = MappingProxyType({
    "memory": "imagegate.accounts.limits:memory_limiter",
    "redis": "imagegate.accounts.limits:redis_limiter",
})


Check = Callable[[], Awaitable[None]]

# How long one readiness check may take before it counts as failed.
CHECK_TIMEOUT = 5.0


def redis_backend(settings: Settings) -> str:
    """Events and rate limits both go through Redis when `redis_url` is set."""
    return "redis" if settings.redis_url else "memory"


def build_blob_store(settings: Settings) -> BlobStore:
    store: BlobStore = plugins.choose(BLOB_STORES, settings.blob_store, "blob_store")(settings)
    return store


def build_event_bus(settings: Settings) -> EventBus:
    bus: EventBus = plugins.choose(EVENT_BUSES, redis_backend(settings), "event bus")(settings)
    return bus


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
    trusted_proxies: ProxyTrust = field(default_factory=ProxyTrust)
    worker: Worker | None = None
    dispatcher: WebhookDispatcher | None = None
    # `/readyz`: what must answer for this process to take traffic, by name.
    checks: Mapping[str, Check] = field(default_factory=dict)
    # The event loop's default executor: CPU-bound work (`cpu_pool`).
    cpu: ThreadPoolExecutor | None = None
    # The loop task runs read upstream answers on (`providers/reader.py`), with the workers.
    reader: AnswerReader | None = None

    async def aclose(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        if self.dispatcher is not None:  # after the worker: finishing tasks queue deliveries
            await self.dispatcher.stop()
        await self.providers.aclose()
        if self.reader is not None:  # after the providers: their sessions close on it
            await self.reader.stop()
        await self.moderation.aclose()
        await self.limiter.aclose()
        await self.ingestor.aclose()
        await self.events.aclose()
        await self.blobs.aclose()
        await self.db.aclose()
        if self.cpu is not None:
            self.cpu.shutdown(wait=False, cancel_futures=True)


def cpu_pool(settings: Settings) -> ThreadPoolExecutor:
    """The threads CPU-bound work runs on (sandbox renders, decoding and checking images,
    encoding, hashing: everything sent with `asyncio.to_thread`), installed as the running
    loop's default executor. Worker slots are sized for waiting on upstreams (thousands);
    this pool is what keeps thousands of tasks from rendering at once: one thread per core,
    as libvips and pybase64 release the GIL."""
    pool = ThreadPoolExecutor(max_workers=settings.cpu_workers or os.cpu_count() or 2,
                              thread_name_prefix="imagegate-cpu")
    asyncio.get_running_loop().set_default_executor(pool)
    return pool


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


async def preflight(settings: Settings, *, api: bool = True) -> None:
    """Refuse to start a process that could not work with others: a secret that must be
    shared but is not configured (ValueError), or a backend that does not answer
    (`BackendUnavailableError`, naming the setting). Opens and closes its own connections;
    writes only a probe object to S3 (the blob store's thorough check)."""
    secret_files.require_shared_secrets(settings, api=api)
    db: Database | None = None
    try:
        db = open_db(settings.effective_database_url)
        await _check_database(db, settings)
    except BackendUnavailableError:
        raise
    except Exception as exc:
        raise BackendUnavailableError("database_url", _first_line(exc)) from None
    finally:
        if db is not None:
            await db.aclose()
    blobs = build_blob_store(settings)
    try:
        await blobs.check(thorough=True)
    finally:
        await blobs.aclose()
    events = build_event_bus(settings)
    try:
        await events.check()
    finally:
        await events.aclose()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:300] if text else "") or type(exc).__name__


async def _check_database(db: Database, settings: Settings) -> None:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await read_scalar(db, sa.select(1))
    except TimeoutError:
        raise BackendUnavailableError(
            "database_url", f"no answer within {CHECK_TIMEOUT:.0f} s") from None
    except Exception as exc:
        raise BackendUnavailableError("database_url", _first_line(exc)) from None


async def build_backends(settings: Settings, *, with_worker: bool | None = None,
                         with_api: bool = True,
                         reload_settings: SettingsLoader | None = None) -> Backends:
    """Every backend of one process; with workers (task runner and webhook dispatcher)
    started when `with_worker` (default: `run_workers`) says so. `with_api=False` (the
    `imagegate worker` process) serves no admin API, so it needs no admin token.
    `reload_settings` reads the configuration again when the moderation lists are reloaded
    (SIGHUP, the admin API)."""
    secret_files.require_shared_secrets(settings, api=with_api)
    catalog = load_catalog(settings.catalog_file)
    db = await open_database(settings)
    try:
        backends = _assemble(settings, catalog, db, reload_settings, with_api=with_api)
    except BaseException:
        await db.aclose()
        raise
    backends.cpu = cpu_pool(settings)
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
              reload_settings: SettingsLoader | None = None, *,
              with_api: bool = True) -> Backends:
    store = TaskStore(db)
    estimates = DurationEstimates(catalog, store.recent_durations)
    events = build_event_bus(settings)
    blobs = build_blob_store(settings)
    limiter: RateLimiter = plugins.choose(
        RATE_LIMITERS, redis_backend(settings), "rate limiter")(settings)
    metrics = Metrics()
    metrics.watch_tasks(store.count_by_status)
    metrics.watch_event_bus(lambda: events.connected)
    checks: dict[str, Check] = {"database": lambda: _check_database(db, settings),
                                "blob_store": blobs.check}
    if settings.redis_url:
        checks["redis"] = events.check
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
                          sync_wait_seconds=settings.sync_wait_seconds, estimates=estimates),
        links=ResultLinks(
            UrlSigner(secret_files.signing_secret(settings), settings.url_ttl_seconds), blobs,
            url_mode=settings.url_mode, public_base_url=settings.public_base_url),
        usage=UsageReporter(db, settings.currency),
        webhooks=WebhookStore(db),
        metrics=metrics,
        moderation=moderation,
        moderation_store=moderation_store,
        # A worker process serves no admin API: an unguessable token nobody holds, rather
        # than one generated into (or read from) its data directory.
        admin_token=(secret_files.admin_token(settings) if with_api
                     else secrets.token_urlsafe(32)),
        trusted_proxies=ProxyTrust(parse_networks(settings.trusted_proxies)),
        body_budget=body_budget,
        checks=checks,
    )


async def _start_workers(b: Backends) -> None:
    settings = b.settings
    if settings.upstream_reader_thread:
        b.reader = AnswerReader()
        b.reader.start()
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
        estimates=b.tasks.estimates,
        catalog=b.catalog,
        results=ResultBudget(settings.max_inflight_result_bytes, spool=AnswerSpool(
            settings.max_spooled_result_bytes, settings.spool_dir)
            if settings.max_spooled_result_bytes else None, reader=b.reader),
    )
    await b.worker.start()
    b.intake.attach_runner(b.worker)
    b.dispatcher = WebhookDispatcher(b.webhooks, _task_renderer(b), address_policy(settings),
                                     DispatchConfig.from_settings(settings))
    await b.dispatcher.start()


def _task_renderer(b: Backends) -> Callable[[str], Awaitable[dict[str, Any] | None]]:
    """A webhook's `data`: the task object exactly as `GET /v1/tasks/{id}` shows it."""

    async def render(task_id: str) -> dict[str, Any] | None:
        task = await b.tasks.lookup(task_id)
        if task is None:
            return None
        return await task_object(b.links, task, await b.tasks.outlook(task))

    return render
