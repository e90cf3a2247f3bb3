"""Client bytes held in memory at once, across every request of one process.

The per-request caps (`max_json_body_bytes`, `max_reference_bytes`, …) bound one request; they
say nothing about fifty of them at once, and six concurrent 95 MB JSON bodies once took a
server from 0.7 to 1.3 GB. `MemoryBudget` is the process-wide bound
(`max_inflight_body_bytes`): request bodies count while they are read and held
(`api/middleware.py: BodyBudgetMiddleware`), reference images count while the ingestor holds
what it fetched or decoded (`ingest/__init__.py`). A request that would pass the budget waits
up to `inflight_body_wait_seconds` for others to finish, then gets 503 `server_busy` with
`Retry-After`. It is refused while its body or images are still being read, before anything
exists, so nothing is half-created.

A holder that holds everything held may always take more: a budget set below one request's
body slows uploads to one at a time instead of refusing every one of them. The ingestor's
holding is a second holder of the same request, so its images must fit on top.
"""

from __future__ import annotations

import asyncio

from imagegate.errors import ServiceUnavailableError

# Seconds a refused client is asked to wait: a burst of large uploads clears in about that.
RETRY_AFTER_SECONDS = 1


class MemoryBudget:
    def __init__(self, limit_bytes: int, wait_seconds: float) -> None:
        self.limit = limit_bytes
        self._wait = wait_seconds
        self._used = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def used(self) -> int:
        return self._used

    def _fits(self, size: int, own: int) -> bool:
        return self._used == own or self._used + size <= self.limit

    async def acquire(self, size: int, *, param: str | None, own: int = 0) -> None:
        """Count `size` more bytes as held by a holder that holds `own` already; wait
        (bounded) for room, else 503 naming `param`. A holder that holds everything that is
        held may always take more."""
        if size <= 0:
            return
        if self._fits(size, own):
            self._used += size
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while not self._fits(size, own):
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                raise self._busy(param) from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._used += size

    def release(self, size: int) -> None:
        if size <= 0:
            return
        self._used = max(0, self._used - size)
        # Every waiter looks again; the ones that still do not fit go back to waiting.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def lease(self) -> Lease:
        return Lease(self)

    def _busy(self, param: str | None) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            "The server is holding as many uploaded bytes as it is configured to; retry in a "
            "moment",
            param=param, code="server_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class Lease:
    """What one request holds of a budget; `close()` gives back whatever is left."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.held = 0

    async def grow(self, size: int, *, param: str | None) -> None:
        await self._budget.acquire(size, param=param, own=self.held)
        self.held += max(0, size)

    def shrink(self, size: int) -> None:
        size = min(size, self.held)
        self.held -= size
        self._budget.release(size)

    def close(self) -> None:
        self.shrink(self.held)
