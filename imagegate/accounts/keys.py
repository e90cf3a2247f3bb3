"""API keys: created once (the plaintext is shown once), stored as a sha256 hash.

A key looks like `ig_<43 url-safe chars>`; its first 10 characters are kept as a visible prefix
so operators can tell keys apart in `imagegate keys list` without seeing the secret. Besides
the secret a key carries its limits (allowed models, requests per minute, concurrent tasks),
an expiry, a balance and a webhook URL + signing secret.

Balances move only by conditional UPDATEs with a ledger row in the same transaction, so the
sum of a key's ledger amounts is its balance (for prepaid keys: NULL balance = postpaid).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from imagegate.accounts.key_fields import UNSET, Unset, clean_fields
from imagegate.accounts.money import MAX_AMOUNT
from imagegate.db.database import ConditionFailed, Database, Step, read_scalar
from imagegate.db.tables import api_keys, ledger
from imagegate.domain.task import new_id, new_token
from imagegate.errors import InvalidRequestError, NotFoundError
from imagegate.webhooks.signing import new_secret

KEY_PREFIX = "ig_"
_VISIBLE = 10
# A balance never grows past this, so repeated top-ups cannot overflow the BigInteger column.
MAX_BALANCE = 1_000 * MAX_AMOUNT


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None
    allowed_models: tuple[str, ...] | None = None  # None: every model
    rpm: int | None = None
    concurrency: int | None = None
    expires_at: float | None = None
    balance: int | None = None  # micro-units; None: postpaid (never refused)
    webhook_url: str | None = None
    active_tasks: int = 0
    # This key's own blocklist entries (moderation), None: none; and whether its requests'
    # `moderation: low` relaxes the model check.
    moderation_blocklist: tuple[str, ...] | None = None
    allow_low_moderation: bool = False
    # Which task events its webhook is sent (`domain/webhook_events.py`); None: the end only.
    webhook_events: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= time.time()

    @property
    def usable(self) -> bool:
        return self.active and not self.expired

    def allows(self, model: str) -> bool:
        return self.allowed_models is None or model in self.allowed_models


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _row(m: Any) -> ApiKey:
    models = m["allowed_models"]
    blocklist = m["moderation_blocklist"]
    return ApiKey(
        id=m["id"], name=m["name"], prefix=m["prefix"], created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        allowed_models=tuple(json.loads(models)) if models is not None else None,
        rpm=m["rpm"], concurrency=m["concurrency"], expires_at=m["expires_at"],
        balance=None if m["balance"] is None else int(m["balance"]),
        webhook_url=m["webhook_url"], active_tasks=int(m["active_tasks"] or 0),
        moderation_blocklist=tuple(json.loads(blocklist)) if blocklist is not None else None,
        allow_low_moderation=bool(m["allow_low_moderation"]),
        webhook_events=None if m["webhook_events"] is None
        else tuple(json.loads(m["webhook_events"])),
    )


# Never the hash nor the webhook secret: nothing read for display can leak them.
_COLUMNS = tuple(c for c in api_keys.c if c.name not in ("key_hash", "webhook_secret"))


class KeyStore:
    """Key records. Authentication answers are cached briefly, because every poll of a task
    authenticates; revocation and rotation therefore take effect in other processes within
    `cache_seconds` (in this process at once). Expiry is checked on every use, cached or not."""

    def __init__(self, db: Database, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def create(
        self, name: str, *, models: Sequence[str] | None = None, rpm: int | None = None,
        concurrency: int | None = None, balance: int | None = None,
        expires_at: float | None = None, webhook_url: str | None = None,
        moderation_blocklist: Sequence[str] | None = None, allow_low_moderation: bool = False,
        webhook_events: Sequence[str] | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key and its plaintext (shown once). A balance (micro-units) is written as a
        ledger "topup" in the same transaction; no balance means postpaid."""
        fields = clean_fields(name=name, models=models, rpm=rpm, concurrency=concurrency,
                              expires_at=expires_at, webhook_url=webhook_url,
                              moderation_blocklist=moderation_blocklist,
                              allow_low_moderation=allow_low_moderation,
                              webhook_events=webhook_events)
        if balance is not None and not 0 <= balance <= MAX_AMOUNT:
            raise InvalidRequestError("balance must be between 0 and "
                                      f"{MAX_AMOUNT} micro-units", param="balance")
        plaintext = KEY_PREFIX + new_token(32)
        now = time.time()
        models_json = fields["allowed_models"]
        blocklist_json = fields["moderation_blocklist"]
        key = ApiKey(id=new_id("key_"), name=fields["name"], prefix=plaintext[:_VISIBLE],
                     created_at=now, revoked_at=None,
                     allowed_models=None if models_json is None else tuple(json.loads(models_json)),
                     rpm=fields["rpm"], concurrency=fields["concurrency"],
                     expires_at=fields["expires_at"], balance=balance,
                     webhook_url=fields["webhook_url"],
                     moderation_blocklist=None if blocklist_json is None
                     else tuple(json.loads(blocklist_json)),
                     allow_low_moderation=fields["allow_low_moderation"],
                     webhook_events=None if fields["webhook_events"] is None
                     else tuple(json.loads(fields["webhook_events"])))
        steps = [Step(api_keys.insert().values(
            id=key.id, prefix=key.prefix, key_hash=hash_key(plaintext), created_at=now,
            revoked_at=None, balance=balance, active_tasks=0,
            webhook_secret=new_secret(), **fields,
        ))]
        if balance:
            steps.append(Step(ledger.insert().values(
                key_id=key.id, task_id=None, kind="topup", amount=balance, images=0,
                note="initial balance", created_at=now)))
        await self._db.transaction(steps)
        return plaintext, key

    async def get(self, key_id: str) -> ApiKey | None:
        rows = await self._db.read(sa.select(*_COLUMNS).where(api_keys.c.id == key_id))
        return _row(rows[0]) if rows else None

    async def require(self, key_id: str) -> ApiKey:
        """The key (revoked or not); NotFoundError for an unknown id."""
        key = await self.get(key_id)
        if key is None:
            raise NotFoundError(f"No API key with id {key_id!r}", param="key_id")
        return key

    async def _require_active(self, key_id: str) -> ApiKey:
        key = await self.require(key_id)
        if not key.active:
            raise NotFoundError(f"The API key {key_id!r} is revoked", param="key_id")
        return key

    async def webhook_secret(self, key_id: str) -> str | None:
        """The key's `whsec_…` signing secret (for the webhook sender and the admin API)."""
        secret = await read_scalar(self._db, sa.select(api_keys.c.webhook_secret)
                                   .where(api_keys.c.id == key_id))
        return None if secret is None else str(secret)

    async def list(self) -> list[ApiKey]:
        rows = await self._db.read(sa.select(*_COLUMNS).order_by(api_keys.c.created_at))
        return [_row(r) for r in rows]

    async def count(self) -> int:
        return int(await read_scalar(self._db, sa.select(sa.func.count()).select_from(api_keys)))

    async def update(
        self, key_id: str, *, name: str | Unset = UNSET,
        models: Sequence[str] | Unset | None = UNSET, rpm: int | Unset | None = UNSET,
        concurrency: int | Unset | None = UNSET, expires_at: float | Unset | None = UNSET,
        webhook_url: str | Unset | None = UNSET,
        moderation_blocklist: Sequence[str] | Unset | None = UNSET,
        allow_low_moderation: bool | Unset = UNSET,
        webhook_events: Sequence[str] | Unset | None = UNSET,
    ) -> ApiKey:
        """Change a key's settings; an argument left UNSET keeps its value, None clears it."""
        fields = clean_fields(name=name, models=models, rpm=rpm, concurrency=concurrency,
                              expires_at=expires_at, webhook_url=webhook_url,
                              moderation_blocklist=moderation_blocklist,
                              allow_low_moderation=allow_low_moderation,
                              webhook_events=webhook_events)
        if fields:
            result = await self._db.write(
                api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(**fields))
            if result.rowcount == 0:
                await self._require_active(key_id)
            self._cache.clear()
        return await self._require_active(key_id)

    async def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (the first revocation time is kept); NotFoundError for an unknown id."""
        await self._db.write(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        self._cache.clear()
        return await self.require(key_id)

    async def rotate(self, key_id: str) -> tuple[str, ApiKey]:
        """A new secret for the same key (id, limits, balance, ledger); the old one stops
        working at once here and within `cache_seconds` in other processes."""
        plaintext = KEY_PREFIX + new_token(32)
        result = await self._db.write(
            api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(key_hash=hash_key(plaintext), prefix=plaintext[:_VISIBLE]))
        self._cache.clear()
        if result.rowcount == 0:
            await self._require_active(key_id)
        return plaintext, await self._require_active(key_id)

    async def topup(self, key_id: str, amount: int, note: str | None = None) -> ApiKey:
        """Add `amount` micro-units (> 0). A postpaid key becomes prepaid with this balance."""
        if amount <= 0:
            raise InvalidRequestError("A top-up amount must be greater than 0", param="amount")
        return await self._move(key_id, amount, "topup", note)

    async def adjust(self, key_id: str, amount: int, note: str | None) -> ApiKey:
        """An operator's correction, either sign; refused if it would take the balance below
        zero (checked in the UPDATE itself, not before it)."""
        if amount == 0:
            raise InvalidRequestError("An adjustment must not be 0", param="amount")
        return await self._move(key_id, amount, "adjust", note)

    async def _move(self, key_id: str, amount: int, kind: str, note: str | None) -> ApiKey:
        now = time.time()
        current = sa.func.coalesce(api_keys.c.balance, 0)
        this_key = sa.and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        # A postpaid key's earlier usage is in the ledger but not in its (NULL) balance: an
        # "adjust" row cancelling it keeps SUM(ledger) == balance once the key turns prepaid.
        opening = ledger.insert().from_select(
            ["key_id", "kind", "amount", "images", "note", "created_at"],
            sa.select(sa.literal(key_id), sa.literal("adjust"), -sa.func.sum(ledger.c.amount),
                      sa.literal(0), sa.literal("postpaid usage before the first top-up"),
                      sa.literal(now))
            .where(ledger.c.key_id == key_id,
                   sa.exists().where(this_key, api_keys.c.balance.is_(None)))
            .having(sa.func.sum(ledger.c.amount) != 0),
        )
        steps = [
            # Lock the key's row first (PostgreSQL), so the opening sum and the balance
            # change below see the same state as every concurrent hold or top-up.
            Step(api_keys.update().where(this_key).values(name=api_keys.c.name), require="key"),
            Step(opening),
            Step(api_keys.update()
                 .where(this_key, current + amount >= 0, current + amount <= MAX_BALANCE)
                 .values(balance=current + amount), require="amount"),
            Step(ledger.insert().values(key_id=key_id, task_id=None, kind=kind, amount=amount,
                                        images=0, note=note, created_at=now)),
        ]
        try:
            await self._db.transaction(steps)
        except ConditionFailed as failed:
            if failed.label == "key":
                await self._require_active(key_id)
            raise InvalidRequestError(
                "The balance would go below 0" if amount < 0
                else "The balance would exceed the maximum", param="amount") from None
        self._cache.clear()
        return await self.require(key_id)

    async def find(self, plaintext: str) -> ApiKey | None:
        """The key for this secret whatever its state (revoked, expired), or None. Compared
        by hash lookup: the hash is the index, so no secret-dependent comparison in Python."""
        digest = hash_key(plaintext)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        rows = await self._db.read(sa.select(*_COLUMNS).where(api_keys.c.key_hash == digest))
        key = _row(rows[0]) if rows else None
        if len(self._cache) > 10_000:  # bounded: a flood of bad keys cannot grow it forever
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, key)
        return key

    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The usable key for this secret: None for unknown, revoked and expired keys. The
        expiry is checked against the clock each time, so a cached answer cannot outlive it."""
        key = await self.find(plaintext)
        return key if key is not None and key.usable else None
