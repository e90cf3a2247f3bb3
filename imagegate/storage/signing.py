"""Signed result URLs: `/p/img/{task_id}/{index}?exp=<ms>&sig=<HMAC>`.

The signature covers task, index and expiry; it is checked with `hmac.compare_digest` so the
time taken does not reveal how much of a forged signature was right.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time

from imagegate.domain.memo import BoundedMemo

# Expiries are rounded up to this grid so the same image keeps the same URL for a while:
# browsers and CDNs can then cache it instead of seeing a new URL on every poll.
_GRID_MS = 3_600_000
# Signed paths `UrlSigner.path` keeps.
_PATHS = 4096


class UrlSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret
        self._ttl_ms = ttl_seconds * 1000
        # Signed paths handed out, by (task, index, expiry): expiries sit on an hourly grid,
        # so a task polled every second gets the same path an hour long, and the HMAC was a
        # tenth of a poll.
        self._paths: BoundedMemo[tuple[str, int, int], str] = BoundedMemo(_PATHS)

    def _mac(self, task_id: str, index: int, exp_ms: int) -> str:
        msg = f"{task_id}\n{index}\n{exp_ms}".encode()
        digest = hmac.new(self._secret, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def expiry(self, now: float | None = None, not_after: float | None = None) -> int:
        """Expiry in ms: now + ttl rounded up to the grid, but never past `not_after` (s)."""
        now_ms = int((time.time() if now is None else now) * 1000)
        exp = math.ceil((now_ms + self._ttl_ms) / _GRID_MS) * _GRID_MS
        if not_after is not None:
            exp = min(exp, int(not_after * 1000))
        return exp

    def path(self, task_id: str, index: int, exp_ms: int) -> str:
        return self._paths.get((task_id, index, exp_ms), self._signed_path)

    def _signed_path(self, key: tuple[str, int, int]) -> str:
        task_id, index, exp_ms = key
        return f"/p/img/{task_id}/{index}?exp={exp_ms}&sig={self._mac(task_id, index, exp_ms)}"

    def verify(self, task_id: str, index: int, exp_ms: int, sig: str, now: float | None = None
               ) -> bool:
        expected = self._mac(task_id, index, exp_ms)
        valid = hmac.compare_digest(expected.encode(), sig.encode())
        now_ms = int((time.time() if now is None else now) * 1000)
        return valid and exp_ms > now_ms
