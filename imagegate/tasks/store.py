"""The task table: create, claim under a lease, renew, progress, finish, cancel, reap.

Every state change is one conditional UPDATE, so two workers (or a worker and a cancel) can
never both win: whoever's WHERE clause still matches changes the row, the other sees rowcount
0 and backs off. The same statements run on SQLite and PostgreSQL; only the claim differs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any

import orjson
import sqlalchemy as sa

from imagegate.accounts import billing
from imagegate.db.database import ConditionFailed, Database, Row, Step
from imagegate.db.tables import api_keys, tasks, webhook_deliveries
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import (
    DeadlineExceededError,
    InsufficientBalanceError,
    InvalidRequestError,
    RateLimitError,
    TaskCancelledError,
)
from imagegate.webhooks import outbox

_ACTIVE = (TaskStatus.QUEUED.value, TaskStatus.IN_PROGRESS.value)


def _loads(value: str | None) -> Any:
    return orjson.loads(value) if value else None


def _shared(value: str | None) -> str | None:
    """`sys.intern`, None kept. `_row_to_task` keeps one copy of the values many rows
    repeat (a model, a key, the worker that holds them): the driver makes a new string per
    row, and a worker keeps its running tasks for as long as an upstream holds their calls
    (thousands at once)."""
    return None if value is None else sys.intern(value)


def _row_to_task(m: Row) -> Task:
    return Task(
        id=m["id"],
        key_id=sys.intern(m["key_id"]),
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        operation=sys.intern(m["operation"]),
        model=sys.intern(m["model"]),
        provider=_shared(m["provider"]),
        request=_loads(m["request"]),
        result=_loads(m["result"]),
        error=_loads(m["error"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        expires_at=m["expires_at"],
        lease_owner=_shared(m["lease_owner"]),
        lease_expires_at=m["lease_expires_at"],
        attempts=m["attempts"],
        upstream_task_id=m["upstream_task_id"],
        unit_price=m["unit_price"],
        hold_amount=m["hold_amount"],
        charged_amount=m["charged_amount"],
        charge_state=sys.intern(m["charge_state"]),
        deadline_at=m["deadline_at"],
    )


def _b(name: str) -> sa.BindParameter[Any]:
    # Prefixed so no name collides with a column SQLAlchemy binds in SET clauses.
    return sa.bindparam(f"b_{name}")


class TaskStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._sqlite = db.dialect == "sqlite"
        # The hot statements, built once: building one costs more than running it (~70 µs).
        self._get = tasks.select().where(tasks.c.id == _b("id"))
        self._get_for_key = self._get.where(tasks.c.key_id == _b("key_id"))
        self._insert = tasks.insert()
        self._claim = self._claim_statement()
        # Queued tasks the claim takes before this one (it takes the oldest first).
        self._ahead = sa.select(sa.func.count().label("n")).select_from(tasks).where(
            tasks.c.status == TaskStatus.QUEUED.value,
            sa.or_(tasks.c.created_at < _b("created_at"),
                   sa.and_(tasks.c.created_at == _b("created_at"), tasks.c.id < _b("id"))),
        )
        self._any_queued = (
            sa.select(tasks.c.id).where(tasks.c.status == TaskStatus.QUEUED.value).limit(1)
        )
        owned = tasks.update().where(
            tasks.c.id == _b("id"),
            tasks.c.lease_owner == _b("owner"),
            tasks.c.status == TaskStatus.IN_PROGRESS.value,
        )
        self._progress = owned.values(progress=_b("progress"))
        self._upstream = owned.values(provider=_b("provider"), upstream_task_id=_b("upstream"))
        finished = {"completed_at": _b("now"), "lease_owner": None, "lease_expires_at": None}
        self._succeed = owned.values(
            status=TaskStatus.SUCCEEDED.value, progress=100, result=_b("result"),
            provider=_b("provider"), **finished,
        )
        self._fail = owned.values(status=TaskStatus.FAILED.value, error=_b("error"), **finished)
        self._cancel = (
            tasks.update()
            .where(tasks.c.id == _b("id"), tasks.c.key_id == _b("key_id"),
                   tasks.c.status.in_(_ACTIVE))
            .values(status=TaskStatus.CANCELLED.value, completed_at=_b("now"),
                    lease_owner=None, lease_expires_at=None, error=_b("error"))
        )
        # A deadline cancels whatever holds the task (no key or lease condition): it is the
        # row's own rule, enforced by whoever sees it pass first.
        self._expire = (
            tasks.update()
            .where(tasks.c.id == _b("id"), tasks.c.status.in_(_ACTIVE),
                   tasks.c.deadline_at <= _b("now"))
            .values(status=TaskStatus.CANCELLED.value, completed_at=_b("now"),
                    lease_owner=None, lease_expires_at=None, error=_b("error"))
        )
        self._overdue = (
            tasks.select()
            .where(tasks.c.deadline_at <= _b("now"), tasks.c.status.in_(_ACTIVE))
            .order_by(tasks.c.deadline_at)
            .limit(500)
        )
        self._give_up = (
            tasks.update()
            .where(tasks.c.id == _b("id"), tasks.c.status == TaskStatus.IN_PROGRESS.value,
                   tasks.c.lease_expires_at < _b("now"))
            .values(status=TaskStatus.FAILED.value, completed_at=_b("now"), lease_owner=None,
                    lease_expires_at=None, error=_b("error"))
        )
        self._bill = billing.BillingStatements()
        self._outbox = outbox.OutboxStatements()

    def _claim_statement(self) -> sa.Update:
        pick = (
            sa.select(tasks.c.id)
            .where(tasks.c.status == TaskStatus.QUEUED.value)
            .order_by(tasks.c.created_at)
            .limit(1)
        )
        if not self._sqlite:
            pick = pick.with_for_update(skip_locked=True)
        return (
            tasks.update()
            .where(tasks.c.id == pick.scalar_subquery())
            # Re-checked here: on SQLite a concurrent process may have claimed it in between.
            .where(tasks.c.status == TaskStatus.QUEUED.value)
            .values(
                status=TaskStatus.IN_PROGRESS.value,
                lease_owner=_b("owner"),
                lease_expires_at=_b("lease_expires_at"),
                started_at=sa.func.coalesce(tasks.c.started_at, _b("now")),
                attempts=tasks.c.attempts + 1,
            )
            .returning(*tasks.c)
        )

    async def _one(self, stmt: sa.Select[Any], params: dict[str, Any]) -> Task | None:
        rows = await self._db.read(stmt, params)
        return _row_to_task(rows[0]) if rows else None

    # -- create and read
    async def create(
        self,
        *,
        task_id: str,
        key_id: str,
        operation: str,
        model: str,
        request: dict[str, Any],
        retention_seconds: float,
        unit_price: int = 0,
        extra_steps: tuple[Step, ...] = (),
        lease: tuple[str, float] | None = None,
        now: float | None = None,
    ) -> Task:
        """Insert a queued task and place its hold (price × n, plus a concurrency slot) in
        one transaction; `extra_steps` (an idempotency record) join the same transaction.
        Raises 402 when the balance cannot cover the hold, 429 when the key is at its
        concurrent-task limit, ConditionFailed for a failed extra step; nothing is kept then.

        `lease=(owner, seconds)` inserts the task already claimed by that worker, as its
        first attempt (the process that took the request runs it at once, see
        `Worker.adopt`): the same row a claim would leave, without the claim's write."""
        now = time.time() if now is None else now
        owner, lease_seconds = lease if lease is not None else (None, 0.0)
        hold = unit_price * int(request.get("n", 1))
        deadline = request.get("deadline_seconds")
        values = {
            "id": task_id,
            "key_id": key_id,
            "status": (TaskStatus.QUEUED if owner is None else TaskStatus.IN_PROGRESS).value,
            "progress": 0,
            "operation": operation,
            "model": model,
            "provider": None,
            "request": orjson.dumps(request).decode(),
            "result": None,
            "error": None,
            "created_at": now,
            "started_at": None if owner is None else now,
            "completed_at": None,
            "expires_at": now + retention_seconds,
            "lease_owner": owner,
            "lease_expires_at": None if owner is None else now + lease_seconds,
            "attempts": 0 if owner is None else 1,
            "upstream_task_id": None,
            "unit_price": unit_price,
            "hold_amount": hold,
            "charged_amount": 0,
            "charge_state": "held",
            "deadline_at": None if deadline is None else now + float(deadline),
        }
        task = _row_to_task(values)
        steps = billing.key_last(self._bill, [*billing.hold_steps(self._bill, task, now),
                                              Step(self._insert, values), *extra_steps])
        try:
            # New work: on SQLite it waits behind the writes of tasks already running.
            await self._db.transaction(steps, new_work=True)
        except ConditionFailed as exc:
            if exc.label == billing.HOLD:
                raise await self._refusal(key_id, hold) from None
            raise
        return task

    async def _refusal(self, key_id: str, hold: int) -> Exception:
        """Why a hold was refused (read after the fact, only to word the error)."""
        rows = await self._db.read(
            sa.select(api_keys.c.balance, api_keys.c.concurrency, api_keys.c.active_tasks)
            .where(api_keys.c.id == key_id)
        )
        if rows and rows[0]["balance"] is not None and rows[0]["balance"] < hold:
            return InsufficientBalanceError(
                "Your balance is too low for this request; top up the key and try again",
            )
        if rows and rows[0]["concurrency"] is not None:
            return RateLimitError(
                f"This key already has {rows[0]['concurrency']} tasks queued or running, its "
                "limit; wait for one to finish",
                code="concurrency_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        return InsufficientBalanceError("The key cannot place a hold for this request")

    async def get(self, task_id: str) -> Task | None:
        return await self._one(self._get, {"b_id": task_id})

    async def get_for_key(self, task_id: str, key_id: str) -> Task | None:
        """A task as its owner sees it; another key's task is indistinguishable from none."""
        return await self._one(self._get_for_key, {"b_id": task_id, "b_key_id": key_id})

    async def get_many(self, task_ids: list[str]) -> list[Task]:
        if not task_ids:
            return []
        rows = await self._db.read(tasks.select().where(tasks.c.id.in_(task_ids)))
        return [_row_to_task(r) for r in rows]

    async def queue_position(self, task: Task) -> int:
        """How many queued tasks the claim takes before `task` (0: it is next). The claim
        is one FIFO over all models and channels, so every queued task ahead counts."""
        rows = await self._db.read(self._ahead, {"b_created_at": task.created_at,
                                                 "b_id": task.id})
        return int(rows[0]["n"]) if rows else 0

    async def recent_durations(self, model: str, tier: str, limit: int) -> list[float]:
        """Run times (started → completed, else created → completed) of the newest
        succeeded tasks of `model` × `tier`, newest first."""
        rows = await self._db.read(
            sa.select(tasks.c.created_at, tasks.c.started_at, tasks.c.completed_at,
                      tasks.c.request)
            .where(tasks.c.status == TaskStatus.SUCCEEDED.value, tasks.c.model == model)
            .order_by(tasks.c.created_at.desc())
            # The tier is inside the request JSON: read a few more rows than needed.
            .limit(limit * 4)
        )
        out: list[float] = []
        for row in rows:
            if row["completed_at"] is None or _loads(row["request"]).get("tier") != tier:
                continue
            out.append(row["completed_at"] - (row["started_at"] or row["created_at"]))
            if len(out) >= limit:
                break
        return out

    async def page(self, *, key_id: str | None, limit: int, after: str | None = None,
                   status: str | None = None, model: str | None = None,
                   created_after: float | None = None, created_before: float | None = None
                   ) -> list[Task]:
        """Up to `limit` tasks, newest first: one key's (`key_id`) or everyone's (None).
        `after`: a task id from the previous page (of the same key): continue with older
        ones. Keyset paging on (created_at, id), which the indexes on (key_id, created_at,
        id) and (created_at, id) serve, so a page costs the same at any depth. Raises
        InvalidRequestError for a cursor that is not such a task."""
        stmt = tasks.select()
        if key_id is not None:
            stmt = stmt.where(tasks.c.key_id == key_id)
        if status is not None:
            stmt = stmt.where(tasks.c.status == status)
        if model is not None:
            stmt = stmt.where(tasks.c.model == model)
        if created_after is not None:
            stmt = stmt.where(tasks.c.created_at > created_after)
        if created_before is not None:
            stmt = stmt.where(tasks.c.created_at < created_before)
        if after is not None:
            cursor = await (self.get(after) if key_id is None
                            else self.get_for_key(after, key_id))
            if cursor is None:
                raise InvalidRequestError(f"No task found with id '{after}' to continue after",
                                          param="after", code="invalid_cursor")
            at = cursor.created_at
            # Ties on created_at are ordered by id, so a page boundary never skips or
            # repeats one.
            stmt = stmt.where(sa.or_(tasks.c.created_at < at,
                                     sa.and_(tasks.c.created_at == at, tasks.c.id < after)))
        stmt = stmt.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit)
        return [_row_to_task(r) for r in await self._db.read(stmt)]

    async def count_by_status(self) -> dict[str, int]:
        rows = await self._db.read(
            sa.select(tasks.c.status, sa.func.count().label("n")).group_by(tasks.c.status)
        )
        return {r["status"]: r["n"] for r in rows}

    # -- worker side
    async def claim(
        self, owner: str, lease_seconds: float, now: float | None = None
    ) -> Task | None:
        """Take the oldest queued task under a lease, or None when the queue is empty."""
        # A read first: on SQLite reads are ~10 µs inline while a write waits for the writer
        # thread, and an idle dispatcher asks after every task it finishes.
        if not await self._db.read(self._any_queued, {}):
            return None
        now = time.time() if now is None else now
        params = {"b_owner": owner, "b_lease_expires_at": now + lease_seconds, "b_now": now}
        rows = (await self._db.write(self._claim, params)).rows
        return _row_to_task(rows[0]) if rows else None

    async def renew(self, task_ids: list[str], owner: str, lease_seconds: float) -> set[str]:
        """Extend the leases this owner still holds; returns the ids it still holds."""
        if not task_ids:
            return set()
        stmt = (
            tasks.update()
            .where(
                tasks.c.id.in_(task_ids),
                tasks.c.lease_owner == owner,
                tasks.c.status == TaskStatus.IN_PROGRESS.value,
            )
            .values(lease_expires_at=time.time() + lease_seconds)
            .returning(tasks.c.id)
        )
        return {r["id"] for r in (await self._db.write(stmt)).rows}

    async def set_progress(self, task_id: str, owner: str, progress: int,
                           webhook: Task | None = None) -> bool:
        """Record progress; with `webhook` (the task) a `task.progress` webhook delivery is
        queued in the same transaction."""
        params = {"b_id": task_id, "b_owner": owner, "b_progress": max(0, min(99, progress))}
        if webhook is None:
            return (await self._db.write(self._progress, params)).rowcount == 1
        return await self._finish([
            Step(self._progress, params, require="owned"),
            *outbox.finish_steps(self._outbox, webhook, outbox.PROGRESS, time.time()),
        ])

    async def webhook_started(self, task: Task) -> None:
        """Queue the `task.started` webhook delivery of a task just claimed."""
        await self._db.transaction(outbox.finish_steps(self._outbox, task, outbox.STARTED,
                                                       time.time()))

    async def set_upstream(self, task_id: str, owner: str, provider: str, upstream_id: str) -> bool:
        params = {"b_id": task_id, "b_owner": owner, "b_provider": provider,
                  "b_upstream": upstream_id}
        return (await self._db.write(self._upstream, params)).rowcount == 1

    async def succeed(
        self, task: Task, owner: str, result: dict[str, Any], provider: str, *,
        charged: int | None = None, tier: str | None = None, note: str | None = None,
    ) -> Task | None:
        """Record the result and settle the hold for the images produced, in one
        transaction. Returns the task as that transaction left it (what `get` would read
        next, so a sync caller answers without reading it back), or None (nothing changed)
        when the lease is no longer ours. `charged`, `tier`, `note`: what was delivered and
        what it costs (`billing.settle_steps`)."""
        now = time.time()
        encoded = orjson.dumps(result)
        params = {"b_id": task.id, "b_owner": owner, "b_now": now,
                  "b_result": encoded.decode(), "b_provider": provider}
        produced = len(result.get("images", []))
        amount = billing.charge_of(task, produced, charged)
        if not await self._finish([
            Step(self._succeed, params, require="owned"),
            *billing.settle_steps(self._bill, task, produced, now, charged=amount, tier=tier,
                                  note=note),
            *outbox.finish_steps(self._outbox, task, outbox.SUCCEEDED, now),
        ]):
            return None
        # The columns `_succeed` and `billing.settled` wrote; the result as a read parses it.
        return replace(task, status=TaskStatus.SUCCEEDED, progress=100,
                       result=orjson.loads(encoded), provider=provider, completed_at=now,
                       lease_owner=None, lease_expires_at=None, charged_amount=amount,
                       charge_state=billing.SETTLED)

    async def fail(self, task: Task, owner: str, error: dict[str, Any]) -> bool:
        """Record the failure and refund the hold, in one transaction."""
        now = time.time()
        params = {"b_id": task.id, "b_owner": owner, "b_error": orjson.dumps(error).decode(),
                  "b_now": now}
        return await self._finish([
            Step(self._fail, params, require="owned"),
            *billing.refund_steps(self._bill, task, now),
            *outbox.finish_steps(self._outbox, task, outbox.FAILED, now),
        ])

    async def _finish(self, steps: list[Step]) -> bool:
        try:
            await self._db.transaction(billing.key_last(self._bill, steps))
        except ConditionFailed:
            return False
        return True

    async def release(self, task_ids: list[str], owner: str) -> int:
        """Hand leases back on a graceful stop; the run did not finish, so it does not count."""
        if not task_ids:
            return 0
        res = await self._db.write(
            tasks.update()
            .where(
                tasks.c.id.in_(task_ids),
                tasks.c.lease_owner == owner,
                tasks.c.status == TaskStatus.IN_PROGRESS.value,
            )
            .values(
                status=TaskStatus.QUEUED.value,
                lease_owner=None,
                lease_expires_at=None,
                attempts=tasks.c.attempts - 1,
            )
        )
        return res.rowcount

    # -- client side
    async def cancel(self, task_id: str, key_id: str) -> Task | None:
        """Cancel a queued or running task and refund its hold; a finished one is returned
        unchanged. The status update is conditional, so a cancel racing the worker's finish
        either wins (and refunds) or changes nothing."""
        task = await self.get_for_key(task_id, key_id)
        if task is None or task.status.terminal:
            return task
        now = time.time()
        error = orjson.dumps(TaskCancelledError("The task was cancelled").to_json()).decode()
        await self._finish([
            Step(self._cancel, {"b_id": task_id, "b_key_id": key_id, "b_now": now,
                                "b_error": error}, require="active"),
            *billing.refund_steps(self._bill, task, now),
            *outbox.finish_steps(self._outbox, task, outbox.CANCELLED, now),
        ])
        return await self.get_for_key(task_id, key_id)

    # -- deadlines
    async def expire(self, task_id: str, now: float | None = None) -> bool:
        """Cancel the task if its deadline has passed and it has not finished: refunded, its
        webhook queued, in one transaction. True when this call cancelled it; False when it
        had no deadline yet to pass, or had already finished (a success recorded at the
        same moment wins or loses whole: the status update is conditional)."""
        now = time.time() if now is None else now
        task = await self.get(task_id)
        if (task is None or task.status.terminal or task.deadline_at is None
                or task.deadline_at > now):
            return False
        return await self._expire_one(task, now)

    async def expire_overdue(self, now: float | None = None) -> list[str]:
        """The sweeper's pass: cancel every unfinished task whose deadline has passed
        (queued ones no worker has claimed, and those of a worker that died); returns the
        ids it cancelled, for their events."""
        now = time.time() if now is None else now
        rows = await self._db.read(self._overdue, {"b_now": now})
        return [t.id for t in map(_row_to_task, rows) if await self._expire_one(t, now)]

    async def _expire_one(self, task: Task, now: float) -> bool:
        seconds = (task.deadline_at or now) - task.created_at
        error = DeadlineExceededError(
            f"The task did not finish within its deadline of {round(seconds, 3):g} s and was "
            "cancelled; nothing was charged").to_json()
        return await self._finish([
            Step(self._expire, {"b_id": task.id, "b_now": now,
                                "b_error": orjson.dumps(error).decode()}, require="active"),
            *billing.refund_steps(self._bill, task, now, note="deadline_exceeded"),
            *outbox.finish_steps(self._outbox, task, outbox.CANCELLED, now),
        ])

    # -- maintenance
    async def requeue_expired(self, max_attempts: int, now: float | None = None) -> tuple[int, int]:
        """Leases that ran out belong to a dead worker: requeue, or fail after max_attempts.

        Returns (requeued, failed).
        """
        now = time.time() if now is None else now
        expired = (
            tasks.c.status == TaskStatus.IN_PROGRESS.value,
            tasks.c.lease_expires_at < now,
        )
        # Given up one by one: each failure refunds its own hold in its own transaction.
        doomed = await self._db.read(
            tasks.select().where(*expired, tasks.c.attempts >= max_attempts).limit(500)
        )
        error = orjson.dumps(
            {"message": f"The task was interrupted {max_attempts} times and was given up",
             "type": "server_error", "param": None, "code": "worker_lost"}
        ).decode()
        failed = 0
        for row in doomed:
            task = _row_to_task(row)
            failed += await self._finish([
                Step(self._give_up, {"b_id": task.id, "b_now": now, "b_error": error},
                     require="expired"),
                *billing.refund_steps(self._bill, task, now),
                *outbox.finish_steps(self._outbox, task, outbox.FAILED, now),
            ])
        requeued = await self._db.write(
            tasks.update()
            .where(*expired, tasks.c.attempts < max_attempts)
            .values(status=TaskStatus.QUEUED.value, lease_owner=None, lease_expires_at=None)
        )
        return requeued.rowcount, failed

    async def take_expired(self, now: float | None = None, limit: int = 500) -> list[Task]:
        """Tasks past retention (oldest first); the cleaner deletes their blobs, then rows."""
        now = time.time() if now is None else now
        rows = await self._db.read(
            tasks.select()
            .where(tasks.c.expires_at < now, tasks.c.status.not_in(_ACTIVE))
            .order_by(tasks.c.expires_at)
            .limit(limit)
        )
        return [_row_to_task(r) for r in rows]

    async def delete(self, task_ids: list[str]) -> int:
        if not task_ids:
            return 0
        # Their webhook deliveries go with them (the ledger stays: it is the money's record).
        results = await self._db.transaction([
            Step(webhook_deliveries.delete().where(webhook_deliveries.c.task_id.in_(task_ids))),
            Step(tasks.delete().where(tasks.c.id.in_(task_ids))),
        ])
        return results[1].rowcount
