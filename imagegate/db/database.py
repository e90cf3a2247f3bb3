"""One small interface over the two databases: run a read, run a write.

Stores (tasks, keys) build SQLAlchemy Core statements and hand them here; how they are
executed differs per backend:

- PostgreSQL: SQLAlchemy's async engine on asyncpg (a native asyncio driver).
- SQLite: SQLAlchemy's *sync* engine on the stdlib driver. Writes run on one dedicated thread
  (SQLite has one writer anyway, so this also serializes them without a lock), which commits
  the transactions queued meanwhile together (`sqlite_writer.py`: group commit, each
  transaction still its own). Reads run inline on the event loop: in WAL mode a reader never
  waits for a writer, and a primary-key lookup takes ~10 µs. Measured on the 2-core dev
  machine, the aiosqlite driver this replaced made 5 thread hand-offs per statement and took
  ~1.6 ms per task read, which capped task polling near 500 requests/s; a read here takes
  ~0.05 ms.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from imagegate.db.postgres_raw import PostgresRaw, dsn_of
from imagegate.db.sqlite_writer import SqliteWriter
from imagegate.db.statements import ConditionFailed as ConditionFailed
from imagegate.db.statements import Params as Params
from imagegate.db.statements import Raw as Raw
from imagegate.db.statements import RawStatements
from imagegate.db.statements import Row as Row
from imagegate.db.statements import Step as Step
from imagegate.db.statements import WriteResult as WriteResult
from imagegate.secret_files import private_dir, private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process of one deployment.
_PG_MIGRATION_LOCK = 0x1A9E6A7E

Execute = Callable[[sa.Connection, sa.Executable, Params], "WriteResult"]


def _execute(conn: sa.Connection, stmt: sa.Executable, params: Params) -> WriteResult:
    return _write_result(conn.execute(stmt, params))


def _run_steps(conn: sa.Connection, steps: Sequence[Step], execute: Execute = _execute
               ) -> list[WriteResult]:
    out: list[WriteResult] = []
    for step in steps:
        result = execute(conn, step.stmt, step.params)
        if step.require is not None and result.rowcount == 0:
            raise ConditionFailed(step.require)
        out.append(result)
    return out


class Database(abc.ABC):
    """What the stores need from a database."""

    dialect: str

    @abc.abstractmethod
    async def read(self, stmt: sa.Executable, params: Params = None) -> Sequence[Row]:
        """Run a SELECT; rows as mappings. Hot paths pass a statement built once with
        `bindparam`s plus `params`: building a statement costs more than running it."""

    @abc.abstractmethod
    async def write(self, stmt: sa.Executable, params: Params = None) -> WriteResult:
        """Run one statement in its own committed transaction."""

    @abc.abstractmethod
    async def transaction(self, steps: Sequence[Step], *, new_work: bool = False
                          ) -> list[WriteResult]:
        """Run `steps` in order in one transaction: all commit, or (on an exception or a
        failed `require`) none do. The statements are fixed up front, so a transaction never
        holds a connection across an await on something else. `new_work`: it admits new
        work (a task's creation), and may wait behind the transactions of work admitted
        before (SQLite's one writer orders them so; see `sqlite_writer.py`)."""

    @abc.abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to head; safe to run from several processes at once."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close connections and threads."""


def _upgrade(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


def _write_result(result: sa.CursorResult[Any]) -> WriteResult:
    rows = [dict(r._mapping) for r in result.fetchall()] if result.returns_rows else []
    return WriteResult(rows, result.rowcount)


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        # No pool_pre_ping: on asyncpg it is three round trips (BEGIN; ";"; ROLLBACK) on
        # every checkout, as many as the statement it guards. A connection the server closed
        # (a restart, an idle timeout) is seen by asyncpg as it happens and replaced at
        # checkout for free (`_replace_if_closed`); a read that still meets a dead one is
        # run again once on a fresh connection.
        self.engine: AsyncEngine = create_async_engine(url, pool_size=10, max_overflow=20)
        sa.event.listen(self.engine.sync_engine, "checkout", _replace_if_closed)
        # `read` and `write` run one statement, atomic by itself: without BEGIN and
        # COMMIT/ROLLBACK around it, one round trip instead of three (asyncpg's BEGIN and
        # COMMIT were a quarter of a relayed request's CPU). The pool is `engine`'s.
        self._single: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Prebuilt statements run on asyncpg directly (`postgres_raw.py`), by the same
        # rules; without a plain DSN for the URL everything goes through the engine.
        dsn = dsn_of(self.engine.url)
        self._raw = None if dsn is None else PostgresRaw(dsn)
        self._statements = RawStatements(self.engine.dialect)

    async def read(self, stmt: sa.Executable, params: Params = None) -> Sequence[Row]:
        if params is not None and self._raw is not None:
            raw = self._statements.get(stmt)
            if raw is not None:
                return await self._raw.read(raw, params)
        try:
            return await self._read(stmt, params)
        except sa.exc.DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return await self._read(stmt, params)  # the pool has dropped the dead one

    async def _read(self, stmt: sa.Executable, params: Params) -> Sequence[Row]:
        async with self._single.connect() as conn:
            result = await conn.execute(stmt, params)
            return [r._mapping for r in result.fetchall()]

    async def write(self, stmt: sa.Executable, params: Params = None) -> WriteResult:
        if params is not None and self._raw is not None:
            raw = self._statements.get(stmt)
            if raw is not None:
                return await self._raw.write(raw, params)
        async with self._single.connect() as conn:
            return _write_result(await conn.execute(stmt, params))

    async def transaction(self, steps: Sequence[Step], *, new_work: bool = False
                          ) -> list[WriteResult]:
        if self._raw is not None:
            raws = [(self._statements.get(s.stmt) if s.params is not None else None, s)
                    for s in steps]
            if all(raw is not None for raw, _ in raws):
                return await self._raw.transaction(
                    [(raw, s.params or {}, s.require) for raw, s in raws if raw is not None])
        async with self.engine.begin() as conn:
            return await conn.run_sync(_run_steps, steps)

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def aclose(self) -> None:
        if self._raw is not None:
            await self._raw.aclose()
        await self.engine.dispose()


def _replace_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Pool checkout hook: a connection asyncpg knows to be closed is not handed out; the
    pool discards it and checks out another (SQLAlchemy's DisconnectionError protocol)."""
    if dbapi_conn.driver_connection.is_closed():
        raise sa.exc.DisconnectionError("the server closed this connection")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers (task polls) run while a writer commits; busy_timeout makes a second
    # process (the `keys` CLI next to a running server) wait instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        # Created owner-only before SQLite opens it: SQLite gives a new database 0644, and its
        # -wal and -shm files take the database file's mode. It holds webhook secrets.
        private_dir(path.parent)
        private_file(path)
        # check_same_thread=False: the read connection is created here but used on the loop,
        # the write connection lives on the writer thread; neither is ever shared.
        self.engine = sa.create_engine(
            f"sqlite:///{path}",
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=sa.pool.NullPool,
        )
        sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._writer = SqliteWriter(self.engine.connect)
        self._read_conn: sa.Connection | None = None
        self._statements = RawStatements(self.engine.dialect)

    def _reader(self) -> sa.Connection:
        if self._read_conn is None:
            self._read_conn = self.engine.connect()
        return self._read_conn

    async def read(self, stmt: sa.Executable, params: Params = None) -> Sequence[Row]:
        if params is not None:
            raw = self._statements.get(stmt)
            if raw is not None:
                return self._read_raw(raw, params)
        conn = self._reader()
        try:
            return [r._mapping for r in conn.execute(stmt, params).fetchall()]
        finally:
            # End the read transaction at once: an open one would pin an old WAL snapshot
            # and every later read would miss the writer's commits.
            conn.rollback()

    def _execute_raw(self, conn: sa.Connection, stmt: sa.Executable, params: Params
                     ) -> WriteResult:
        """A write on the writer thread. Statements built once (those run with `params`) go
        to the driver as their compiled SQL: ~10 µs against ~70 µs through SQLAlchemy, and a
        task's finish is half a dozen of them."""
        raw = self._statements.get(stmt) if params is not None else None
        if raw is None or params is None:
            return _execute(conn, stmt, params)
        cursor = raw.execute(conn.connection.driver_connection, params)
        try:
            if cursor.description is None:
                return WriteResult((), cursor.rowcount)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
            # RETURNING rows: sqlite3 counts them only once they are fetched.
            return WriteResult(rows, len(rows))
        finally:
            cursor.close()

    def _read_raw(self, raw: Raw, params: Mapping[str, Any]) -> list[Row]:
        cursor = raw.execute(self._reader().connection.driver_connection, params)
        try:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            cursor.close()

    async def write(self, stmt: sa.Executable, params: Params = None) -> WriteResult:
        return await self._writer.run(lambda conn: self._execute_raw(conn, stmt, params))

    async def transaction(self, steps: Sequence[Step], *, new_work: bool = False
                          ) -> list[WriteResult]:
        return await self._writer.run(lambda conn: _run_steps(conn, steps, self._execute_raw),
                                      new_work=new_work)

    async def migrate(self) -> None:
        await self._writer.run(_upgrade, alone=True)

    async def aclose(self) -> None:
        await self._writer.aclose()
        if self._read_conn is not None:
            self._read_conn.close()
            self._read_conn = None
        self.engine.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite://` / `sqlite+aiosqlite://` / `sqlite+pysqlite://` URL."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        raise ValueError("SQLite needs a file path (an in-memory database is per connection)")
    return Path(path)


def open_database(url: str) -> Database:
    """The backend for a URL: SQLite files or PostgreSQL."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteDatabase(path)
    if url.startswith(("postgresql", "postgres")):
        return PostgresDatabase(url)
    raise ValueError(f"unsupported database URL scheme: {url.split(':', 1)[0]}")


async def read_scalar(db: Database, stmt: sa.Executable) -> Any:
    rows = await db.read(stmt)
    return next(iter(rows[0].values())) if rows else None
