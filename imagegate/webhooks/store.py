"""The `webhook_deliveries` table: claim due deliveries under a lease, record outcomes, and
show a key's delivery log.

Like the task store, every state change is one conditional UPDATE on (id, lease owner,
status), so a dispatcher whose lease ran out and was taken over can no longer record
anything. A claimed delivery stays `pending` with a lease: if its dispatcher dies, the lease
lapses and the claim statement itself picks it up again, with no separate reaper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from imagegate.db.database import Database, Row
from imagegate.db.tables import api_keys
from imagegate.db.tables import webhook_deliveries as wd
from imagegate.errors import InvalidRequestError, NotFoundError
from imagegate.webhooks.signing import new_secret

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    id: str
    key_id: str
    task_id: str
    event: str
    url: str
    payload: str | None
    status: str
    attempts: int
    next_attempt_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None

    def to_public(self) -> dict[str, Any]:
        """The log entry its owner sees: no payload (it can be large), no lease details."""
        return {
            "id": self.id,
            "object": "webhook.delivery",
            "task_id": self.task_id,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": int(self.created_at),
            "delivered_at": int(self.delivered_at) if self.delivered_at is not None else None,
            "next_attempt_at": int(self.next_attempt_at) if self.status == PENDING else None,
        }


def _delivery(m: Row) -> Delivery:
    return Delivery(**{name: m[name] for name in Delivery.__slots__})


def _b(name: str) -> sa.BindParameter[Any]:
    # Prefixed so no name collides with a column SQLAlchemy binds in SET clauses.
    return sa.bindparam(f"b_{name}")


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        now = _b("now")
        due = (
            wd.c.status == PENDING,
            wd.c.next_attempt_at <= now,
            sa.or_(wd.c.lease_expires_at.is_(None), wd.c.lease_expires_at < now),
        )
        # Prebuilt: the dispatcher asks every poll interval, and building costs more than
        # running. The cheap read goes first because on SQLite a write waits for the writer.
        self._any_due = sa.select(wd.c.id).where(*due).limit(1)
        pick = (
            sa.select(wd.c.id)
            .where(*due)
            .order_by(wd.c.next_attempt_at)
            .limit(sa.bindparam("b_limit", type_=sa.Integer))
        )
        if db.dialect != "sqlite":
            # Two dispatchers skip each other's rows instead of queueing on the row locks.
            pick = pick.with_for_update(skip_locked=True)
        self._claim = (
            wd.update()
            # Re-checked outside the subquery: another process may have claimed in between.
            .where(wd.c.id.in_(pick.scalar_subquery()), *due)
            .values(
                lease_owner=_b("owner"),
                lease_expires_at=_b("lease_expires_at"),
                attempts=wd.c.attempts + 1,
            )
            .returning(*wd.c)
        )
        owned = wd.update().where(
            wd.c.id == _b("id"), wd.c.lease_owner == _b("owner"), wd.c.status == PENDING
        )
        unleased = {"lease_owner": None, "lease_expires_at": None}
        self._set_payload = owned.where(wd.c.payload.is_(None)).values(payload=_b("payload"))
        self._delivered = owned.values(
            status=DELIVERED, delivered_at=_b("now"), last_status_code=_b("code"),
            last_error=None, **unleased,
        )
        self._retry = owned.values(
            next_attempt_at=_b("next_at"), last_status_code=_b("code"), last_error=_b("error"),
            **unleased,
        )
        self._failed = owned.values(
            status=FAILED, last_status_code=_b("code"), last_error=_b("error"), **unleased
        )
        self._get_for_key = wd.select().where(wd.c.id == _b("id"), wd.c.key_id == _b("key_id"))
        self._key_webhook = sa.select(api_keys.c.webhook_url, api_keys.c.webhook_secret).where(
            api_keys.c.id == _b("id")
        )
        self._init_secret = (
            api_keys.update()
            .where(api_keys.c.id == _b("id"), api_keys.c.webhook_secret.is_(None))
            .values(webhook_secret=_b("secret"))
        )

    # -- dispatcher side
    async def claim_due(
        self, owner: str, lease_seconds: float, limit: int, now: float | None = None
    ) -> list[Delivery]:
        """Up to `limit` due deliveries, leased to `owner`; each claim counts as an attempt."""
        if limit <= 0:
            return []
        now = time.time() if now is None else now
        if not await self._db.read(self._any_due, {"b_now": now}):
            return []
        params = {"b_owner": owner, "b_lease_expires_at": now + lease_seconds, "b_now": now,
                  "b_limit": limit}
        rows = (await self._db.write(self._claim, params)).rows
        return sorted((_delivery(r) for r in rows), key=lambda d: d.next_attempt_at)

    async def set_payload(self, delivery_id: str, owner: str, payload: str) -> bool:
        """Store the body rendered at the first attempt; every retry sends these bytes."""
        params = {"b_id": delivery_id, "b_owner": owner, "b_payload": payload}
        return (await self._db.write(self._set_payload, params)).rowcount == 1

    async def mark_delivered(self, delivery_id: str, owner: str, status_code: int,
                             now: float | None = None) -> bool:
        params = {"b_id": delivery_id, "b_owner": owner, "b_code": status_code,
                  "b_now": time.time() if now is None else now}
        return (await self._db.write(self._delivered, params)).rowcount == 1

    async def mark_retry(self, delivery_id: str, owner: str, next_at: float,
                         status_code: int | None, error: str) -> bool:
        params = {"b_id": delivery_id, "b_owner": owner, "b_next_at": next_at,
                  "b_code": status_code, "b_error": error}
        return (await self._db.write(self._retry, params)).rowcount == 1

    async def mark_failed(self, delivery_id: str, owner: str, status_code: int | None,
                          error: str) -> bool:
        params = {"b_id": delivery_id, "b_owner": owner, "b_code": status_code,
                  "b_error": error}
        return (await self._db.write(self._failed, params)).rowcount == 1

    async def release(self, delivery_ids: list[str], owner: str) -> int:
        """Hand leases back on a graceful stop; the interrupted attempt does not count."""
        if not delivery_ids:
            return 0
        res = await self._db.write(
            wd.update()
            .where(wd.c.id.in_(delivery_ids), wd.c.lease_owner == owner, wd.c.status == PENDING)
            .values(lease_owner=None, lease_expires_at=None, attempts=wd.c.attempts - 1)
        )
        return res.rowcount

    async def key_secret(self, key_id: str) -> str:
        """The key's signing secret, created on first use for keys made before webhooks.

        Conditional on the column still being NULL, so two processes racing here agree on
        whichever secret landed first.
        """
        for _ in range(2):
            rows = await self._db.read(self._key_webhook, {"b_id": key_id})
            if not rows:
                raise NotFoundError(f"No API key found with id '{key_id}'", code="key_not_found")
            secret: str | None = rows[0]["webhook_secret"]
            if secret:
                return secret
            await self._db.write(self._init_secret, {"b_id": key_id, "b_secret": new_secret()})
        raise RuntimeError(f"webhook secret of key {key_id} could not be stored")

    async def key_webhook(self, key_id: str) -> tuple[str | None, str]:
        """The key's default webhook URL (None when unset) and its signing secret."""
        secret = await self.key_secret(key_id)
        rows = await self._db.read(self._key_webhook, {"b_id": key_id})
        url: str | None = rows[0]["webhook_url"] if rows else None
        return url, secret

    # -- owner side
    async def get_for_key(self, delivery_id: str, key_id: str) -> Delivery | None:
        """Another key's delivery is indistinguishable from none."""
        rows = await self._db.read(self._get_for_key, {"b_id": delivery_id, "b_key_id": key_id})
        return _delivery(rows[0]) if rows else None

    async def list_for_key(
        self,
        key_id: str | None,
        limit: int,
        *,
        after: str | None = None,
        before: str | None = None,
        task_id: str | None = None,
    ) -> list[Delivery]:
        """Newest first. `after` (an id from the previous page) continues with older
        entries, `before` with newer ones; the result is always newest first. `key_id`
        None: every key's (the admin console's view)."""
        stmt = wd.select()
        if key_id is not None:
            stmt = stmt.where(wd.c.key_id == key_id)
        if task_id is not None:
            stmt = stmt.where(wd.c.task_id == task_id)
        newer = before is not None
        cursor_id = before if newer else after
        if cursor_id is not None:
            cursor = (await self.get_for_key(cursor_id, key_id) if key_id is not None
                      else await self.get(cursor_id))
            if cursor is None:
                param = "before" if newer else "after"
                raise InvalidRequestError(f"No delivery found with id '{cursor_id}'",
                                          param=param, code="invalid_cursor")
            at = cursor.created_at
            if newer:
                stmt = stmt.where(sa.or_(wd.c.created_at > at,
                                         sa.and_(wd.c.created_at == at, wd.c.id > cursor_id)))
            else:
                stmt = stmt.where(sa.or_(wd.c.created_at < at,
                                         sa.and_(wd.c.created_at == at, wd.c.id < cursor_id)))
        # Ties on created_at (one transaction can create several) are ordered by id, so a
        # page boundary never skips or repeats one.
        if newer:
            stmt = stmt.order_by(wd.c.created_at.asc(), wd.c.id.asc())
        else:
            stmt = stmt.order_by(wd.c.created_at.desc(), wd.c.id.desc())
        rows = await self._db.read(stmt.limit(limit))
        out = [_delivery(r) for r in rows]
        return out[::-1] if newer else out

    async def get(self, delivery_id: str) -> Delivery | None:
        """Any key's delivery (the admin console's view)."""
        rows = await self._db.read(wd.select().where(wd.c.id == delivery_id))
        return _delivery(rows[0]) if rows else None

    async def requeue(self, delivery_id: str, key_id: str | None,
                      now: float | None = None) -> bool:
        """Put a failed delivery back in the queue for a fresh round of attempts (the same
        id and body, so a receiver that saw it before can tell). False if it is not failed
        (or, with a `key_id`, not that key's). `key_id` None: any key's (admin)."""
        owner = () if key_id is None else (wd.c.key_id == key_id,)
        res = await self._db.write(
            wd.update()
            .where(wd.c.id == delivery_id, *owner, wd.c.status == FAILED)
            .values(status=PENDING, attempts=0, next_attempt_at=time.time() if now is None
                    else now, lease_owner=None, lease_expires_at=None)
        )
        return res.rowcount == 1
