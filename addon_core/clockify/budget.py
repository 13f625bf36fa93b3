"""The Clockify request budget shared by every process on one PostgreSQL database.

`budget_slots` keeps, per (add-on, workspace), the times of the latest `limit` calls: a call
may start once the oldest is a second old (database clock). A call held for its whole flight
(`hold`) stamps its slot `hold_seconds` ahead, so no one takes it while it is in flight, and
`release` stamps it again with the time the answer came back; a process that dies mid-call
only keeps that slot until the stamp passes. Releases are written in batches, a round trip
for all the calls that answered within `release_delay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from addon_core.storage.database import DATABASE_ERRORS, DatabaseUnavailableError, is_sqlite

log = logging.getLogger(__name__)

#: How soon to ask again after a refusal that raced another process's grant; its wait,
#: read from the statement's snapshot, can be stale and zero.
RETRY_FLOOR_SECONDS = 0.001

#: The longest a refusal asks to wait: a second, the window.
MAX_WAIT_SECONDS = 1.0

# Slots start at the epoch, i.e. free; only slots below the current limit count, so a
# lowered limit still holds and a raised one adds its slots on the next grant.
_CREATE_SLOTS = """
INSERT INTO budget_slots (addon_key, workspace_id, slot, granted_at)
SELECT $1, $2, slot, 'epoch'::timestamptz FROM generate_series(0, $3::int - 1) AS slot
ON CONFLICT DO NOTHING
"""

# One round trip per grant. SKIP LOCKED lets concurrent grants take different slots;
# a slot another process stamped after this statement's snapshot comes back (READ
# COMMITTED re-reads a row once locked) at its new time, and the UPDATE checks the
# time on that locked row, so no slot is granted twice within a second. The wait is the
# snapshot's oldest slot + 1 s - now: never longer than the real wait.
_GRANT = """
WITH oldest AS (
    SELECT slot FROM budget_slots
    WHERE addon_key = $1 AND workspace_id = $2 AND slot < $3::int
    ORDER BY granted_at, slot
    LIMIT $5::int
    FOR UPDATE SKIP LOCKED
), granted AS (
    UPDATE budget_slots AS b SET granted_at = clock_timestamp() + make_interval(secs => $4)
    FROM oldest
    WHERE b.addon_key = $1 AND b.workspace_id = $2 AND b.slot = oldest.slot
      AND b.granted_at <= clock_timestamp() - interval '1 second'
    RETURNING b.granted_at, b.slot
), seen AS (
    SELECT count(*) AS slots, min(granted_at) AS oldest_at FROM budget_slots
    WHERE addon_key = $1 AND workspace_id = $2 AND slot < $3::int
)
SELECT (SELECT array_agg(granted_at ORDER BY slot) FROM granted) AS granted_at,
       (SELECT array_agg(slot ORDER BY slot) FROM granted) AS slot,
       seen.slots,
       extract(epoch FROM seen.oldest_at + interval '1 second' - clock_timestamp())::float8
           AS wait
FROM seen
"""

# Stamp held slots with the times their calls ended, unless taken over meanwhile. A call's
# end is given as its age (seconds on this process's monotonic clock, measured just before
# sending): the database's now minus that age is never before the answer came back, so the
# slot still counts the call until its answer, whatever the clock skew between hosts.
_RELEASE = """
UPDATE budget_slots AS b SET granted_at = clock_timestamp() - make_interval(secs => r.age)
FROM unnest($2::text[], $3::int[], $4::timestamptz[], $5::float8[])
    AS r(workspace_id, slot, granted_at, age)
WHERE b.addon_key = $1 AND b.workspace_id = r.workspace_id AND b.slot = r.slot
  AND b.granted_at = r.granted_at
"""

#: How long a finished call's release may wait to be written with others. Below a second
#: it costs no rate: the slot is stamped with the answer's time and frees a second after it.
RELEASE_DELAY_SECONDS = 0.1

#: What a grant may meet: the driver's errors (asyncpg raises InternalClientError on a
#: connection the server terminated while it was idle), and the engine's pool running dry.
_ERRORS: tuple[type[Exception], ...] = (
    *DATABASE_ERRORS,
    asyncpg.InternalClientError,
    sqlalchemy.exc.TimeoutError,
)


@dataclass(frozen=True, slots=True)
class Grant:
    """A shared budget's answer: a call slot, or how long to wait before asking again."""

    #: when the slot was taken (the database clock); None when refused
    granted_at: datetime | None
    #: 0.0 when granted, else the seconds to wait (at least RETRY_FLOOR_SECONDS)
    wait: float
    #: the slot taken, for `release`
    slot: int | None = None
    #: more slots taken by the same statement (`want` > 1), each to be released
    more: tuple[Grant, ...] = ()

    @property
    def granted(self) -> bool:
        return self.granted_at is not None


