"""Settings: defaults < TOML file < `IMAGEGATE_*` environment < command-line flags.

Backend choices are plain strings here; `app.py` resolves them to implementations.
Every field is documented in `docs/configuration.md` (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_ENV = "IMAGEGATE_CONFIG"

Adapter = Literal["openai", "openai_compatible", "dimilinks", "apimart", "sandbox"]

_DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1"}


class ChannelConfig(BaseModel):
    """One upstream (a `[[channels]]` table in the TOML config). Documented field by field in
    docs/channels.md. The API key is read from `api_key`, the environment variable named by
    `api_key_env`, or the file named by `api_key_file`; it is never logged or returned."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    adapter: Adapter
    base_url: str = ""
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None
    # Empty only for a channel used solely as `moderation_channel` (checked at start-up).
    models: list[str] = []
    # imagegate model name -> the name this upstream calls it
    model_map: dict[str, str] = {}
    weight: int = Field(1, ge=0)
    priority: int = 0  # higher is tried first
    concurrency: int | None = Field(None, ge=1)
    connect_timeout: float = Field(10.0, gt=0)
    timeout: float = Field(600.0, gt=0)  # one upstream HTTP request (a sync generation)
    # async task APIs: the first poll's delay and the shortest wait between polls; the
    # waits grow with the task's expected run time and age (providers/cadence.py) up to
    # `poll_interval_max` (None: 10 x poll_interval)
    poll_interval: float = Field(3.0, gt=0)
    poll_interval_max: float | None = Field(None, gt=0)
    task_timeout: float = Field(1800.0, gt=0)  # an async upstream task, submit to result
    official: bool = False
    # openai_compatible: the request fields this upstream accepts (None: the adapter's default)
    fields: list[str] | None = None

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _base_url_needed(self) -> ChannelConfig:
        if not self.base_url:
            default = _DEFAULT_BASE_URLS.get(self.adapter)
            if default is None and self.adapter != "sandbox":
                raise ValueError(f"channel {self.name!r}: base_url is required")
            self.base_url = default or ""
        if not self.base_url.startswith(("http://", "https://")) and self.adapter != "sandbox":
            raise ValueError(f"channel {self.name!r}: base_url must be http(s)")
        return self

    def secret(self) -> str | None:
        """The upstream API key, from wherever it is configured."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        if self.api_key_env:
            return os.environ.get(self.api_key_env) or None
        if self.api_key_file is not None:
            return self.api_key_file.read_text().strip() or None
        return None

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)

    @property
    def max_poll_interval(self) -> float:
        """The longest wait between two polls of an async upstream task: `poll_interval_max`,
        by default ten times `poll_interval` (so a channel that polls often also backs off
        to a short cap), never below `poll_interval`."""
        configured = self.poll_interval_max
        longest = 10 * self.poll_interval if configured is None else configured
        return max(self.poll_interval, longest)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMAGEGATE_", extra="forbid")

    # -- where things live
    host: str = Field("127.0.0.1", description="Address `imagegate serve` binds to.")
    port: int = Field(8000, description="Port `imagegate serve` listens on.")
    processes: int = Field(
        1,
        ge=1,
        le=256,
        description="Server processes `imagegate serve` runs on this host, all on one port, "
        "each with its own in-process workers (`--processes`). More than 1 needs PostgreSQL "
        "and a blob store every process reads (local or s3).",
    )
    data_dir: Path = Field(
        Path("./imagegate-data"),
        description="Directory for the SQLite database, result files and the signing secret.",
    )
    database_url: str | None = Field(
        None,
        description="Database URL; default `sqlite:///<data_dir>/imagegate.db`. "
        "PostgreSQL: `postgresql://user@host/db` (or `postgresql+asyncpg://`).",
    )
    blob_store: Literal["local", "memory", "s3"] = Field(
        "local",
        description="Where result and reference images are stored: `local` (files under "
        "blob_dir), `memory` (lost on restart) or `s3` (a bucket of S3 or any S3-compatible "
        "service, shared by every process of a deployment; see the `s3_*` settings).",
    )
    blob_dir: Path | None = Field(
        None, description="Directory of the local blob store; default `<data_dir>/blobs`."
    )
    s3_bucket: str | None = Field(
        None, description="The bucket of `blob_store = \"s3\"` (required with it)."
    )
    s3_endpoint: str | None = Field(
        None,
        description="Endpoint of an S3-compatible service (MinIO, R2, Ceph, …), e.g. "
        "`https://s3.example.com`; unset: AWS S3 itself.",
    )
    s3_region: str | None = Field(
        None,
        description="Region of the bucket; unset: `AWS_REGION` / `AWS_DEFAULT_REGION` from the "
        "environment, else `us-east-1`.",
    )
    s3_prefix: str | None = Field(
        None,
        description="Key prefix inside the bucket (a folder such as `imagegate/`), so one "
        "bucket can hold several deployments or other data.",
    )
    s3_allow_http: bool = Field(
        False,
        description="Allow a plain `http://` s3_endpoint (a loopback or development server); "
        "credentials and images then travel unencrypted.",
    )
    s3_presigned_redirect: bool = Field(
        False,
        description="`GET /p/img/…` answers 302 to a short-lived (5 minutes at most) presigned "
        "URL of the object instead of streaming the bytes through imagegate.",
    )
    catalog_file: Path | None = Field(
        None, description="TOML model catalog replacing the packaged default."
    )

    # -- HTTP surface
    public_base_url: str | None = Field(
        None,
        description="Public origin of this server (e.g. `https://img.example.com`): the base "
        "of absolute result URLs, and the only one webhook payloads can use. Unset: the "
        "origin each request came to.",
    )
    url_mode: Literal["relative", "absolute", "data"] = Field(
        "absolute",
        description="How `data[].url` is given: an absolute signed URL (base: public_base_url, "
        "else the request's own scheme and host), a relative signed path (`/p/img/…`) or a "
        "`data:` URL.",
    )
    trusted_proxies: list[str] = Field(
        ["127.0.0.0/8", "::1/128"],
        description="Networks (CIDR) of reverse proxies whose `X-Forwarded-Proto` and "
        "`X-Forwarded-Host` are believed when building absolute URLs.",
    )
    signing_secret: SecretStr | None = Field(
        None,
        description="HMAC secret for signed result URLs; default: generated once and kept in "
        "`<data_dir>/signing.key`.",
    )
    url_ttl_seconds: int = Field(86_400, ge=60, description="How long a signed URL is valid.")
    max_body_bytes: int = Field(
        300 * 1024 * 1024,
        ge=1024,
        description="Largest accepted request body of any kind (413 above); multipart uploads "
        "stream through, so this bounds bytes read, not memory.",
    )
    max_json_body_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest accepted JSON body (413 above). JSON is parsed in memory, so this "
        "is lower than max_body_bytes; send large images as URLs or multipart files.",
    )
    max_inflight_body_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024 * 1024,
        description="Request body and reference image bytes one process holds in memory at "
        "once, across all requests; beyond it a request waits (inflight_body_wait_seconds), "
        "then gets 503 `server_busy` with `Retry-After`.",
    )
    inflight_body_wait_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a request waits for room under max_inflight_body_bytes before "
        "it is refused with 503.",
    )

    # -- reference images (ingest)
    max_reference_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, description="Largest single reference image or mask."
    )
    max_reference_total_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="Largest total of all images in one request."
    )
    max_reference_pixels: int = Field(
        50_000_000,
        ge=1,
        description="Most pixels an input image may have, read from its header before any "
        "decoding (decompression bombs are refused unread).",
    )
    max_reference_total_pixels: int = Field(
        100_000_000,
        ge=1,
        description="Most pixels all input images of one request (references and mask) may "
        "have together, read from their headers before any of them is decoded.",
    )
    fetch_connect_timeout: float = Field(
        5.0, gt=0, description="Seconds to connect when fetching a reference image URL."
    )
    fetch_timeout: float = Field(
        30.0, gt=0, description="Seconds in all to fetch one reference image URL."
    )
    fetch_max_redirects: int = Field(
        3, ge=0, description="Redirects followed per reference image URL (each re-checked)."
    )
    fetch_allow_hosts: list[str] = Field(
        [],
        description="Host names reference URLs may use even when they resolve to private "
        "addresses (trusted internal image stores).",
    )
    fetch_allow_networks: list[str] = Field(
        [],
        description="Networks (CIDR) reference URLs may connect to although the SSRF guard "
        "would refuse them, e.g. `10.20.0.0/16`.",
    )
    sync_wait_seconds: float = Field(
        600.0,
        gt=0,
        description="How long a synchronous request waits for its task before answering 202 "
        "with the task id instead.",
    )
    stream_keepalive_seconds: float = Field(
        15.0,
        gt=0,
        description="Quiet time after which a streaming response sends a keep-alive comment, "
        "so proxies do not cut a long generation.",
    )
    retry_after_seconds: int = Field(
        2, ge=1, description="The `Retry-After` hint on async submits."
    )
    max_deadline_seconds: float = Field(
        86400.0,
        gt=0,
        description="The longest deadline a request may set (`Cancel-After` header, "
        "`deadline_seconds` field); a longer one is a 400.",
    )

    # -- tasks and workers
    run_workers: bool = Field(
        True, description="Run task workers inside `imagegate serve` (the embedded default)."
    )
    worker_concurrency: int = Field(
        4096, ge=1, description="Tasks one worker process runs at once. A relayed task "
        "waiting on its upstream costs a few kilobytes, so thousands fit; CPU-bound work "
        "(rendering, decoding, encoding) is bounded separately by `cpu_workers`.",
    )
    max_inflight_result_bytes: int = Field(
        128 * 1024 * 1024, ge=1024 * 1024,
        description="Bytes of upstream answers one process holds in memory at once (task "
        "runs hold theirs until they end); an answer that does not fit waits for room in a "
        "spool file (see `max_spooled_result_bytes`). It is never refused: the upstream "
        "made the image.",
    )
    max_spooled_result_bytes: int = Field(
        8 * 1024 * 1024 * 1024, ge=0,
        description="Bytes of upstream answers one process keeps in spool files at once: an "
        "answer that does not fit `max_inflight_result_bytes` is read into a spool file and "
        "waits there (page cache and disk, not memory, not socket buffers) instead of in its "
        "socket. 0: no spool (such answers wait unread in their sockets).",
    )
    upstream_reader_thread: bool = Field(
        True, description="Task runs read their upstream answers on an event loop of their "
        "own, in a thread, rather than on the API's: a flood of large answers then leaves "
        "the API answering (a burst of 2,000 2 MiB answers held `/healthz` for seconds on "
        "one loop). Off: one loop does both.",
    )
    spool_dir: Path | None = Field(
        None, description="Directory of the spool files (nameless files where the system "
        "has `O_TMPFILE`, so a crash leaves none behind); default: the system's temp dir.",
    )
    cpu_workers: int | None = Field(
        None, ge=1, description="Threads for CPU-bound work (sandbox rendering, image "
        "decoding and checks, encoding, hashing) in one process; unset: one per CPU core.",
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="A claimed task's lease; workers renew it at a third of this."
    )
    reaper_interval_seconds: float = Field(
        5.0, gt=0, description="How often expired leases are looked for and requeued."
    )
    poll_interval_seconds: float = Field(
        1.0,
        gt=0,
        description="Backup polling of the task table when no wake-up event arrives.",
    )
    max_attempts: int = Field(
        3, ge=1, description="Runs of a task (after crashes) before it is failed for good."
    )
    retention_seconds: int = Field(
        7 * 86_400, ge=60, description="How long tasks and their images are kept."
    )

    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="`imagegate worker` only: serve `/metrics`, `/healthz` and `/readyz` on this "
        "port (bound to `host`), so a worker process can be scraped and probed. Unset: a "
        "worker opens no port.",
    )

    # -- sandbox provider
    sandbox_latency: float = Field(
        0.0, ge=0, description="Seconds the sandbox provider takes per task."
    )
    sandbox_progress_steps: int = Field(
        4, ge=1, le=99, description="Progress updates the sandbox reports while it waits."
    )
    sandbox_failure_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of sandbox tasks that fail on purpose."
    )

    # -- upstream channels (relay)
    channels: list[ChannelConfig] = Field(
        [],
        description="Upstreams to relay to, as `[[channels]]` tables (see docs/channels.md). "
        "None configured: the sandbox serves every model (or OpenAI, with openai_api_key).",
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("openai_api_key", "IMAGEGATE_OPENAI_API_KEY",
                                      "OPENAI_API_KEY"),
        description="Quick start: with no channels configured, an official OpenAI channel "
        "with this key serves the OpenAI models. Also read from `OPENAI_API_KEY`.",
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1",
        description="Base URL of the quick-start OpenAI channel.",
    )
    upstream_max_attempts: int = Field(
        3, ge=1, le=20,
        description="Upstream calls one task run makes in all (retries and failover) before "
        "it fails.",
    )
    upstream_backoff_seconds: float = Field(
        0.5, ge=0, description="Base of the jittered exponential backoff between retries."
    )
    upstream_backoff_max_seconds: float = Field(
        30.0, ge=0, description="Longest wait between two upstream retries."
    )
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open a channel's circuit breaker."
    )
    breaker_cooldown_seconds: float = Field(
        30.0, gt=0,
        description="How long an open breaker keeps a channel out before one trial request.",
    )
    upstream_result_check: Literal["trailer", "full"] = Field(
        "trailer",
        description="How an upstream's result image is checked for completeness after its "
        "header: `trailer` (the container's end is where it must be; microseconds) or `full` "
        "(every pixel decoded; ~10-50 ms of CPU per 4K image).",
    )
    upstream_result_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024,
        description="Largest result image downloaded (or decoded from base64) from an upstream.",
    )

    # -- accounts, billing, limits, webhooks
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the admin API (`/admin/...`); default: generated once and "
        "kept in `<data_dir>/admin.token`.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (e.g. `redis://127.0.0.1:6379/0`). When set, task events "
        "(wake-ups, progress, partial images, cancels) travel between processes through it and "
        "rate limits are counted there for every process. Unset: both stay in each process.",
    )
    currency: str = Field("USD", description="The unit prices and balances are given in.")
    credits_per_unit: float = Field(
        10.0, gt=0, description="Credits per unit of `currency`: the apimart profile's "
        "`credits_cost` is `cost` times this.",
    )
    idempotency_ttl_seconds: int = Field(
        86_400, ge=60, description="How long an `Idempotency-Key` is remembered."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, description="Delivery attempts per webhook before it is marked failed."
    )
    webhook_backoff_seconds: float = Field(
        5.0, gt=0, description="First retry delay of a webhook; doubles per attempt."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Seconds one webhook delivery may take."
    )

    # -- content moderation (docs/moderation.md)
    moderation_blocklist: list[str] = Field(
        [],
        description="Words, phrases and `re:` regular expressions refused in every prompt "
        "(a line `[name]` names the category of the entries after it).",
    )
    moderation_blocklist_file: Path | None = Field(
        None,
        description="A file of more blocklist entries, one a line (`#` comments); re-read on "
        "SIGHUP and `POST /admin/moderation/reload`.",
    )
    moderation_channel: str | None = Field(
        None,
        description="A channel (adapter openai or openai_compatible) whose `/moderations` "
        "endpoint checks every prompt and reference image before the hold. Unset: no model "
        "check.",
    )
    moderation_model: str = Field(
        "omni-moderation-latest", description="The model asked on the moderation channel."
    )
    moderation_thresholds: dict[str, float] = Field(
        {},
        description="Category -> score at or above which a request is refused; categories "
        "not listed follow the model's own `categories` flags.",
    )
    moderation_low_thresholds: dict[str, float] = Field(
        {"sexual/minors": 0.5},
        description="With `moderation: low` from a key allowed it (allow_low_moderation): "
        "only these categories, at these scores, are refused by the model check.",
    )
    moderation_timeout_seconds: float = Field(
        5.0, gt=0, description="Seconds the model check of one request may take in all."
    )
    moderation_on_error: Literal["open", "closed"] = Field(
        "closed",
        description="When the model check fails or times out: `closed` refuses the request "
        "with 503 `moderation_unavailable`; `open` lets it through (and logs it).",
    )
    moderation_cache_seconds: float = Field(
        300.0, ge=0,
        description="How long a model verdict is reused for the same prompt or image (by "
        "hash); 0 turns the cache off.",
    )
    moderation_images: bool = Field(
        True, description="Send reference images to the model check as well as the prompt."
    )

    # -- logging
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_json: bool = Field(False, description="Log as JSON lines instead of console text.")
    log_prompts: bool = Field(
        False,
        description="Put prompt text (and the matched blocklist entry) in moderation log lines; "
        "off, they name only the key, route, source and category.",
    )

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, v: str | None) -> str | None:
        return v.rstrip("/") if v else v

    @field_validator("fetch_allow_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net)
            except ValueError as exc:  # e.g. host bits set: "10.20.0.5/16"
                raise ValueError(f"{info.field_name}: {exc}") from None
        return v

    @field_validator("moderation_thresholds", "moderation_low_thresholds")
    @classmethod
    def _scores(cls, v: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        for category, score in v.items():
            if not 0 <= score <= 1:
                raise ValueError(f"{info.field_name}: the score of {category!r} must be "
                                 "between 0 and 1")
        return v

    @model_validator(mode="after")
    def _moderation_channel_exists(self) -> Settings:
        name = self.moderation_channel
        for ch in self.channels:
            if not ch.models and ch.name != name:
                raise ValueError(f"channel {ch.name!r} serves no models (models = [] is only "
                                 "for the moderation_channel)")
        if name is None:
            return self
        found = next((c for c in self.channels if c.name == name), None)
        if found is None:
            if name == "openai" and self.openai_api_key is not None:
                return self  # the quick-start channel's key (see moderation/model.py)
            raise ValueError(f"moderation_channel {name!r} names no channel")
        if found.adapter not in ("openai", "openai_compatible"):
            raise ValueError(f"moderation_channel {name!r} must use the openai or "
                             f"openai_compatible adapter, not {found.adapter!r}")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Settings:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError('s3_bucket is required when blob_store = "s3" '
                             "(IMAGEGATE_S3_BUCKET)")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve()}/imagegate.db"

    @property
    def effective_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; `config_file` (or $IMAGEGATE_CONFIG) is a TOML file of the same keys.

    Precedence: `overrides` (command-line flags) > `IMAGEGATE_*` env > TOML file > defaults.
    The file's values are passed as init values minus those the environment also sets, which
    keeps that order without a custom settings source.
    """
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    values: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        with path.open("rb") as fh:
            values = tomllib.load(fh)
        values = {
            k: v for k, v in values.items() if f"IMAGEGATE_{k.upper()}" not in os.environ
        }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
