"""When a failed request is tried again, and after how long.

Only what cannot do harm is repeated: reads and cancels on any transient failure; a create
only where the server deduplicates it by its `Idempotency-Key` (imagegate), otherwise only
when it surely did not happen — the connection was never made, or a 429 refused it. The
server's `Retry-After` sets the pause; `x-should-retry` (as the OpenAI SDKs read it) has the
last word.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from imagegate.client.errors import parse_retry_after
from imagegate.client.steps import Answer, RetryKind, TransportFailure

TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
# A server asking for a longer pause than this is not waited out: the error is raised, and the
# caller decides (the openai SDK draws the same line).
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    base_delay: float = 0.5
    max_delay: float = 8.0

    def after_answer(self, kind: RetryKind, answer: Answer, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to give up and raise."""
        if attempt >= self.max_retries:
            return None
        advice = answer.headers.get("x-should-retry")
        if advice == "false":
            return None
        retryable = answer.status in TRANSIENT if kind != "create" else answer.status == 429
        if advice != "true" and not retryable:
            return None
        after = parse_retry_after(answer.headers.get("retry-after"))
        if after is not None:
            return after if after <= MAX_RETRY_AFTER else None
        return self._backoff(attempt)

    def after_failure(self, kind: RetryKind, failure: TransportFailure,
                      attempt: int) -> float | None:
        if attempt >= self.max_retries:
            return None
        if kind == "create" and failure.sent:
            return None  # it may have been created: never repeat it
        return self._backoff(attempt)

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self.max_delay, self.base_delay * 2 ** attempt)
        return delay * random.uniform(0.75, 1.0)
