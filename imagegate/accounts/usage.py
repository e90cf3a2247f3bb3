"""Usage reports, read from the ledger (the one record of money movements).

Per task the billing core writes a "hold" (-price×n, images=n), then either a "settle"
(+the unproduced part, images=produced-n) or a "refund" (+the hold, images=-n). So over the
billing rows:

    spend  = -SUM(amount)   what the key was charged, counting holds not yet released
    images =  SUM(images)   images produced, once the outstanding holds' n is taken off

A hold is *outstanding* while its task has neither a settle nor a refund row. Ranges are
half-open, [since, until), on the ledger rows' own times.

`refused` counts requests refused for their content (moderation's refusals table: by the
blocklists or the moderation model before anything was charged, or by an upstream's safety
system); they have no ledger row, so a key × model with only refusals gets a row of its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from imagegate.accounts.money import format_amount
from imagegate.accounts.when import iso
from imagegate.db.database import Database
from imagegate.db.tables import api_keys, ledger, moderation_refusals
from imagegate.errors import InvalidRequestError, NotFoundError

BILLING_KINDS = ("hold", "settle", "refund")

_released = ledger.alias("released")
_outstanding = sa.and_(
    ledger.c.kind == "hold",
    ~sa.exists().where(_released.c.task_id == ledger.c.task_id,
                       _released.c.kind.in_(("settle", "refund"))),
)


def _sum_if(condition: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)


_billing = ledger.c.kind.in_(BILLING_KINDS)
_AGGREGATES = (
    _sum_if(_billing, ledger.c.amount).label("net"),
    _sum_if(_billing, ledger.c.images).label("images"),
    _sum_if(ledger.c.kind == "refund", ledger.c.amount).label("refunds"),
    _sum_if(ledger.c.kind == "hold", 1).label("tasks"),
    _sum_if(_outstanding, -ledger.c.amount).label("held"),
    _sum_if(_outstanding, ledger.c.images).label("held_images"),
)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One key × model over a range. Amounts in micro-units."""

    key_id: str
    key_name: str | None
    model: str | None
    tasks: int  # tasks submitted (holds placed)
    images: int  # images produced
    spend: int  # charged, including holds still outstanding
    refunds: int  # given back by refunds (failures, cancels)
    held: int  # holds whose task has not finished yet
    refused: int = 0  # requests refused for their content (no charge)

    @classmethod
    def from_row(cls, m: Any) -> UsageRow:
        return cls(key_id=m["key_id"], key_name=m.get("name"), model=m["model"],
                   tasks=int(m["tasks"]), images=int(m["images"]) - int(m["held_images"]),
                   spend=-int(m["net"]), refunds=int(m["refunds"]), held=int(m["held"]))

    def to_json(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "key_name": self.key_name, "model": self.model,
                "tasks": self.tasks, "images": self.images,
                "spend": format_amount(self.spend), "refunds": format_amount(self.refunds),
                "holds_outstanding": format_amount(self.held), "refused": self.refused}


def check_range(since: float | None, until: float | None) -> tuple[float, float]:
    """(since, until) with defaults: from the beginning, up to now."""
    start = 0.0 if since is None else since
    end = time.time() if until is None else until
    if end <= start:
        raise InvalidRequestError("until must be later than since", param="until")
    return start, end


