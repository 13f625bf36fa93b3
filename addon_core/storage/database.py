"""The database boundary: engines, sessions, migrations, and driver errors translated.

SQLite (the default) runs in WAL mode with a busy timeout and foreign keys on;
PostgreSQL runs through asyncpg. One Alembic history serves both.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from addon_core.errors import ServiceUnavailableError
from addon_core.resources import resource_dir

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_SECONDS = 5.0
COMMAND_TIMEOUT_SECONDS = 30.0


class DatabaseUnavailableError(ServiceUnavailableError):
    """The database cannot be reached or refused the work; nothing was committed."""


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    """Create the async engine for a `sqlite+aiosqlite` or `postgresql+asyncpg` URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin)
        return engine
    return create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=CONNECT_TIMEOUT_SECONDS,
        # Bounded waits: a database that accepts connections but never answers must
        # turn into 503s within seconds, not hang every request behind it.
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": COMMAND_TIMEOUT_SECONDS,
        },
    )


def configure_sqlite_connection(connection: Any) -> None:
    """Set the pragmas every SQLite connection of the add-ons runs with.

    WAL lets readers run beside the writer; `synchronous=FULL` makes each commit
    durable on disk before it is acknowledged (an accepted event must survive a
    power loss); the busy timeout waits for the writer instead of failing.
    """
    cursor = connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
        "synchronous=FULL",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


#: The page cache of each pooled SQLite connection, in KiB. SQLite's default (2 MiB) times
#: the pool's up to 15 connections let a serving process grow by 30 MiB as the database
#: grows; the pages stay in the operating system's cache either way. The intake's own
#: connection keeps the default: its inserts touch index pages all over.
POOLED_SQLITE_CACHE_KIB = 512


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so that `_begin` owns BEGIN.
    dbapi_connection.isolation_level = None
    configure_sqlite_connection(dbapi_connection)
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA cache_size=-{POOLED_SQLITE_CACHE_KIB}")
    cursor.close()


def _begin(connection: Connection) -> None:
    # A writing transaction takes the write lock at BEGIN (see `for_writing`): it cannot
    # be refused half-way (SQLITE_BUSY on upgrade) and what it read stays true until
    # it commits. Readers begin deferred and see a WAL snapshot.
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """Return the engine for transactions that read, then write on what they read."""
    if is_sqlite(engine):
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


#: What the drivers and the network raise when the database is unreachable or refuses
#: work, through SQLAlchemy or below it (the intake's event store).
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    DBAPIError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # asyncpg's own protocol errors (a connection in a bad state) and SQLAlchemy's pool
    # timeout (every connection busy) are the database being unavailable too.
    asyncpg.InternalClientError,
    PoolTimeoutError,
    OSError,
    TimeoutError,
)


@asynccontextmanager
async def translate_errors(action: str) -> AsyncIterator[None]:
    """Turn a driver or connection error into `DatabaseUnavailableError`."""
    try:
        yield
    except DATABASE_ERRORS as exc:
        log.error("database error while %s: %s", action, exc.__class__.__name__, exc_info=exc)
        raise DatabaseUnavailableError(
            f"the database is unavailable while {action}; retry later"
        ) from exc


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Build the Alembic configuration of the one migration history."""
    # Alembic is imported where it is used: a serving process never runs it (about 0.3 s
    # and 10 MB of imports off every start-up).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resource_dir("alembic")))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


#: An arbitrary constant naming the migration lock ("clockify-addons" in ASCII, truncated).
_MIGRATION_LOCK = 0x636C6F636B6966


#: `revision = "…"` and `down_revision = "…"` (or a tuple of them, for a merge) as Alembic
#: writes them at the top of a migration file.
_REVISION_LINE = re.compile(r"^(down_revision|revision)\b[^=]*=(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([^"']+)["']""")


def head_revision() -> str | None:
    """The latest revision of the migration history, read from the migration files' headers.

    Every start-up needs it (`/readyz` compares the database with it); reading the two
    header lines of each file spares the process Alembic's imports. A history the lines do
    not describe plainly (several heads, a file without them) is left to Alembic.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (resource_dir("alembic") / "versions").glob("*.py"):
        found = dict.fromkeys(("revision", "down_revision"), "")
        for name, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            found[name] = found[name] or value
        ids = _QUOTED.findall(found["revision"])
        if len(ids) != 1:
            return _alembic_head()
        revisions.add(ids[0])
        parents.update(_QUOTED.findall(found["down_revision"]))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _alembic_head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Apply every pending migration (none, without loading Alembic, when at the head)."""
    # `serve` migrates at every start: a database already at the head costs one read.
    if await current_revision(engine) == head_revision():
        return
    async with engine.begin() as conn:
        if not is_sqlite(engine):
            # Replicas starting together migrate one at a time (SQLite: BEGIN IMMEDIATE).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(lambda sync: _alembic_command().upgrade(alembic_config(sync), "head"))


async def downgrade_to(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(
            lambda sync: _alembic_command().downgrade(alembic_config(sync), revision)
        )


def _alembic_command() -> Any:
    from alembic import command

    return command


async def probe_write(engine: AsyncEngine) -> None:
    """Commit a write that changes nothing: it fails on a full or read-only disk."""
    async with for_writing(engine).begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))


async def current_revision(engine: AsyncEngine) -> str | None:
    """Read the revision the database is at (None if it was never migrated)."""
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
        if not has_table:
            return None
        result = await conn.execute(text("SELECT version_num FROM alembic_version"))
        return result.scalar_one_or_none()
