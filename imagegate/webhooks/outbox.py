"""The webhook outbox: a task's finish notification is written as a `webhook_deliveries` row
in the same transaction that finishes the task, so it is never lost (and never sent for a
finish that rolled back). The dispatcher (`sender.py`) delivers the rows later.

`started` and `progress` notifications (when the request or key asked for them, see
`domain/webhook_events.py`) are rows too: the start's is one INSERT after the claim, a
progress one joins the transaction of the progress write it reports (at most one per
`PROGRESS_INTERVAL_SECONDS` per task, so the worker's hot path gains no write of its own).

Event names are those of `GET /v1/tasks/{id}/events` (`task.succeeded`, …).

Statements only: the task store runs them as steps of its own transactions.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from imagegate.db.database import Step
from imagegate.db.tables import api_keys, webhook_deliveries
from imagegate.domain.task import Task, new_id


def _b(name: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"b_{name}")


class OutboxStatements:
    """Built once: building a statement costs more than running it on the hot path."""

    def __init__(self) -> None:
        self.delivery = webhook_deliveries.insert().values(
            id=_b("id"), key_id=_b("key_id"), task_id=_b("task_id"), event=_b("event"),
            url=_b("url"), payload=None, status="pending", attempts=0,
            next_attempt_at=_b("now"), created_at=_b("now"),
        )
        # A key's own webhook URL, when the request named none: one INSERT … SELECT, so a
        # key without one inserts nothing.
        self.key_delivery = webhook_deliveries.insert().from_select(
            ["id", "key_id", "task_id", "event", "url", "status", "attempts", "next_attempt_at",
             "created_at"],
            sa.select(
                # Typed: PostgreSQL cannot infer a bare parameter's type in a SELECT list.
                sa.cast(_b("id"), sa.String(40)), api_keys.c.id,
                sa.cast(_b("task_id"), sa.String(40)), sa.cast(_b("event"), sa.String(40)),
                api_keys.c.webhook_url, sa.literal("pending"), sa.literal(0),
                sa.cast(_b("now"), sa.Float), sa.cast(_b("now"), sa.Float),
            ).where(api_keys.c.id == _b("key_id"), api_keys.c.webhook_url.is_not(None)),
        )


STARTED = "task.started"
PROGRESS = "task.progress"
SUCCEEDED = "task.succeeded"
FAILED = "task.failed"
CANCELLED = "task.cancelled"


def finish_steps(s: OutboxStatements, task: Task, event: str, now: float) -> list[Step]:
    """The delivery of `event` for `task`: to the request's `webhook_url`, else the key's
    (none when neither has one)."""
    params = {"b_id": new_id("msg_"), "b_key_id": task.key_id, "b_task_id": task.id,
              "b_event": event, "b_now": now}
    url = (task.request or {}).get("webhook_url")
    if url:
        return [Step(s.delivery, {**params, "b_url": url})]
    return [Step(s.key_delivery, params)]
