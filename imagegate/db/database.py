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
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from imagegate.db.sqlite_writer import SqliteWriter
from imagegate.secret_files import private_dir, private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every process of one deployment.
_PG_MIGRATION_LOCK = 0x1A9E6A7E

T = TypeVar("T")
Row = Mapping[Any, Any]
Params = Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Raw:
    """A prebuilt statement as the SQLite driver runs it: its SQL, the order its parameters
    go in, the defaults of those it may be run without, and the bind processors to apply
    (None: none has one)."""

    sql: str
    positions: tuple[str, ...]
    defaults: dict[str, Any]
    processors: tuple[Callable[[Any], Any] | None, ...] | None

    def execute(self, driver: Any, params: Mapping[str, Any]) -> Any:
        """Run on a sqlite3 connection; a driver error is raised as SQLAlchemy would raise
        it (callers catch `sqlalchemy.exc.IntegrityError` for a lost insert race)."""
        values = self.values(params)
        try:
            return driver.execute(self.sql, values)
        except sqlite3.Error as exc:
            raise sa.exc.DBAPIError.instance(self.sql, values, exc, sqlite3.Error) from exc

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        defaults = self.defaults
        values = [params[p] if p in params else defaults[p] for p in self.positions]
        if self.processors is not None:
            values = [v if proc is None or v is None else proc(v)
                      for v, proc in zip(values, self.processors, strict=True)]
        return values


@dataclass(frozen=True, slots=True)
class WriteResult:
    rows: Sequence[Row]  # RETURNING rows, if the statement had a RETURNING clause
    rowcount: int


@dataclass(frozen=True, slots=True)
class Step:
    """One statement of a `transaction`. With `require` set, a step that matches no row
    rolls the whole transaction back and raises `ConditionFailed(require)`: this is how a
    conditional update ("balance >= hold", "status is still queued") guards the statements
    after it without a read-modify-write."""

    stmt: sa.Executable
    params: Params = None
    require: str | None = None


class ConditionFailed(Exception):
    """A `Step.require` matched no row; nothing of the transaction was kept."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


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
    async def transaction(self, steps: Sequence[Step]) -> list[WriteResult]:
        """Run `steps` in order in one transaction: all commit, or (on an exception or a
        failed `require`) none do. The statements are fixed up front, so a transaction never
        holds a connection across an await on something else."""

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
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=10, max_overflow=20, pool_pre_ping=True
        )

    async def read(self, stmt: sa.Executable, params: Params = None) -> Sequence[Row]:
        async with self.engine.connect() as conn:
            result = await conn.execute(stmt, params)
            return [r._mapping for r in result.fetchall()]

    async def write(self, stmt: sa.Executable, params: Params = None) -> WriteResult:
        async with self.engine.begin() as conn:
            return _write_result(await conn.execute(stmt, params))

    async def transaction(self, steps: Sequence[Step]) -> list[WriteResult]:
        async with self.engine.begin() as conn:
            return await conn.run_sync(_run_steps, steps)

    async def migrate(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def aclose(self) -> None:
        await self.engine.dispose()


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
        # Prebuilt statements (those read with params) compiled once to SQL text: running the
        # text on the raw driver costs ~10 µs against ~70 µs through SQLAlchemy's execute.
        # Keyed by the statement object, which its owner keeps for its lifetime.
        self._compiled: dict[int, tuple[sa.Executable, Raw | None]] = {}

    def _reader(self) -> sa.Connection:
        if self._read_conn is None:
            self._read_conn = self.engine.connect()
        return self._read_conn

    def _raw(self, stmt: sa.Executable) -> Raw | None:
        hit = self._compiled.get(id(stmt))
        if hit is not None and hit[0] is stmt:
            return hit[1]  # None: compiled once and found unfit, not compiled again
        if len(self._compiled) >= 1024:
            # Only statements built once belong here; one built per call with params by
            # mistake must not grow this forever.
            self._compiled.clear()
        raw = self._compile(stmt)
        self._compiled[id(stmt)] = (stmt, raw)
        return raw

    def _compile(self, stmt: sa.Executable) -> Raw | None:
        dialect = self.engine.dialect
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        positions = compiled.positiontup
        # Plain statements only: no type processing on results (true of every column type
        # this schema uses on SQLite). Binds may have processors (Float's float()): they
        # are applied here as SQLAlchemy would.
        if positions is None or compiled._result_columns is None:  # pragma: no cover
            return None
        if compiled.post_compile_params or compiled.literal_execute_params:
            return None  # `IN (...)` expands per call: SQLAlchemy's job
        processors = tuple(compiled.binds[name].type._cached_bind_processor(dialect)
                           for name in positions)
        return Raw(str(compiled), tuple(positions), dict(compiled.params),
                   processors if any(processors) else None)

    async def read(self, stmt: sa.Executable, params: Params = None) -> Sequence[Row]:
        if params is not None:
            raw = self._raw(stmt)
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
        raw = self._raw(stmt) if params is not None else None
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

    async def transaction(self, steps: Sequence[Step]) -> list[WriteResult]:
        return await self._writer.run(lambda conn: _run_steps(conn, steps, self._execute_raw))

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
