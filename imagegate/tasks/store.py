"""The task table: create, claim under a lease, renew, progress, finish, cancel, reap.

Every state change is one conditional UPDATE, so two workers (or a worker and a cancel) can
never both win: whoever's WHERE clause still matches changes the row, the other sees rowcount
0 and backs off. The same statements run on SQLite and PostgreSQL; only the claim differs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from imagegate.db.tables import tasks
from imagegate.domain.task import Task, TaskStatus
from imagegate.errors import TaskCancelledError

_ACTIVE = (TaskStatus.QUEUED.value, TaskStatus.IN_PROGRESS.value)


def _loads(value: str | None) -> Any:
    return orjson.loads(value) if value else None


def _row_to_task(row: Any) -> Task:
    m = row._mapping
    return Task(
        id=m["id"],
        key_id=m["key_id"],
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        operation=m["operation"],
        model=m["model"],
        provider=m["provider"],
        request=_loads(m["request"]),
        result=_loads(m["result"]),
        error=_loads(m["error"]),
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        expires_at=m["expires_at"],
        lease_owner=m["lease_owner"],
        lease_expires_at=m["lease_expires_at"],
        attempts=m["attempts"],
        upstream_task_id=m["upstream_task_id"],
    )


class TaskStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        # SQLite has one writer; queueing writers here is cheaper than letting them spin on
        # busy_timeout inside the driver's thread. PostgreSQL needs no such gate.
        self._write_lock = asyncio.Lock() if self._sqlite else None

    async def _write(self, stmt: sa.Executable) -> sa.CursorResult[Any]:
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                return await conn.execute(stmt)
        async with self._write_lock, self._engine.begin() as conn:
            return await conn.execute(stmt)

    async def _write_returning(self, stmt: sa.Executable) -> list[Any]:
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                return list((await conn.execute(stmt)).fetchall())
        async with self._write_lock, self._engine.begin() as conn:
            return list((await conn.execute(stmt)).fetchall())

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
        now: float | None = None,
    ) -> Task:
        now = time.time() if now is None else now
        values = {
            "id": task_id,
            "key_id": key_id,
            "status": TaskStatus.QUEUED.value,
            "progress": 0,
            "operation": operation,
            "model": model,
            "provider": None,
            "request": orjson.dumps(request).decode(),
            "result": None,
            "error": None,
            "created_at": now,
            "started_at": None,
            "completed_at": None,
            "expires_at": now + retention_seconds,
            "lease_owner": None,
            "lease_expires_at": None,
            "attempts": 0,
            "upstream_task_id": None,
        }
        await self._write(tasks.insert().values(**values))
        return _row_to_task(_FakeRow(values))

    async def get(self, task_id: str) -> Task | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(tasks.select().where(tasks.c.id == task_id))).first()
        return _row_to_task(row) if row else None

    async def get_for_key(self, task_id: str, key_id: str) -> Task | None:
        """A task as its owner sees it; another key's task is indistinguishable from none."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    tasks.select().where(tasks.c.id == task_id, tasks.c.key_id == key_id)
                )
            ).first()
        return _row_to_task(row) if row else None

    async def get_many(self, task_ids: list[str]) -> list[Task]:
        if not task_ids:
            return []
        async with self._engine.connect() as conn:
            rows = (await conn.execute(tasks.select().where(tasks.c.id.in_(task_ids)))).fetchall()
        return [_row_to_task(r) for r in rows]

    async def count_by_status(self) -> dict[str, int]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
            )
            return {status: count for status, count in rows}

    # -- worker side
    async def claim(
        self, owner: str, lease_seconds: float, now: float | None = None
    ) -> Task | None:
        """Take the oldest queued task under a lease, or None when the queue is empty."""
        now = time.time() if now is None else now
        pick = (
            sa.select(tasks.c.id)
            .where(tasks.c.status == TaskStatus.QUEUED.value)
            .order_by(tasks.c.created_at)
            .limit(1)
        )
        if not self._sqlite:
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            tasks.update()
            .where(tasks.c.id == pick.scalar_subquery())
            # Re-checked here: on SQLite a concurrent process may have claimed it in between.
            .where(tasks.c.status == TaskStatus.QUEUED.value)
            .values(
                status=TaskStatus.IN_PROGRESS.value,
                lease_owner=owner,
                lease_expires_at=now + lease_seconds,
                started_at=sa.func.coalesce(tasks.c.started_at, now),
                attempts=tasks.c.attempts + 1,
            )
            .returning(*tasks.c)
        )
        rows = await self._write_returning(stmt)
        return _row_to_task(rows[0]) if rows else None

    def _owned(self, task_id: str, owner: str) -> sa.Update:
        return tasks.update().where(
            tasks.c.id == task_id,
            tasks.c.lease_owner == owner,
            tasks.c.status == TaskStatus.IN_PROGRESS.value,
        )

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
        return {r[0] for r in await self._write_returning(stmt)}

    async def set_progress(self, task_id: str, owner: str, progress: int) -> bool:
        res = await self._write(
            self._owned(task_id, owner).values(progress=max(0, min(99, progress)))
        )
        return res.rowcount == 1

    async def set_upstream(self, task_id: str, owner: str, provider: str, upstream_id: str) -> bool:
        res = await self._write(
            self._owned(task_id, owner).values(provider=provider, upstream_task_id=upstream_id)
        )
        return res.rowcount == 1

    async def succeed(
        self, task_id: str, owner: str, result: dict[str, Any], provider: str
    ) -> bool:
        res = await self._write(
            self._owned(task_id, owner).values(
                status=TaskStatus.SUCCEEDED.value,
                progress=100,
                result=orjson.dumps(result).decode(),
                provider=provider,
                completed_at=time.time(),
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return res.rowcount == 1

    async def fail(self, task_id: str, owner: str, error: dict[str, Any]) -> bool:
        res = await self._write(
            self._owned(task_id, owner).values(
                status=TaskStatus.FAILED.value,
                error=orjson.dumps(error).decode(),
                completed_at=time.time(),
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        return res.rowcount == 1

    async def release(self, task_ids: list[str], owner: str) -> int:
        """Hand leases back on a graceful stop; the run did not finish, so it does not count."""
        if not task_ids:
            return 0
        res = await self._write(
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
        """Cancel a queued or running task; a finished one is returned unchanged."""
        await self._write(
            tasks.update()
            .where(tasks.c.id == task_id, tasks.c.key_id == key_id, tasks.c.status.in_(_ACTIVE))
            .values(
                status=TaskStatus.CANCELLED.value,
                completed_at=time.time(),
                lease_owner=None,
                lease_expires_at=None,
                error=orjson.dumps(
                    TaskCancelledError("The task was cancelled").to_json()
                ).decode(),
            )
        )
        return await self.get_for_key(task_id, key_id)

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
        failed = await self._write(
            tasks.update()
            .where(*expired, tasks.c.attempts >= max_attempts)
            .values(
                status=TaskStatus.FAILED.value,
                completed_at=now,
                lease_owner=None,
                lease_expires_at=None,
                error=orjson.dumps(
                    {"message": f"The task was interrupted {max_attempts} times and was given up",
                     "type": "server_error", "param": None, "code": "worker_lost"}
                ).decode(),
            )
        )
        requeued = await self._write(
            tasks.update()
            .where(*expired)
            .values(status=TaskStatus.QUEUED.value, lease_owner=None, lease_expires_at=None)
        )
        return requeued.rowcount, failed.rowcount

    async def take_expired(self, now: float | None = None, limit: int = 500) -> list[Task]:
        """Tasks past retention (oldest first); the cleaner deletes their blobs, then rows."""
        now = time.time() if now is None else now
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    tasks.select()
                    .where(tasks.c.expires_at < now, tasks.c.status.not_in(_ACTIVE))
                    .order_by(tasks.c.expires_at)
                    .limit(limit)
                )
            ).fetchall()
        return [_row_to_task(r) for r in rows]

    async def delete(self, task_ids: list[str]) -> int:
        if not task_ids:
            return 0
        res = await self._write(tasks.delete().where(tasks.c.id.in_(task_ids)))
        return res.rowcount


class _FakeRow:
    """Lets `create` return a Task built from the values it inserted, without a re-read."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values
