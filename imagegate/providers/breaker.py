"""A circuit breaker per upstream channel.

closed --(N consecutive retryable failures)--> open --(cooldown elapsed)--> half-open
half-open lets exactly one trial call through at a time: its success closes the breaker,
its failure re-opens it for another cooldown. A call that ends without a verdict (the
upstream blamed the request, or the caller was cancelled) changes nothing but frees the
trial slot, so a content-policy refusal can neither trip nor heal a channel.

Time is read from an injectable clock so tests need no sleeping; the open -> half-open
transition is computed when asked, which keeps the breaker free of timers and tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum, IntEnum

Clock = Callable[[], float]


class BreakerState(IntEnum):
    """The values are what the `imagegate_upstream_breaker_state` gauge exports."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Ticket(Enum):
    """What `acquire` hands out: an ordinary call, or the one trial call of a half-open
    breaker (whose verdict decides whether the breaker closes or re-opens)."""

    NORMAL = "normal"
    TRIAL = "trial"


class CircuitBreaker:
    def __init__(self, failures: int, cooldown: float, clock: Clock = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None  # None: closed
        self._trial_running = False
        self.last_change = clock()

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until an open breaker half-opens (0 when it already lets a call through)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def available(self) -> bool:
        """Whether `acquire` would give a ticket now (no side effect)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        return state is BreakerState.HALF_OPEN and not self._trial_running

    def acquire(self) -> Ticket | None:
        """Reserve one call: NORMAL while closed, the single TRIAL slot while half-open, None
        while open (or while another call holds the trial). Every ticket must be handed back
        to exactly one of `success`, `failure` or `release`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Ticket.NORMAL
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._trial_running = True
            return Ticket.TRIAL
        return None

    def success(self, ticket: Ticket = Ticket.NORMAL) -> None:
        # Any success closes: a call that started before the breaker opened and still got
        # an image through is as good evidence of health as the trial.
        if self._opened_at is not None:
            self.last_change = self._clock()
        self._consecutive = 0
        self._opened_at = None
        self._trial_running = False

    def failure(self, ticket: Ticket = Ticket.NORMAL) -> None:
        self._consecutive += 1
        if ticket is Ticket.TRIAL and self._trial_running:
            # A failed trial re-opens for a whole new cooldown.
            self._trial_running = False
            self._open()
        elif self._opened_at is None and self._consecutive >= self.failures:
            self._open()
        # Otherwise a call that started before the breaker opened failed late: the cooldown
        # already running stays as it is.

    def release(self, ticket: Ticket = Ticket.NORMAL) -> None:
        """The call ended without saying anything about the channel's health."""
        if ticket is Ticket.TRIAL:
            self._trial_running = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self.last_change = self._opened_at
