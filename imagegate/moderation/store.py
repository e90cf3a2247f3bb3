"""What moderation keeps in the database: the global blocklist entries the admin API sets
(config and file entries are never stored), and one row per refused request, which usage
reports and `GET /admin/moderation/refusals` count. Never a prompt."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from imagegate.db.database import Database, Step
from imagegate.db.tables import api_keys, moderation_lists, moderation_refusals

GLOBAL_SCOPE = "global"


@dataclass(frozen=True, slots=True)
class RefusalCount:
    key_id: str
    key_name: str | None
    source: str
    category: str
    refused: int

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "key_name": self.key_name, "source": self.source,
                "category": self.category, "refused": self.refused}


class ModerationStore:
    def __init__(self, db: Database, retention_seconds: float) -> None:
        self._db = db
        self._retention = retention_seconds

    async def global_entries(self) -> list[str]:
        rows = await self._db.read(sa.select(moderation_lists.c.entries)
                                   .where(moderation_lists.c.scope == GLOBAL_SCOPE))
        return list(json.loads(rows[0]["entries"])) if rows else []

    async def replace_global(self, entries: Sequence[str]) -> None:
        # Delete + insert in one transaction: an upsert both databases spell alike.
        await self._db.transaction([
            Step(moderation_lists.delete().where(moderation_lists.c.scope == GLOBAL_SCOPE)),
            Step(moderation_lists.insert().values(
                scope=GLOBAL_SCOPE, entries=json.dumps(list(entries), ensure_ascii=False),
                updated_at=time.time())),
        ])

    async def record_refusal(self, key_id: str, source: str, category: str,
                             model: str | None) -> None:
        await self._db.write(moderation_refusals.insert().values(
            key_id=key_id, source=source, category=category[:64], model=model,
            created_at=time.time()))

    async def refusal_counts(self, since: float, until: float, key_id: str | None = None
                             ) -> list[RefusalCount]:
        """Refusals per key × source × category in [since, until)."""
        r = moderation_refusals
        where = [r.c.created_at >= since, r.c.created_at < until]
        if key_id is not None:
            where.append(r.c.key_id == key_id)
        stmt = (
            sa.select(r.c.key_id, api_keys.c.name, r.c.source, r.c.category,
                      sa.func.count().label("refused"))
            .select_from(r.outerjoin(api_keys, api_keys.c.id == r.c.key_id))
            .where(*where)
            .group_by(r.c.key_id, api_keys.c.name, r.c.source, r.c.category)
            .order_by(api_keys.c.name, r.c.key_id, r.c.source, r.c.category)
        )
        return [RefusalCount(m["key_id"], m["name"], m["source"], m["category"],
                             int(m["refused"])) for m in await self._db.read(stmt)]

    async def purge(self) -> int:
        """Remove refusal rows older than the retention (the worker's cleaner runs this)."""
        result = await self._db.write(moderation_refusals.delete().where(
            moderation_refusals.c.created_at < time.time() - self._retention))
        return result.rowcount
