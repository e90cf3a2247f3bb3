"""Holds, settlements and refunds, as statements that run inside the task's own transaction.

Money never moves by read-modify-write. A submit's hold is one conditional UPDATE of the key
(`balance >= hold`, and `active_tasks < concurrency` for the concurrent-task limit): two
concurrent submits cannot both spend the last of a balance, on SQLite or PostgreSQL. A task's
`charge_state` moves held -> settled | refunded by a conditional UPDATE too, in the same
transaction as the task's own terminal state, so each hold is released exactly once whoever
finishes the task (worker, cancel, reaper) and however often they race. Every movement of a
balance is a ledger row in the same transaction: the sum of a key's ledger amounts is its
balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from imagegate.db.database import Step
from imagegate.db.tables import api_keys, ledger, tasks
from imagegate.domain.task import Task

HOLD = "hold"  # Step.require labels: which condition refused a submit
ACTIVE = "active"
SETTLED = "settled"  # a task's charge_state once its hold is settled


def _b(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}")


# NULL balance = postpaid: never refused, never negative-checked, usage still in the ledger.
_debit = sa.case((api_keys.c.balance.is_(None), None), else_=api_keys.c.balance - _b("amount"))
_credit = sa.case((api_keys.c.balance.is_(None), None), else_=api_keys.c.balance + _b("amount"))


class BillingStatements:
    """Statements built once (building costs more than running them on the hot path)."""

    def __init__(self) -> None:
        self.hold = (
            api_keys.update()
            .where(
                api_keys.c.id == _b("key_id"),
                sa.or_(api_keys.c.balance.is_(None), api_keys.c.balance >= _b("amount")),
                sa.or_(api_keys.c.concurrency.is_(None),
                       api_keys.c.active_tasks < api_keys.c.concurrency),
            )
            .values(balance=_debit, active_tasks=api_keys.c.active_tasks + 1)
        )
        self.release = (
            api_keys.update()
            .where(api_keys.c.id == _b("key_id"))
            .values(balance=_credit, active_tasks=api_keys.c.active_tasks - 1)
        )
        self.entry = ledger.insert().values(
            key_id=_b("key_id"), task_id=_b("task_id"), kind=_b("kind"), amount=_b("signed"),
            model=_b("model"), tier=_b("tier"), images=_b("images"), note=_b("note"),
            created_at=_b("now"),
        )
        held = tasks.update().where(tasks.c.id == _b("task_id"), tasks.c.charge_state == "held")
        self.settled = held.values(charge_state=SETTLED, charged_amount=_b("charged"))
        self.refunded = held.values(charge_state="refunded", charged_amount=0)


def _entry(s: BillingStatements, task: Task, kind: str, signed: int, images: int,
           now: float, *, tier: str | None = None, note: str | None = None) -> Step:
    request = task.request or {}
    return Step(s.entry, {"b_key_id": task.key_id, "b_task_id": task.id, "b_kind": kind,
                          "b_signed": signed, "b_model": task.model,
                          "b_tier": tier or request.get("tier"), "b_images": images,
                          "b_note": note, "b_now": now})


def key_last(s: BillingStatements, steps: Sequence[Step]) -> list[Step]:
    """`steps` with the key's balance update (hold or release) moved to the end, the rest in
    their order. Why: every task of a key updates that one row, and on PostgreSQL the update
    locks it until COMMIT, so each statement after it (a round trip each) is time every
    other transaction of the key waits; last, the lock lasts one statement and the commit.
    The transaction is all-or-nothing either way, so the order changes nothing it does."""
    def on_key(step: Step) -> bool:
        return step.stmt is s.hold or step.stmt is s.release  # by identity: built once

    return [step for step in steps if not on_key(step)] + [step for step in steps
                                                           if on_key(step)]


def hold_steps(s: BillingStatements, task: Task, now: float) -> list[Step]:
    """With the task insert: reserve price × n (and a concurrency slot), or refuse."""
    return [
        Step(s.hold, {"b_key_id": task.key_id, "b_amount": task.hold_amount}, require=HOLD),
        _entry(s, task, "hold", -task.hold_amount, int((task.request or {}).get("n", 0)), now),
    ]


def charge_of(task: Task, produced: int, charged: int | None = None) -> int:
    """What settling `task` charges for `produced` images: `charged` (what was delivered
    costs, `domain/delivery.py`) else unit price × produced, never more than the hold."""
    cost = task.unit_price * produced if charged is None else charged
    return max(0, min(task.hold_amount, cost))


def settle_steps(s: BillingStatements, task: Task, produced: int, now: float, *,
                 charged: int | None = None, tier: str | None = None,
                 note: str | None = None) -> list[Step]:
    """After the task's success update: charge the images produced, give back the rest.

    `charged`: what the delivered images cost (`domain/delivery.py`: fewer or smaller images
    than asked cost less), else unit price × produced; never more than the hold either way.
    `tier` and `note` record on the ledger row what was delivered."""
    n = int((task.request or {}).get("n", produced))
    charged = charge_of(task, produced, charged)
    give_back = task.hold_amount - charged
    return [
        Step(s.settled, {"b_task_id": task.id, "b_charged": charged}, require="charge"),
        Step(s.release, {"b_key_id": task.key_id, "b_amount": give_back}),
        _entry(s, task, "settle", give_back, produced - n, now, tier=tier, note=note),
    ]


def refund_steps(s: BillingStatements, task: Task, now: float, *,
                 note: str | None = None) -> list[Step]:
    """After a failure, cancel or give-up update: the whole hold goes back. Guarded by the
    charge state, so a second refund of the same task matches no row and adds nothing."""
    n = int((task.request or {}).get("n", 0))
    return [
        Step(s.refunded, {"b_task_id": task.id}, require="charge"),
        Step(s.release, {"b_key_id": task.key_id, "b_amount": task.hold_amount}),
        _entry(s, task, "refund", task.hold_amount, -n, now, note=note),
    ]
