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

The same transaction counts the events each workspace stored that UTC day
(`event_day_counts`, one upsert per workspace and batch) and marks those past the
workspace's daily quota: they are stored and acknowledged like any other, and get no
`flow.dispatch` job (`addon_core.flows.dispatch` owns that rule and the job's SQL).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.flows.dispatch import enqueue_sql
from addon_core.storage.database import configure_sqlite_connection, is_sqlite

#: workspace → (status, addon id, path → token digest)
Registry = dict[str, tuple[str, str, dict[str, bytes]]]
#: decides, from the registry, which rows to store (columns in `EVENT_COLUMNS` order,
#: `received_at` excepted: the store stamps the batch)
Planner = Callable[[Registry], list[tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What a batch stored: the dedupe keys of its new events, how many of those were past
    their workspace's daily quota, and how many `flow.dispatch` jobs it queued."""

    keys: set[str]
    over_quota: int = 0
    jobs: int = 0


EVENT_COLUMNS = (
    "addon_key",
    "workspace_id",
    "event_type",
    "source",
    "dedupe_key",
    "payload",
    "headers",
    "endpoint_id",
    "over_quota",
    "received_at",
)
_WORKSPACE, _KEY = 1, 4  # positions in a planned row (which ends before `over_quota`)

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime on SQLite


class EventStore(Protocol):
    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> StoredBatch:
        """Run one batch transaction; return what it stored."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoreOptions:
    dedupe_window: timedelta
    job_attempts: int = 8
    #: events a workspace may store a UTC day and run flows on (`{P}QUOTA_EVENTS_PER_DAY`)
    events_per_day: int = 200_000


def open_event_store(engine: AsyncEngine, options: StoreOptions) -> EventStore:
    if is_sqlite(engine):
        path = make_url(str(engine.url)).database or ":memory:"
        return SqliteEventStore(path, options)
    return PostgresEventStore(engine, options)


def over_quota_marks(
    rows: Sequence[Sequence[Any]], totals: Mapping[str, int], limit: int
) -> list[bool]:
    """Mark the rows past the daily quota: of a workspace's `n` new rows, whose day total
    is now `totals[ws]`, the last `totals[ws] - limit` (at most `n`) are over."""
    new = Counter(row[_WORKSPACE] for row in rows)
    over = {ws: min(n, max(0, totals.get(ws, 0) - limit)) for ws, n in new.items()}
    seen: Counter[str] = Counter()
    marks = []
    for row in rows:
        workspace = row[_WORKSPACE]
        seen[workspace] += 1
        marks.append(seen[workspace] > new[workspace] - over[workspace])
    return marks


def utc_day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _placeholders(count: int) -> str:
    return ", ".join("?" for _ in range(count))


_SQLITE_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({_placeholders(len(EVENT_COLUMNS))})"
)
#: A `flow.dispatch` job per event dispatched, in the same transaction: the event is then
#: processed even if the process dies right after the commit.
_SQLITE_INSERT_JOBS = enqueue_sql("sqlite", source="events AS e", max_attempts="?", now="?") + (
    " AND e.id > ?"
)
_SQLITE_COUNT_DAY = (
    "INSERT INTO event_day_counts (addon_key, workspace_id, day, events) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (addon_key, workspace_id, day) DO UPDATE "
    "SET events = events + excluded.events RETURNING events"
)
_SQLITE_REMEMBER_KEY = (
    "INSERT INTO event_dedupe (addon_key, dedupe_key, workspace_id, seen_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (addon_key, dedupe_key) DO UPDATE "
    "SET seen_at = excluded.seen_at, workspace_id = excluded.workspace_id"
)


class SqliteEventStore:
    """Batches on one sqlite3 connection owned by one worker thread."""

    def __init__(self, path: str, options: StoreOptions) -> None:
        self._path = path
        self._options = options
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-sqlite")
        self._conn: sqlite3.Connection | None = None

    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> StoredBatch:
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
    ) -> StoredBatch:
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
    ) -> StoredBatch:
        if not rows:
            return StoredBatch(set())
        # The write lock is held since BEGIN IMMEDIATE: a key not seen here cannot
        # appear before the insert, so prepared single-row statements run by
        # executemany do (cheaper than a multi-row INSERT ... RETURNING per batch).
        now = datetime.now(UTC)
        keys = [row[_KEY] for row in rows]
        window_start = (now - self._options.dedupe_window).strftime(_SQLITE_TIME)
        seen = {
            key
            for (key,) in conn.execute(
                "SELECT dedupe_key FROM event_dedupe WHERE addon_key = ? "
                f"AND dedupe_key IN ({_placeholders(len(keys))}) AND seen_at >= ?",
                (addon_key, *keys, window_start),
            )
        }
        fresh = [row for row in rows if row[_KEY] not in seen]
        if not fresh:
            return StoredBatch(set())
        stamp = now.strftime(_SQLITE_TIME)
        conn.executemany(
            _SQLITE_REMEMBER_KEY, [(addon_key, r[_KEY], r[_WORKSPACE], stamp) for r in fresh]
        )
        day = utc_day(now)
        totals = {
            workspace: conn.execute(_SQLITE_COUNT_DAY, (addon_key, workspace, day, n)).fetchone()[0]
            for workspace, n in sorted(Counter(r[_WORKSPACE] for r in fresh).items())
        }
        marks = over_quota_marks(fresh, totals, self._options.events_per_day)
        (last_id,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()
        conn.executemany(
            _SQLITE_INSERT_EVENT,
            [(*row, over, stamp) for row, over in zip(fresh, marks, strict=True)],
        )
        jobs = conn.execute(
            _SQLITE_INSERT_JOBS, (self._options.job_attempts, stamp, stamp, stamp, last_id)
        ).rowcount
        return StoredBatch({row[_KEY] for row in fresh}, sum(marks), jobs)


#: The whole store of a batch in one round trip. The rows come in as arrays, numbered in
#: their order (`ord`). The new keys are remembered (a key inside the window is a
#: redelivery: the upsert skips it, and settles races between replicas); the rows whose
#: key is new are kept and counted into their workspace's day; the last of a workspace's
#: rows past its daily quota (`over_quota_marks`, in SQL) are marked; the kept rows are
#: inserted in order with a dispatch job each where one is due. It answers each kept
#: row's key and mark, and the jobs queued on every row.
_PG_STORE = (
    "WITH input AS (SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], "
    "$6::text[], $7::text[], $8::text[]) WITH ORDINALITY "
    "AS t(ws, kind, src, dkey, body, hdrs, endpoint, ord)), "
    "fresh AS (INSERT INTO event_dedupe (addon_key, dedupe_key, workspace_id, seen_at) "
    "SELECT $1, dkey, ws, $9 FROM input "
    "ON CONFLICT (addon_key, dedupe_key) DO UPDATE "
    "SET seen_at = EXCLUDED.seen_at, workspace_id = EXCLUDED.workspace_id "
    "WHERE event_dedupe.seen_at < $10 RETURNING dedupe_key), "
    "kept AS (SELECT input.* FROM input JOIN fresh ON fresh.dedupe_key = input.dkey), "
    "counted AS (INSERT INTO event_day_counts (addon_key, workspace_id, day, events) "
    "SELECT $1, ws, $11, count(*)::integer FROM kept GROUP BY ws ORDER BY ws "
    "ON CONFLICT (addon_key, workspace_id, day) DO UPDATE "
    "SET events = event_day_counts.events + EXCLUDED.events RETURNING workspace_id, events), "
    "marked AS (SELECT kept.*, row_number() OVER per_ws > count(*) OVER per_ws "
    "- LEAST(count(*) OVER per_ws, GREATEST(0, counted.events - $12)) AS past_quota "
    "FROM kept JOIN counted ON counted.workspace_id = kept.ws "
    "WINDOW per_ws AS (PARTITION BY kept.ws ORDER BY kept.ord "
    "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)), "
    f"e AS (INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    "SELECT $1, ws, kind, src, dkey, body, hdrs, endpoint, past_quota, $9 FROM marked ORDER BY ord "
    "RETURNING id, addon_key, workspace_id, payload, headers, over_quota), "
    "jobs AS ("
    + enqueue_sql("postgresql", source="e", max_attempts="$13", now="$9")
    + " RETURNING 1) "
    "SELECT dkey, past_quota, (SELECT count(*) FROM jobs)::integer AS jobs FROM marked"
)


class PostgresEventStore:
    """Batches on asyncpg connections borrowed from the engine's pool."""

    def __init__(self, engine: AsyncEngine, options: StoreOptions) -> None:
        self._engine = engine
        self._options = options

    async def close(self) -> None:
        return None

    async def write(
        self, addon_key: str, workspaces: Sequence[str], paths: Sequence[str], plan: Planner
    ) -> StoredBatch:
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

    async def _store(self, conn: Any, addon_key: str, rows: list[tuple[Any, ...]]) -> StoredBatch:
        if not rows:
            return StoredBatch(set())
        now = datetime.now(UTC)
        # The planned rows' columns after `addon_key`, as arrays (EVENT_COLUMNS order).
        columns = [list(column) for column in zip(*rows, strict=True)][1:]
        kept = await conn.fetch(
            _PG_STORE,
            addon_key,
            *columns,
            now,
            now - self._options.dedupe_window,
            utc_day(now),
            self._options.events_per_day,
            self._options.job_attempts,
        )
        return StoredBatch(
            {row["dkey"] for row in kept},
            sum(row["past_quota"] for row in kept),
            kept[0]["jobs"] if kept else 0,
        )


def _registry(rows: Sequence[Sequence[Any]]) -> Registry:
    found: Registry = {}
    for workspace_id, status, addon_id, path, digest in rows:
        entry = found.setdefault(workspace_id, (status, addon_id, {}))
        if path is not None:
            entry[2][path] = bytes(digest)
    return found
