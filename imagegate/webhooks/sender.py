"""The webhook dispatcher: claim due deliveries, render, sign and POST them, record outcomes.

- The body is rendered once, at the first attempt, and stored; every retry sends the same
  bytes under the same `webhook-id`, so receivers can deduplicate. Only `webhook-timestamp`
  (and so the signature) changes per attempt, as Standard Webhooks intends.
- Connections go through the SSRF guard (`GuardedResolver` judges what DNS returned; IP
  literals, which aiohttp never resolves, are judged here). A refusal is permanent: retrying
  cannot make a private address public. Redirects are not followed (a 3xx is a failure): a
  redirect would be a second, unsigned-for destination.
- 2xx is delivered; any other status, a timeout or a connection error is retried with
  doubling, jittered backoff (capped) until `max_attempts`, then the delivery is failed.
- Secrets are never logged; errors recorded for the owner name at most the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp.abc import AbstractResolver
from yarl import URL

from imagegate import __version__
from imagegate.config import Settings
from imagegate.domain.task import new_owner_id
from imagegate.errors import NotFoundError
from imagegate.net.guard import AddressPolicy, FetchRefusedError, find_refusal
from imagegate.net.session import GuardedSession
from imagegate.webhooks import signing
from imagegate.webhooks.store import Delivery, WebhookStore

log = logging.getLogger("imagegate.webhooks")

Render = Callable[[str], Awaitable[dict[str, Any] | None]]
"""The task object (`native.task_object`) of a task id, or None when the task is gone."""


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    max_attempts: int = 8
    backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    timeout_seconds: float = 10.0
    concurrency: int = 16
    poll_interval: float = 1.0
    jitter: float = 0.2  # ± this fraction, so a receiver's outage does not sync retries

    @property
    def lease_seconds(self) -> float:
        # An attempt is bounded by the timeout; the margin covers rendering and the DB writes.
        # No renewal needed, and a dead dispatcher's deliveries come back after this long.
        return self.timeout_seconds + 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
        )

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Delay before the attempt after the `attempts`-th one."""
        base = self.backoff_seconds * 2.0 ** min(max(attempts - 1, 0), 32)
        delay = base * random.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None:  # the receiver asked (429/503): no sooner than that
            delay = max(delay, retry_after)
        return min(delay, self.max_backoff_seconds)


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.status_code is not None


def body_for(event: str, data: dict[str, Any], occurred_at: float) -> str:
    """The JSON body: when the event happened (the delivery row was written with the task's
    end), not when it was rendered, so the body is the same whenever it is rendered."""
    stamp = datetime.fromtimestamp(occurred_at, UTC)
    return orjson.dumps(
        {"type": event, "timestamp": stamp.isoformat().replace("+00:00", "Z"), "data": data}
    ).decode()


