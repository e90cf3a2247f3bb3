"""PostgreSQL's prebuilt statements on asyncpg directly, from a small pool of their own.

Why: through SQLAlchemy's async engine a pooled primary-key read costs ~360 µs of CPU in
this process (a greenlet per call, the pool's pre-ping, result wrapping), against ~90 µs on
asyncpg's own pool (measured on the 2-core dev machine, 16 readers at once); a relayed
request makes about ten statements. The statements are the ones the stores build once and
run with params (compiled once, `RawStatements`, with SQLAlchemy's own casts rendered in:
`$1::VARCHAR`); everything else (migrations, statements built per call) stays on
SQLAlchemy's engine.

What callers see is unchanged, and the rules are the engine path's (`PostgresDatabase`):
errors come as SQLAlchemy's (`IntegrityError` for a constraint, `DBAPIError` otherwise); a
single statement runs without BEGIN/COMMIT (atomic by itself, one round trip); a
transaction commits whole or not at all. A connection the server dropped since it was
pooled (a restart) is replaced and the call tried once more only where nothing of it can
have run: a read, or a transaction whose BEGIN failed. A write is never retried, since it
may have taken effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa

from imagegate.db.statements import ConditionFailed, Raw, Row, WriteResult

T = TypeVar("T")

# What a pooled connection the server dropped (a restart, pg_terminate_backend) raises when
# it is next used: the server's goodbye, the protocol left mid-message, the socket gone.
_DEAD = (asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.AdminShutdownError,
         asyncpg.exceptions.InterfaceError, asyncpg.exceptions.InternalClientError,
         ConnectionError, OSError)


def _dead(exc: Exception) -> bool:
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(orig, _DEAD)


def dsn_of(url: sa.URL) -> str | None:
    """The asyncpg DSN of a SQLAlchemy URL; None when it has query options, which
    SQLAlchemy's dialect translates and a plain DSN may not mean the same way."""
    if url.query:
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _translate(raw: Raw, values: Sequence[Any], exc: Exception) -> sa.exc.DBAPIError:
    if isinstance(exc, asyncpg.exceptions.IntegrityConstraintViolationError):
        return sa.exc.IntegrityError(raw.sql, values, exc)
    return sa.exc.DBAPIError(raw.sql, values, exc)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A connection's reset on its way back to the pool. asyncpg's default resets the session
    (advisory locks, cursors, LISTENs, settings: one more round trip per use); this pool
    runs prebuilt statements only and changes none of those. An open transaction is still
    rolled back: asyncpg does that before calling this."""


def _rowcount(status: str) -> int:
    """Rows a command touched, from its status: "UPDATE 3", "INSERT 0 1", "DELETE 0"."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _execute(conn: asyncpg.Connection, raw: Raw, params: Mapping[str, Any]
                   ) -> WriteResult:
    values = raw.values(params)
    try:
        if raw.returns_rows:
            rows = [dict(r) for r in await conn.fetch(raw.sql, *values)]
            return WriteResult(rows, len(rows))
        return WriteResult((), _rowcount(await conn.execute(raw.sql, *values)))
    except asyncpg.exceptions.PostgresError as exc:
        raise _translate(raw, values, exc) from exc


class PostgresRaw:
    """Runs `Raw` statements on an asyncpg pool (at most `max_size` connections, opened as
    needed, in addition to SQLAlchemy's pool)."""

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(self._dsn, min_size=0,
                                                       max_size=self._max_size,
                                                       reset=_keep_session)
            return self._pool

    async def read(self, raw: Raw, params: Mapping[str, Any]) -> list[Row]:
        async def run(conn: asyncpg.Connection) -> list[Row]:
            return list((await _execute(conn, raw, params)).rows)

        return await self._with_connection(run, transaction=False)

    async def write(self, raw: Raw, params: Mapping[str, Any]) -> WriteResult:
        """One statement, atomic by itself: no BEGIN/COMMIT around it (one round trip).
        Never retried: its effect may have landed before a connection broke."""

        async def run(conn: asyncpg.Connection) -> WriteResult:
            return await _execute(conn, raw, params)

        return await self._with_connection(run, transaction=False, retry=False)

    async def transaction(self, steps: Sequence[tuple[Raw, Mapping[str, Any], str | None]]
                          ) -> list[WriteResult]:
        """The steps in one transaction; a `require` label whose statement matched no row
        rolls it back and raises `ConditionFailed`."""

        async def run(conn: asyncpg.Connection) -> list[WriteResult]:
            out: list[WriteResult] = []
            for raw, params, require in steps:
                result = await _execute(conn, raw, params)
                if require is not None and result.rowcount == 0:
                    raise ConditionFailed(require)
                out.append(result)
            return out

        return await self._with_connection(run, transaction=True)

    async def _with_connection(self, run: Callable[[asyncpg.Connection], Awaitable[T]], *,
                               transaction: bool, retry: bool = True) -> T:
        pool = await self._get_pool()
        for attempt in (1, 2):
            async with pool.acquire() as conn:
                started = False
                try:
                    if not transaction:
                        started = True
                        return await run(conn)
                    async with conn.transaction():  # BEGIN … COMMIT, ROLLBACK on any raise
                        started = True
                        return await run(conn)
                except Exception as exc:
                    # Nothing ran when the transaction failed to begin, and a read changes
                    # nothing: either is tried once more, on a new connection, when the
                    # server had dropped this one. Past BEGIN a statement may have taken
                    # effect, so nothing there is ever retried.
                    again = (retry and attempt == 1 and _dead(exc)
                             and not (transaction and started))
                    if not again:
                        if isinstance(exc, _DEAD):  # as SQLAlchemy's, like every DB error
                            raise sa.exc.DBAPIError(None, None, exc,
                                                    connection_invalidated=True) from exc
                        raise
                    await pool.expire_connections()
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
