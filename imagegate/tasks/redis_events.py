"""The event bus on Redis (`redis_url`): task events and wake-ups between processes on any
number of hosts.

- A task's events go out with `PUBLISH <prefix>:task:<id>`; each process keeps one pub/sub
  connection, subscribed to the tasks someone in that process follows (a sync wait, a stream,
  a worker watching for a cancel), and hands each message to its local subscribers.
- "Work is queued" is `LPUSH <prefix>:work` (trimmed to a bounded length) and an idle
  worker's dispatcher waits with `BLPOP`: Redis gives each announcement to exactly one
  waiter, so a new task wakes one worker, not all of them.
- Partial images travel inside the message as base64, up to `MAX_PARTIAL_BYTES` each (a
  larger one is not sent: Redis cuts off a pub/sub client whose unread output passes 32 MB by
  default, and a stream simply shows one preview fewer).

Redis going away stops nothing. The listener notices (a closed connection, or a ping that
fails while idle), logs one warning, reports `connected = False` (exported as the
`imagegate_event_bus_connected` metric) and reconnects with backoff, subscribing again to
every task still followed; from then on events flow again, without a restart. Meanwhile
nothing waits on Redis: events go only to this process's own subscribers, wake-ups to this
process's own worker, and everyone else polls the database as always.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

from imagegate.config import Settings
from imagegate.domain.images import PartialImage
from imagegate.errors import BackendUnavailableError
from imagegate.tasks.events import (
    MAX_PENDING_WORK,
    EventBus,
    EventKind,
    LocalSubscribers,
    Subscription,
    TaskEvent,
)

log = logging.getLogger("imagegate.events")

MAX_PARTIAL_BYTES = 8 * 1024 * 1024
_COMMAND_TIMEOUT = 2.0  # one PUBLISH / LPUSH / PING; Redis answers in microseconds when up
_JOIN_TIMEOUT = 1.0  # a SUBSCRIBE's confirmation; after it the subscriber polls meanwhile
_IDLE_PING = 5.0  # an idle listener pings this often, to notice a connection that died quietly
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 2.0


def redact(url: str) -> str:
    """A Redis URL fit for a log line: any password replaced."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{scheme}://{user}:***@{host}"


def encode(event: TaskEvent) -> bytes | None:
    """The wire form of an event; None for a partial image too large to send."""
    body: dict[str, Any] = {"task_id": event.task_id, "kind": event.kind.value}
    if event.progress is not None:
        body["progress"] = event.progress
    if event.status is not None:
        body["status"] = event.status
    if event.partial is not None:
        if len(event.partial.data) > MAX_PARTIAL_BYTES:
            return None
        body["partial"] = {"image_index": event.partial.image_index,
                           "partial_index": event.partial.partial_index,
                           "b64": base64.b64encode(event.partial.data).decode()}
    return orjson.dumps(body)


def decode(payload: bytes) -> TaskEvent | None:
    """An event from the wire; None for anything malformed (logged, never raised: a stray
    publisher on the channel must not break the listener)."""
    try:
        body = orjson.loads(payload)
        partial = body.get("partial")
        return TaskEvent(
            task_id=str(body["task_id"]),
            kind=EventKind(body["kind"]),
            progress=body.get("progress"),
            status=body.get("status"),
            partial=None if partial is None else PartialImage(
                int(partial["image_index"]), int(partial["partial_index"]),
                base64.b64decode(partial["b64"])),
        )
    except (ValueError, KeyError, TypeError) as exc:
        log.debug("ignored a malformed event message: %s", exc)
        return None


