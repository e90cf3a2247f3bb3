"""API keys: created once (the plaintext is shown once), stored as a sha256 hash.

A key looks like `ig_<43 url-safe chars>`; its first 10 characters are kept as a visible prefix
so operators can tell keys apart in `imagegate keys list` without seeing the secret.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from imagegate.db.database import Database, read_scalar
from imagegate.db.tables import api_keys
from imagegate.domain.task import new_id, new_token

KEY_PREFIX = "ig_"
_VISIBLE = 10


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _row(m: Any) -> ApiKey:
    return ApiKey(id=m["id"], name=m["name"], prefix=m["prefix"], created_at=m["created_at"],
                  revoked_at=m["revoked_at"])


_COLUMNS = (api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.created_at,
            api_keys.c.revoked_at)


class KeyStore:
    """Key records. Authentication answers are cached briefly, because every poll of a task
    authenticates; revocation therefore takes effect within `cache_seconds`."""

    def __init__(self, db: Database, cache_seconds: float = 2.0) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

    async def create(self, name: str) -> tuple[str, ApiKey]:
        plaintext = KEY_PREFIX + new_token(32)
        key = ApiKey(
            id=new_id("key_"),
            name=name,
            prefix=plaintext[:_VISIBLE],
            created_at=time.time(),
            revoked_at=None,
        )
        await self._db.write(
            api_keys.insert().values(
                id=key.id,
                name=key.name,
                prefix=key.prefix,
                key_hash=hash_key(plaintext),
                created_at=key.created_at,
                revoked_at=None,
            )
        )
        return plaintext, key

    async def list(self) -> list[ApiKey]:
        rows = await self._db.read(sa.select(*_COLUMNS).order_by(api_keys.c.created_at))
        return [_row(r) for r in rows]

    async def count(self) -> int:
        return int(await read_scalar(self._db, sa.select(sa.func.count()).select_from(api_keys)))

    async def revoke(self, key_id: str) -> ApiKey | None:
        await self._db.write(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        rows = await self._db.read(sa.select(*_COLUMNS).where(api_keys.c.id == key_id))
        self._cache.clear()
        return _row(rows[0]) if rows else None

    async def authenticate(self, plaintext: str) -> ApiKey | None:
        """The active key for this secret, or None. Compared by hash lookup: the hash is the
        index, so no secret-dependent comparison happens in Python."""
        digest = hash_key(plaintext)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        rows = await self._db.read(sa.select(*_COLUMNS).where(api_keys.c.key_hash == digest))
        key = _row(rows[0]) if rows else None
        if key is not None and not key.active:
            key = None
        if len(self._cache) > 10_000:  # bounded: a flood of bad keys cannot grow it forever
            self._cache.clear()
        self._cache[digest] = (now + self._cache_seconds, key)
        return key
