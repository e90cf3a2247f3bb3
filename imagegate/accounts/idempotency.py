"""`Idempotency-Key` on create: the same key and body give back the same task (charged once);
the same key with another body is a 409; a key is forgotten after `idempotency_ttl_seconds`.

The record is inserted in the task's own transaction, keyed by (API key, Idempotency-Key).
Two identical requests racing each other both pass the first lookup, but only one insert can
win the primary key: the loser's whole transaction (task, hold) rolls back, and it answers
with the winner's task.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from imagegate.db.database import Database, Step
from imagegate.db.tables import idempotency_keys
from imagegate.domain.request import ImageRequest
from imagegate.errors import ConflictError, InvalidRequestError

MAX_KEY_LENGTH = 255


def check_key(value: str) -> str:
    if not value or len(value) > MAX_KEY_LENGTH or not value.isprintable() or not value.isascii():
        raise InvalidRequestError(
            f"The Idempotency-Key header must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
            param="Idempotency-Key",
        )
    return value


def fingerprint(route: str, request: ImageRequest) -> str:
    """What "the same body" means: the normalized request (so key order, aliases and
    defaults do not matter) plus the bytes of uploaded images, and the route it came to."""
    digest = hashlib.sha256(route.encode() + b"\0")
    digest.update(orjson.dumps(request.to_json(), option=orjson.OPT_SORT_KEYS))
    for ref in (*request.references, *([request.mask] if request.mask else [])):
        if ref.data is not None:
            digest.update(hashlib.sha256(ref.data).digest())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Remembered:
    request_hash: str
    task_id: str


class IdempotencyStore:
    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self._db = db
        self._ttl = ttl_seconds
        c = idempotency_keys.c
        self._lookup = sa.select(c.request_hash, c.task_id).where(
            c.key_id == sa.bindparam("b_key_id"), c.idem_key == sa.bindparam("b_idem"),
            c.expires_at > sa.bindparam("b_now"),
        )
        self._drop_expired = idempotency_keys.delete().where(
            c.key_id == sa.bindparam("b_key_id"), c.idem_key == sa.bindparam("b_idem"),
            c.expires_at <= sa.bindparam("b_now"),
        )
        self._insert = idempotency_keys.insert()

    async def lookup(self, key_id: str, idem_key: str) -> Remembered | None:
        rows = await self._db.read(
            self._lookup, {"b_key_id": key_id, "b_idem": idem_key, "b_now": time.time()}
        )
        return Remembered(rows[0]["request_hash"], rows[0]["task_id"]) if rows else None

    def record_steps(self, key_id: str, idem_key: str, request_hash: str,
                     task_id: str) -> tuple[Step, ...]:
        """Join these to the task's creating transaction."""
        now = time.time()
        return (
            Step(self._drop_expired, {"b_key_id": key_id, "b_idem": idem_key, "b_now": now}),
            Step(self._insert, {"key_id": key_id, "idem_key": idem_key,
                                "request_hash": request_hash, "task_id": task_id,
                                "created_at": now, "expires_at": now + self._ttl}),
        )

    async def purge(self, now: float | None = None) -> int:
        """Drop expired records (the cleaner calls this)."""
        res = await self._db.write(
            idempotency_keys.delete().where(
                idempotency_keys.c.expires_at <= (time.time() if now is None else now)
            )
        )
        return res.rowcount


def replay(remembered: Remembered, request_hash: str) -> str:
    """The task id to answer with for a key seen before, or 409 for a different body."""
    if remembered.request_hash != request_hash:
        raise ConflictError(
            "This Idempotency-Key was already used with a different request body; use a new "
            "key for a new request",
            param="Idempotency-Key", code="idempotency_key_reused",
        )
    return remembered.task_id