class RedisEventBus(EventBus):
    def __init__(self, url: str, *, prefix: str = "imagegate") -> None:
        self._url = url
        try:
            # One immediate retry (a pooled connection the server closed is replaced once),
            # never a backoff: a failed command is handled here at once (local delivery,
            # polling) rather than retried while a worker waits on it. No socket timeout:
            # BLPOP blocks on purpose; every command is bounded with asyncio.timeout instead.
            self._redis = aioredis.Redis.from_url(
                url, socket_connect_timeout=_COMMAND_TIMEOUT, socket_timeout=None,
                socket_keepalive=True, retry=Retry(NoBackoff(), 1),
            )
        except ValueError as exc:
            raise BackendUnavailableError("redis_url", f"{redact(url)} is not a Redis URL: "
                                                       f"{exc}") from None
        self._task_prefix = f"{prefix}:task:"
        self._control = f"{prefix}:bus"  # always subscribed: keeps the pub/sub connection open
        self._work_key = f"{prefix}:work"
        self._local = LocalSubscribers()
        self._local_work: asyncio.Queue[None] = asyncio.Queue(MAX_PENDING_WORK)
        self._pubsub: PubSub | None = None
        self._joining: dict[str, asyncio.Future[None]] = {}
        self._listener: asyncio.Task[None] | None = None
        # Up (True), down (False) or not known yet (None: the listener's first connection is
        # on its way). Commands are tried unless Redis is known to be down.
        self._up: bool | None = None
        self._ready = asyncio.Event()  # set while the listener's connection is up
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._up is True

    @property
    def _usable(self) -> bool:
        return self._up is not False

    # -- publishing
    async def publish(self, event: TaskEvent) -> None:
        self._start()
        if self._usable:
            payload = encode(event)
            if payload is None:
                log.debug("partial image of %s not sent over Redis: over %d bytes",
                          event.task_id, MAX_PARTIAL_BYTES)
                return
            try:
                async with asyncio.timeout(_COMMAND_TIMEOUT):
                    await self._redis.publish(self._task_prefix + event.task_id, payload)
                return
            except Exception as exc:
                log.debug("publish failed (%s); delivered in this process only", exc)
        # Redis did not take it: at least this process's own subscribers hear of it.
        self._local.deliver(event)

    async def work_queued(self) -> None:
        self._start()
        if self._usable:
            try:
                async with asyncio.timeout(_COMMAND_TIMEOUT):
                    pipe = self._redis.pipeline(transaction=False)
                    pipe.lpush(self._work_key, b"1")
                    pipe.ltrim(self._work_key, 0, MAX_PENDING_WORK - 1)
                    await pipe.execute()
                return
            except Exception as exc:
                log.debug("work announcement failed (%s); this process only", exc)
        with contextlib.suppress(asyncio.QueueFull):
            self._local_work.put_nowait(None)

    async def wait_for_work(self, timeout: float) -> bool:
        self._start()
        if not self._local_work.empty():
            self._local_work.get_nowait()
            return True
        if self._usable:
            try:
                async with asyncio.timeout(timeout + _COMMAND_TIMEOUT):
                    got = await self._redis.blpop([self._work_key], timeout=max(timeout, 0.01))
                return got is not None
            except Exception as exc:
                log.debug("waiting for work on Redis failed: %s", exc)
                # Not a hot loop while the listener notices the outage: wait it out locally.
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see Subscription.next
                await self._local_work.get()
        except TimeoutError:
            return False
        return True

    # -- subscribing
    @asynccontextmanager
    async def _subscribe(self, task_id: str) -> AsyncIterator[Subscription]:
        self._start()
        sub, first = self._local.add(task_id)
        try:
            await self._join(task_id, first)
            yield sub
        finally:
            if self._local.remove(sub):
                await self._leave(task_id)

    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscribe(task_id)

    async def _join(self, task_id: str, first: bool) -> None:
        """Subscribe this process to the task's channel and wait (briefly) for Redis to
        confirm, so an event published right after cannot slip past. Best effort: without
        Redis the subscriber still polls."""
        channel = self._task_prefix + task_id
        if self._pubsub is None and self._up is None:
            # The listener's first connection is on its way: worth a moment's wait.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_JOIN_TIMEOUT):
                    await self._ready.wait()
        pubsub = self._pubsub
        if pubsub is None:
            return  # Redis is away: the listener subscribes to every followed task when back
        waiter = self._joining.get(channel)
        if waiter is None:
            if not first:
                return  # already confirmed for an earlier subscriber of this process
            waiter = self._joining[channel] = asyncio.get_running_loop().create_future()
            try:
                await pubsub.subscribe(channel)
            except Exception as exc:
                self._joining.pop(channel, None)
                log.debug("subscribe to %s failed: %s", channel, exc)
                return
        # asyncio.wait neither cancels the shared waiter on a timeout nor swallows a cancel
        # of this subscriber (wait_for on 3.11 can).
        await asyncio.wait([waiter], timeout=_JOIN_TIMEOUT)

    async def _leave(self, task_id: str) -> None:
        channel = self._task_prefix + task_id
        self._joining.pop(channel, None)
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            await pubsub.unsubscribe(channel)
            if task_id in self._local.by_task:  # someone subscribed again meanwhile
                await pubsub.subscribe(channel)
        except Exception as exc:
            log.debug("unsubscribe from %s failed: %s", channel, exc)

    # -- the listener: one pub/sub connection per process, reconnected for ever
    def _start(self) -> None:
        if self._listener is None and not self._closed:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="imagegate-events")

    async def _listen(self) -> None:
        delay = _BACKOFF_FIRST
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._control)
                # From here on, a new subscriber subscribes itself; the ones before are in
                # this snapshot (no await between the two lines).
                self._pubsub = pubsub
                followed = [self._task_prefix + t for t in self._local.by_task]
                if followed:
                    await pubsub.subscribe(*followed)
                self._set_connected(True, None)
                delay = _BACKOFF_FIRST
                while True:
                    message = await pubsub.get_message(timeout=_IDLE_PING)
                    if message is None:
                        await pubsub.ping()  # a dead connection fails here, or on the read
                    else:
                        self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._set_connected(False, exc)
                # The pool's idle connections died with the server: drop them now, so the
                # first commands after its return do not fail on them.
                with contextlib.suppress(Exception):
                    await self._redis.connection_pool.disconnect()
            finally:
                self._pubsub = None
                for waiter in self._joining.values():
                    if not waiter.done():
                        waiter.set_result(None)
                self._joining.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _BACKOFF_MAX)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "subscribe":
            waiter = self._joining.pop(name, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == "message" and name.startswith(self._task_prefix):
            event = decode(message["data"])
            if event is not None:
                self._local.deliver(event)

    def _set_connected(self, up: bool, error: Exception | None) -> None:
        # One warning when Redis goes away (or is not there at the first try), one when it
        # is back: not one per reconnect attempt.
        if up and self._up is False:
            log.warning("event bus: Redis at %s is back; events resume", redact(self._url))
        elif not up and self._up is not False:
            log.warning("event bus: Redis at %s is unreachable (%s); events are paused and "
                        "tasks go on by polling the database until it is back",
                        redact(self._url), error)
        self._up = up
        if up:
            self._ready.set()
        else:
            self._ready.clear()

    # -- checks and shutdown
    async def check(self) -> None:
        self._start()
        try:
            async with asyncio.timeout(_COMMAND_TIMEOUT + 1):
                await self._redis.ping()
        except Exception as exc:
            raise BackendUnavailableError(
                "redis_url", f"cannot connect to Redis at {redact(self._url)}: "
                             f"{exc or type(exc).__name__}") from None

    async def aclose(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        self._up = False
        await self._redis.aclose()


def redis_bus(settings: Settings) -> EventBus:
    """Events between every process that shares `redis_url`."""
    if not settings.redis_url:
        raise BackendUnavailableError("redis_url", "the Redis event bus needs redis_url")
    return RedisEventBus(settings.redis_url)