class WebhookDispatcher:
    def __init__(
        self,
        store: WebhookStore,
        render: Render,
        policy: AddressPolicy,
        config: DispatchConfig,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._store = store
        self._render = render
        self._config = config
        self.owner = new_owner_id()
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        # Redirects are never followed (see the module docstring), so the session only ever
        # connects to the receiver's own URL, judged by the guard.
        self._client = GuardedSession(
            policy,
            timeout=aiohttp.ClientTimeout(total=config.timeout_seconds),
            headers={"User-Agent": f"imagegate-webhooks/{__version__}"},
            limit=config.concurrency,
            resolver=resolver,
        )

    def notify(self) -> None:
        """New deliveries may be due now (a task finished, a retry was requested)."""
        self._wake.set()

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="imagegate-webhooks")

    async def stop(self) -> None:
        """Stop claiming, abandon attempts in flight and hand their leases back."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        running = list(self._running.items())
        for _, job in running:
            job.cancel()
        await asyncio.gather(*(job for _, job in running), return_exceptions=True)
        if running:
            with contextlib.suppress(Exception):  # else the leases lapse on their own
                await self._store.release([did for did, _ in running], self.owner)
        await self._client.aclose()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            free = self._config.concurrency - len(self._running)
            batch: list[Delivery] = []
            try:
                batch = await self._store.claim_due(self.owner, self._config.lease_seconds, free)
            except Exception:
                log.exception("claiming webhook deliveries failed; retrying")
            for delivery in batch:
                job = asyncio.create_task(self._run(delivery), name=f"webhook-{delivery.id}")
                self._running[delivery.id] = job
                job.add_done_callback(self._finished)
            if batch and len(batch) == free:
                continue  # maybe more are due; a full house waits for a slot (`_finished`)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._config.poll_interval):
                    await self._wake.wait()

    def _finished(self, job: asyncio.Task[None]) -> None:
        self._running.pop(job.get_name().removeprefix("webhook-"), None)
        self._wake.set()

    async def _run(self, delivery: Delivery) -> None:
        try:
            await self.attempt(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook %s: attempt failed unexpectedly", delivery.id)
            with contextlib.suppress(Exception):
                await self._record(delivery, Outcome(error="internal error while delivering"))

    async def attempt(self, delivery: Delivery) -> Outcome:
        """One claimed delivery: render (first time), sign, send, record the outcome."""
        if delivery.attempts > self._config.max_attempts:
            # Claimed again after dispatchers died mid-attempt: that still counts.
            outcome = Outcome(error=f"gave up after {self._config.max_attempts} attempts",
                              permanent=True)
            await self._record(delivery, outcome)
            return outcome
        payload = delivery.payload
        if payload is None:
            data = await self._render(delivery.task_id)
            if data is None:
                outcome = Outcome(error="the task no longer exists", permanent=True)
                await self._record(delivery, outcome)
                return outcome
            payload = body_for(delivery.event, data, delivery.created_at)
            if not await self._store.set_payload(delivery.id, self.owner, payload):
                return Outcome(error="lease lost")  # someone else owns it now: leave it be
        try:
            secret = await self._store.key_secret(delivery.key_id)
        except NotFoundError:
            outcome = Outcome(error="the API key no longer exists", permanent=True)
        else:
            outcome = await self._post(delivery, payload.encode(), secret)
        await self._record(delivery, outcome)
        return outcome

    async def _record(self, delivery: Delivery, outcome: Outcome) -> None:
        host = URL(delivery.url).raw_host or "?"
        if outcome.delivered:
            assert outcome.status_code is not None
            await self._store.mark_delivered(delivery.id, self.owner, outcome.status_code)
            log.info("webhook %s delivered to %s (HTTP %s, attempt %d)", delivery.id, host,
                     outcome.status_code, delivery.attempts)
            return
        error = outcome.error or "failed"
        if outcome.permanent or delivery.attempts >= self._config.max_attempts:
            await self._store.mark_failed(delivery.id, self.owner, outcome.status_code, error)
            log.warning("webhook %s to %s failed for good after %d attempts: %s",
                        delivery.id, host, delivery.attempts, error)
            return
        next_at = time.time() + self._config.backoff(delivery.attempts, outcome.retry_after)
        await self._store.mark_retry(delivery.id, self.owner, next_at, outcome.status_code,
                                     error)
        log.info("webhook %s to %s: attempt %d failed (%s); retrying", delivery.id, host,
                 delivery.attempts, error)

    async def _post(self, delivery: Delivery, body: bytes, secret: str) -> Outcome:
        try:
            url = URL(delivery.url)
            if url.scheme not in ("http", "https") or not url.raw_host:
                raise ValueError("not an http(s) URL with a host")
            url = self._client.check_target(url)
        except FetchRefusedError as exc:
            return Outcome(error=f"refused: {exc.public_reason}", permanent=True)
        except ValueError:
            return Outcome(error="the webhook URL is not valid", permanent=True)
        host = url.raw_host
        sent = signing.headers(secret, delivery.id, int(time.time()), body)
        try:
            async with self._client.session.post(url, data=body, headers=sent,
                                          allow_redirects=False) as response:
                status = response.status
                if 200 <= status < 300:
                    return Outcome(status_code=status)
                if 300 <= status < 400:
                    return Outcome(status_code=status,
                                   error=f"HTTP {status}: redirects are not followed")
                return Outcome(status_code=status, error=f"HTTP {status}",
                               retry_after=_retry_after(response.headers.get("Retry-After")))
        except TimeoutError:  # before OSError: aiohttp's timeouts are both
            return Outcome(error=f"timed out after {self._config.timeout_seconds:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            refused = find_refusal(exc)
            if refused is not None:
                log.warning("webhook %s refused: %s", delivery.id, refused.reason)
                return Outcome(error=f"refused: {refused.public_reason}", permanent=True)
            if isinstance(exc, aiohttp.ClientConnectorError):
                return Outcome(error=f"could not connect to {host}")
            return Outcome(error=f"the connection to {host} failed")


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare for webhooks, and the backoff covers it
    return seconds if seconds >= 0 else None
