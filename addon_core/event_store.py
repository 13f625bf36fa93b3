"""The lean SQL of webhook intake: one transaction per batch, below the ORM.

A batch reads the installations and webhook tokens of its workspaces, lets the
caller decide which deliveries to keep, and inserts those whose dedupe key is not
stored yet, reporting which keys it inserted: a duplicate inserts nothing.

On SQLite the whole transaction runs in one call on a dedicated thread (one hop
per batch instead of one per statement); on PostgreSQL it runs on an asyncpg
connection from the engine's pool (`INSERT ... ON CONFLICT DO NOTHING RETURNING`),
holding the installation rows `FOR SHARE` so a concurrent DELETED waits for the
commit. The tables are those
of `addon_core.models`; the intake tests run through this module on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.database import SQLITE_BUSY_TIMEOUT_MS, is_sqlite

#: workspace → (status, addon id, path → token digest)
Registry = dict[str, tuple[str, str, dict[str, bytes]]]
#: decides, from the registry, which rows to insert (columns in `EVENT_COLUMNS` order)
Planner = Callable[[Registry], list[tuple[Any, ...]]]

EVENT_COLUMNS = (
    "addon_key",
    "workspace_id",
    "event_type",
    "source",
    "dedupe_key",
    "payload",
    "headers",
    "received_at",
)


class EventStore(Protocol):
    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        """Run one batch transaction; return the dedupe keys actually inserted."""

    async def close(self) -> None: ...


def open_event_store(engine: AsyncEngine) -> EventStore:
    if is_sqlite(engine):
        return SqliteEventStore(make_url(str(engine.url)).database or ":memory:")
    return PostgresEventStore(engine)


def _placeholders(count: int, style: str = "?") -> str:
    return ", ".join(style for _ in range(count))


_SQLITE_INSERT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_placeholders(len(EVENT_COLUMNS))})"
)


class SqliteEventStore:
    """Batches on one sqlite3 connection owned by one worker thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._write, addon_key, workspaces, paths, plan
        )

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT i.workspace_id, i.status, i.addon_id, r.path, r.token_digest "
                "FROM installations AS i LEFT OUTER JOIN webhook_registrations AS r "
                f"ON r.installation_id = i.id AND r.path IN ({_placeholders(len(paths))}) "
                f"WHERE i.addon_key = ? AND i.workspace_id IN ({_placeholders(len(workspaces))})",
                (*paths, addon_key, *workspaces),
            ).fetchall()
            inserts = plan(_registry(rows))
            inserted: set[str] = set()
            if inserts:
                # The write lock is held since BEGIN IMMEDIATE, so keys not found here
                # cannot appear before the insert: one prepared single-row INSERT run
                # by executemany beats a multi-row INSERT ... RETURNING built per batch.
                keys = [row[4] for row in inserts]
                existing = {
                    key
                    for (key,) in conn.execute(
                        "SELECT dedupe_key FROM events WHERE addon_key = ? "
                        f"AND dedupe_key IN ({_placeholders(len(keys))})",
                        (addon_key, *keys),
                    )
                }
                received_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
                conn.executemany(
                    _SQLITE_INSERT,
                    [(*row, received_at) for row in inserts if row[4] not in existing],
                )
                inserted = set(keys) - existing
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return inserted


class PostgresEventStore:
    """Batches on asyncpg connections borrowed from the engine's pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def close(self) -> None:
        return None

    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        async with self._engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: Any = raw.driver_connection
            async with conn.transaction():
                rows = await conn.fetch(
                    "SELECT i.workspace_id, i.status, i.addon_id, r.path, r.token_digest "
                    "FROM installations AS i LEFT OUTER JOIN webhook_registrations AS r "
                    "ON r.installation_id = i.id AND r.path = ANY($1::text[]) "
                    "WHERE i.addon_key = $2 AND i.workspace_id = ANY($3::text[]) "
                    "FOR SHARE OF i",
                    list(paths),
                    addon_key,
                    list(workspaces),
                )
                inserts = plan(_registry(rows))
                if not inserts:
                    return set()
                received_at = datetime.now(UTC)
                columns = list(zip(*inserts, strict=True))
                result = await conn.fetch(
                    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                    "SELECT a, w, e, s, d, p, h, $8 FROM unnest($1::text[], $2::text[], "
                    "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
                    "AS t(a, w, e, s, d, p, h) "
                    "ON CONFLICT (addon_key, dedupe_key) DO NOTHING RETURNING dedupe_key",
                    *(list(c) for c in columns),
                    received_at,
                )
                return {row[0] for row in result}


def _registry(rows: Sequence[Sequence[Any]]) -> Registry:
    found: Registry = {}
    for workspace_id, status, addon_id, path, digest in rows:
        entry = found.setdefault(workspace_id, (status, addon_id, {}))
        if path is not None:
            entry[2][path] = bytes(digest)
    return found