class UsageReporter:
    def __init__(self, db: Database, currency: str = "USD") -> None:
        self._db = db
        self.currency = currency
        # Built once: the apimart profile reads a task's cost on every poll of it.
        self._task_cost = (
            sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount), 0).label("net"))
            .where(ledger.c.task_id == sa.bindparam("task_id"))
        )

    async def report(self, since: float | None = None, until: float | None = None,
                     key_id: str | None = None, model: str | None = None) -> list[UsageRow]:
        """Billing per key × model in [since, until), keys by name then models by name."""
        start, end = check_range(since, until)
        where = [_billing, ledger.c.created_at >= start, ledger.c.created_at < end]
        if key_id is not None:
            where.append(ledger.c.key_id == key_id)
        if model is not None:
            where.append(ledger.c.model == model)
        stmt = (
            sa.select(ledger.c.key_id, api_keys.c.name, ledger.c.model, *_AGGREGATES)
            .select_from(ledger.outerjoin(api_keys, api_keys.c.id == ledger.c.key_id))
            .where(*where)
            .group_by(ledger.c.key_id, api_keys.c.name, ledger.c.model)
            .order_by(api_keys.c.name, ledger.c.key_id, ledger.c.model)
        )
        rows = {(r.key_id, r.model): r
                for r in (UsageRow.from_row(dict(m)) for m in await self._db.read(stmt))}
        only_refused: list[UsageRow] = []
        for (kid, name, mdl), count in (await self._refusals(start, end, key_id, model)).items():
            found = rows.get((kid, mdl))
            if found is not None:
                rows[(kid, mdl)] = replace(found, refused=count)
            else:
                only_refused.append(UsageRow(kid, name, mdl, 0, 0, 0, 0, 0, refused=count))
        # Billed rows keep the database's order; rows with refusals only follow them.
        only_refused.sort(key=lambda r: (r.key_name or "", r.key_id, r.model or ""))
        return [*rows.values(), *only_refused]

    async def _refusals(self, start: float, end: float, key_id: str | None,
                        model: str | None) -> dict[tuple[str, str | None, str | None], int]:
        r = moderation_refusals
        where = [r.c.created_at >= start, r.c.created_at < end]
        if key_id is not None:
            where.append(r.c.key_id == key_id)
        if model is not None:
            where.append(r.c.model == model)
        stmt = (sa.select(r.c.key_id, api_keys.c.name, r.c.model,
                          sa.func.count().label("refused"))
                .select_from(r.outerjoin(api_keys, api_keys.c.id == r.c.key_id))
                .where(*where).group_by(r.c.key_id, api_keys.c.name, r.c.model))
        return {(m["key_id"], m["name"], m["model"]): int(m["refused"])
                for m in await self._db.read(stmt)}

    async def for_key(self, key_id: str, since: float | None = None,
                      until: float | None = None) -> dict[str, Any]:
        """One key's balance and usage (what `GET /v1/usage` returns)."""
        start, end = check_range(since, until)
        rows = await self._db.read(sa.select(api_keys.c.name, api_keys.c.balance)
                                   .where(api_keys.c.id == key_id))
        if not rows:
            raise NotFoundError(f"No API key with id {key_id!r}", param="key_id")
        balance = rows[0]["balance"]
        models = await self.report(start, end, key_id=key_id)
        moves = await self._db.read(
            sa.select(_sum_if(ledger.c.kind == "topup", ledger.c.amount).label("topups"),
                      _sum_if(ledger.c.kind == "adjust", ledger.c.amount).label("adjusts"))
            .where(ledger.c.key_id == key_id, ledger.c.created_at >= start,
                   ledger.c.created_at < end))
        return {
            "object": "usage",
            "key_id": key_id,
            "name": rows[0]["name"],
            "currency": self.currency,
            "since": iso(start),
            "until": iso(end),
            # None = postpaid: usage is recorded, never refused for want of balance.
            "balance": None if balance is None else format_amount(int(balance)),
            "tasks": sum(m.tasks for m in models),
            "images": sum(m.images for m in models),
            "spend": format_amount(sum(m.spend for m in models)),
            "refunds": format_amount(sum(m.refunds for m in models)),
            "holds_outstanding": format_amount(sum(m.held for m in models)),
            "refused": sum(m.refused for m in models),
            "topups": format_amount(int(moves[0]["topups"])),
            "adjustments": format_amount(int(moves[0]["adjusts"])),
            "models": [{k: v for k, v in m.to_json().items()
                        if k not in ("key_id", "key_name")} for m in models],
        }

    async def task_cost(self, task_id: str) -> int:
        """Net micro-units charged for one task so far (the hold while it runs)."""
        rows = await self._db.read(self._task_cost, {"task_id": task_id})
        return -int(rows[0]["net"]) if rows else 0