class SharedBudget(Protocol):
    """A request budget per workspace shared by every process of an add-on."""

    async def try_grant(self, workspace_id: str, *, hold: bool = False, want: int = 1) -> Grant:
        """Take a call slot for the workspace now, or say how long until one may be free.

        With `hold`, the slot stays taken until `release` (the call's answer is back),
        and up to `want` slots may be taken at once (the others in `Grant.more`).
        """
        ...

    async def release(self, workspace_id: str, grant: Grant) -> None:
        """Count a held call from now, the time its answer came back."""
        ...

    async def flush(self) -> None:
        """Write the releases not written yet."""
        ...

    async def aclose(self) -> None:
        """Release what the budget holds (connections)."""
        ...


@dataclass(slots=True)
class _Held:
    connection: AsyncConnection
    driver: Any  # the asyncpg connection
    grant: Any  # the prepared _GRANT statement


class PostgresBudget:
    """`limit` calls per workspace in any second, across processes, kept in `budget_slots`.

    Each grant runs one prepared statement on a connection the budget keeps between
    grants: checking one out of the engine's pool per grant would cost a pre-ping and a
    prepare, several times the statement itself. It keeps up to `connections` and runs at
    most that many statements at once; the others wait for a kept connection, so forty
    saturated workspaces do not drain the engine's pool (which timed out at 20). When
    the database cannot answer, the grant fails with `DatabaseUnavailableError` (503).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        addon_key: str,
        limit: int,
        *,
        connections: int = 4,
        hold_seconds: float = 60.0,
        release_delay: float = RELEASE_DELAY_SECONDS,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the shared budget's limit must be at least 1 (got {limit})")
        if not 0.0 <= release_delay < 1.0:
            raise ValueError(f"the release delay must be within [0, 1) s (got {release_delay})")
        self.addon_key = addon_key
        self.limit = limit
        self._engine = engine
        #: at most `connections` statements at once, each on a connection kept between them
        self._free = asyncio.Semaphore(connections)
        self.hold_seconds = hold_seconds
        self.release_delay = release_delay
        #: statements sent to the database (one round trip each), for the benchmark
        self.round_trips = 0
        self._idle: list[_Held] = []
        self._closed = False
        #: (workspace, slot, granted_at, monotonic time the call ended) not written yet
        self._pending: list[tuple[str, int, datetime, float]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def try_grant(self, workspace_id: str, *, hold: bool = False, want: int = 1) -> Grant:
        """Take a call slot for the workspace now, or say how long until one may be free.

        A slot taken without `hold` counts from now, so only a held grant takes more than
        one (`want`): each of those counts from its own call's answer.
        """
        reused = bool(self._idle)
        held_for = self.hold_seconds if hold else 0.0
        want = max(1, min(want, self.limit)) if hold else 1
        try:
            try:
                return await self._grant(workspace_id, held_for, want, fresh=False)
            except _ERRORS:
                if not reused:
                    raise
                # A kept connection may have died while idle (server restart, idle
                # timeout): try once on a fresh one, as the pool's pre-ping would.
                # Repeating a grant is safe: a lost one only wasted a slot.
                return await self._grant(workspace_id, held_for, want, fresh=True)
        except _ERRORS as exc:
            log.error(
                "database error while pacing Clockify calls: %s",
                exc.__class__.__name__,
                exc_info=exc,
            )
            raise DatabaseUnavailableError(
                "the database is unavailable while pacing calls to Clockify; retry later"
            ) from exc

    async def release(self, workspace_id: str, grant: Grant) -> None:
        """Stamp a held slot with now, in the next batch; on an error it frees at its hold's end."""
        if grant.slot is None or grant.granted_at is None:
            return
        self._pending.append((workspace_id, grant.slot, grant.granted_at, time.monotonic()))
        if self._flusher is None and not self._closed:
            self._flusher = asyncio.create_task(self._flush_soon())

    async def flush(self) -> None:
        """Write the releases not written yet, in one statement."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            held = await self._borrow(fresh=False)
        except _ERRORS as exc:
            log.warning("could not release Clockify budget slots: %s", exc.__class__.__name__)
            return
        now = time.monotonic()
        workspaces, slots, stamps, ended = (list(column) for column in zip(*pending, strict=True))
        ages = [now - at for at in ended]
        try:
            self.round_trips += 1
            await held.driver.execute(_RELEASE, self.addon_key, workspaces, slots, stamps, ages)
        except BaseException as exc:
            await self._drop(held)
            if isinstance(exc, _ERRORS):
                log.warning("could not release Clockify budget slots: %s", exc.__class__.__name__)
                return
            raise
        await self._give_back(held)

    async def _flush_soon(self) -> None:
        try:
            # Releases that come in while a batch is being written go in the next one.
            while self._pending:
                await asyncio.sleep(self.release_delay)
                await self.flush()
        finally:
            self._flusher = None

    async def aclose(self) -> None:
        """Write pending releases, return the kept connections (call before disposing)."""
        self._closed = True
        if self._flusher is not None:
            await self._flusher  # a short sleep, then the batch's statement
        await self.flush()
        idle, self._idle = self._idle, []
        for held in idle:
            await _release(held, invalidate=False)

    async def _grant(self, workspace_id: str, held_for: float, want: int, *, fresh: bool) -> Grant:
        held = await self._borrow(fresh=fresh)
        args = (self.addon_key, workspace_id, self.limit, held_for, want)
        try:
            self.round_trips += 1
            row = await held.grant.fetchrow(*args)
            if row["granted_at"] is None and row["slots"] < self.limit:
                # First call for this workspace (or a raised limit, or purged rows).
                self.round_trips += 2
                await held.driver.execute(_CREATE_SLOTS, self.addon_key, workspace_id, self.limit)
                row = await held.grant.fetchrow(*args)
        except BaseException:
            # An error or a cancel mid-statement leaves the connection in an unknown state.
            await self._drop(held)
            raise
        await self._give_back(held)
        if row["granted_at"] is not None:
            grants = [
                Grant(at, 0.0, slot)
                for at, slot in zip(row["granted_at"], row["slot"], strict=True)
            ]
            return Grant(grants[0].granted_at, 0.0, grants[0].slot, tuple(grants[1:]))
        # Held slots are stamped ahead until their calls answer: when they are the oldest,
        # a release may free one any time, so ask again within the window at the latest.
        return Grant(None, min(max(row["wait"] or 0.0, RETRY_FLOOR_SECONDS), MAX_WAIT_SECONDS))

    async def _borrow(self, *, fresh: bool) -> _Held:
        """Take a kept connection, or open one; wait while `connections` statements run."""
        await self._free.acquire()
        try:
            if self._idle and not fresh:
                return self._idle.pop()
            self.round_trips += 2  # the pool's pre-ping (or a connect), and the prepare
            connection = await self._engine.connect()
            try:
                driver: Any = (await connection.get_raw_connection()).driver_connection
                return _Held(connection, driver, await driver.prepare(_GRANT))
            except BaseException:
                await connection.close()
                raise
        except BaseException:
            self._free.release()
            raise

    async def _give_back(self, held: _Held) -> None:
        try:
            if self._closed:
                await _release(held, invalidate=False)
            else:
                self._idle.append(held)
        finally:
            self._free.release()

    async def _drop(self, held: _Held) -> None:
        """Let go of a connection in an unknown state (an error or a cancel mid-statement)."""
        try:
            await _release(held, invalidate=True)
        finally:
            self._free.release()


async def _release(held: _Held, *, invalidate: bool) -> None:
    """Give a kept connection back to the pool, or drop it if its state is unknown."""
    # It is being let go: an error here says less than the one that led here, if any.
    with contextlib.suppress(Exception):
        if invalidate:
            await held.connection.invalidate()
        await held.connection.close()


def open_shared_budget(
    engine: AsyncEngine, addon_key: str, limit: int, *, hold_seconds: float = 60.0
) -> PostgresBudget | None:
    """Return the shared budget for PostgreSQL, or None for SQLite (one process only)."""
    if is_sqlite(engine):
        return None
    return PostgresBudget(engine, addon_key, limit, hold_seconds=hold_seconds)
