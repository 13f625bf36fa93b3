"""The lean SQL of webhook intake: one transaction per batch, below the ORM.

A batch reads the installations and webhook tokens of its workspaces, lets the
caller decide which deliveries to keep, then stores those whose dedupe key was
not seen within the dedupe window, and reports which keys it stored. The window
is a bound on purpose: Clockify sends no event id and most payloads carry no
change time, so a genuine return to an earlier state (a tag renamed A → B → A)
has the same body as a redelivery; only time tells them apart. The keys live in
`event_dedupe`, one row per key with the time it was last accepted.

On SQLite the whole transaction runs in one call on a dedicated thread with its
own connection (one hop per batch instead of one per statement), under BEGIN
IMMEDIATE, so a look-up then an insert see one state. On PostgreSQL it runs on an
asyncpg connection from the engine's pool: the installation rows are locked
`FOR SHARE` first (a concurrent DELETED waits for the commit) and the registrations
read after the lock, and the dedupe upsert settles races between replicas.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.storage.database import configure_sqlite_connection, is_sqlite

#: workspace → (status, addon id, path → token digest)
Registry = dict[str, tuple[str, str, dict[str, bytes]]]
#: decides, from the registry, which rows to store (columns in `EVENT_COLUMNS` order,
#: `received_at` excepted: the store stamps the batch)
Planner = Callable[[Registry], list[tuple[Any, ...]]]

EVENT_COLUMNS = (
    "addon_key",
    "workspace_id",
    "event_type",
    "source",
    "dedupe_key",
    "payload",
    "headers",
    "endpoint_id",
    "received_at",
)
_WORKSPACE, _KEY = 1, 4  # positions in a planned row

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite


class EventStore(Protocol):
    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        """Run one batch transaction; return the dedupe keys of the events stored."""

    async def close(self) -> None: ...


def open_event_store(
    engine: AsyncEngine, *, dedupe_window: timedelta, job_attempts: int = 8
) -> EventStore:
    if is_sqlite(engine):
        path = make_url(str(engine.url)).database or ":memory:"
        return SqliteEventStore(path, dedupe_window, job_attempts)
    return PostgresEventStore(engine, dedupe_window, job_attempts)


def _placeholders(count: int) -> str:
    return ", ".join("?" for _ in range(count))


_SQLITE_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_placeholders(len(EVENT_COLUMNS))})"
)
#: A `flow.dispatch` job per event stored, in the same transaction, for workspaces with a
#: live flow: the event is then processed even if the process dies right after the commit.
#: Jobs of one entity (the payload's `id`) run in order. The job carries the request id
#: the event's request came with (addon_core.correlation keeps it in the stored headers).
_FLOW_WORKSPACE = (
    "EXISTS (SELECT 1 FROM flows AS f WHERE f.addon_key = e.addon_key "
    "AND f.workspace_id = e.workspace_id AND f.enabled AND f.paused_reason IS NULL)"
)
_JOB_COLUMNS = (
    "INSERT INTO jobs (addon_key, workspace_id, kind, ordering_key, payload, status, "
    "attempts, max_attempts, run_at, created_at, updated_at) "
)
_SQLITE_INSERT_JOBS = (
    _JOB_COLUMNS + "SELECT e.addon_key, e.workspace_id, 'flow.dispatch', "
    "e.workspace_id || ':' || COALESCE(json_extract(e.payload, '$.id'), 'event-' || e.id), "
    "json_object('event_id', e.id, 'request_id', json_extract(e.headers, '$.\"x-request-id\"'), "
    "'traceparent', json_extract(e.headers, '$.traceparent')), "
    "'queued', 0, ?, ?, ?, ? "
    f"FROM events AS e WHERE e.id > ? AND {_FLOW_WORKSPACE}"
)
_SQLITE_REMEMBER_KEY = (
    "INSERT INTO event_dedupe (addon_key, dedupe_key, workspace_id, seen_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (addon_key, dedupe_key) DO UPDATE "
    "SET seen_at = excluded.seen_at, workspace_id = excluded.workspace_id"
)


class SqliteEventStore:
    """Batches on one sqlite3 connection owned by one worker thread."""

    def __init__(self, path: str, dedupe_window: timedelta, job_attempts: int) -> None:
        self._path = path
        self._window = dedupe_window
        self._job_attempts = job_attempts
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
            self._conn = sqlite3.connect(self._path, isolation_level=None)
            configure_sqlite_connection(self._conn)
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
            stored = self._store(conn, addon_key, plan(_registry(rows)))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return stored

    def _store(
        self, conn: sqlite3.Connection, addon_key: str, rows: list[tuple[Any, ...]]
    ) -> set[str]:
        if not rows:
            return set()
        # The write lock is held since BEGIN IMMEDIATE: a key not seen here cannot
        # appear before the insert, so prepared single-row statements run by
        # executemany do (cheaper than a multi-row INSERT ... RETURNING per batch).
        now = datetime.now(UTC)
        keys = [row[_KEY] for row in rows]
        seen = {
            key
            for (key,) in conn.execute(
                "SELECT dedupe_key FROM event_dedupe WHERE addon_key = ? "
                f"AND dedupe_key IN ({_placeholders(len(keys))}) AND seen_at >= ?",
                (addon_key, *keys, (now - self._window).strftime(_SQLITE_TIME)),
            )
        }
        fresh = [row for row in rows if row[_KEY] not in seen]
        stamp = now.strftime(_SQLITE_TIME)
        conn.executemany(
            _SQLITE_REMEMBER_KEY, [(addon_key, r[_KEY], r[_WORKSPACE], stamp) for r in fresh]
        )
        (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        conn.executemany(_SQLITE_INSERT_EVENT, [(*row, stamp) for row in fresh])
        conn.execute(_SQLITE_INSERT_JOBS, (self._job_attempts, stamp, stamp, stamp, last_id))
        return {row[_KEY] for row in fresh}


class PostgresEventStore:
    """Batches on asyncpg connections borrowed from the engine's pool."""

    def __init__(self, engine: AsyncEngine, dedupe_window: timedelta, job_attempts: int) -> None:
        self._engine = engine
        self._window = dedupe_window
        self._job_attempts = job_attempts

    async def close(self) -> None:
        return None

    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> set[str]:
        async with self._engine.connect() as sa_conn:
            raw = await sa_conn.get_raw_connection()
            conn: Any = raw.driver_connection
            async with conn.transaction():
                installations = await conn.fetch(
                    "SELECT id, workspace_id, status, addon_id FROM installations "
                    "WHERE addon_key = $1 AND workspace_id = ANY($2::text[]) FOR SHARE",
                    addon_key,
                    list(workspaces),
                )
                # Read after the lock: a reinstall that committed meanwhile is seen whole.
                registrations = await conn.fetch(
                    "SELECT installation_id, path, token_digest FROM webhook_registrations "
                    "WHERE installation_id = ANY($1::bigint[]) AND path = ANY($2::text[])",
                    [row["id"] for row in installations],
                    list(paths),
                )
                by_installation: dict[int, list[tuple[str, bytes]]] = {}
                for reg in registrations:
                    by_installation.setdefault(reg["installation_id"], []).append(
                        (reg["path"], reg["token_digest"])
                    )
                rows = [
                    (i["workspace_id"], i["status"], i["addon_id"], path, digest)
                    for i in installations
                    for path, digest in by_installation.get(i["id"], [(None, None)])
                ]
                return await self._store(conn, addon_key, plan(_registry(rows)))

    async def _store(self, conn: Any, addon_key: str, rows: list[tuple[Any, ...]]) -> set[str]:
        if not rows:
            return set()
        now = datetime.now(UTC)
        fresh_keys = {
            record[0]
            for record in await conn.fetch(
                "INSERT INTO event_dedupe (addon_key, dedupe_key, workspace_id, seen_at) "
                "SELECT $1, k, w, $4 FROM unnest($2::text[], $3::text[]) AS t(k, w) "
                "ON CONFLICT (addon_key, dedupe_key) DO UPDATE "
                "SET seen_at = EXCLUDED.seen_at, workspace_id = EXCLUDED.workspace_id "
                "WHERE event_dedupe.seen_at < $5 RETURNING dedupe_key",
                addon_key,
                [row[_KEY] for row in rows],
                [row[_WORKSPACE] for row in rows],
                now,
                now - self._window,
            )
        }
        fresh = [row for row in rows if row[_KEY] in fresh_keys]
        if fresh:
            columns = list(zip(*fresh, strict=True))
            await conn.execute(
                f"WITH e AS (INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
                "SELECT a, w, e, s, d, p, h, n, $9 FROM unnest($1::text[], $2::text[], "
                "$3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) "
                "AS t(a, w, e, s, d, p, h, n) "
                "RETURNING id, addon_key, workspace_id, payload, headers) "
                + _JOB_COLUMNS
                + "SELECT e.addon_key, e.workspace_id, 'flow.dispatch', e.workspace_id || ':' || "
                "COALESCE(e.payload::json ->> 'id', 'event-' || e.id), "
                "json_build_object('event_id', e.id, "
                "'request_id', e.headers::json ->> 'x-request-id', "
                "'traceparent', e.headers::json ->> 'traceparent'), "
                "'queued', 0, $10, $9, $9, $9 "
                f"FROM e WHERE {_FLOW_WORKSPACE}",
                *(list(c) for c in columns),
                now,
                self._job_attempts,
            )
        return fresh_keys


def _registry(rows: Sequence[Sequence[Any]]) -> Registry:
    found: Registry = {}
    for workspace_id, status, addon_id, path, digest in rows:
        entry = found.setdefault(workspace_id, (status, addon_id, {}))
        if path is not None:
            entry[2][path] = bytes(digest)
    return found
