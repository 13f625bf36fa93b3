"""The Clockify request budget shared by every process on one PostgreSQL database.

`budget_slots` keeps, per (add-on, workspace), the times of the latest `limit` calls: a call
may start once the oldest is a second old (database clock). A call held for its whole flight
(`hold`) stamps its slot `hold_seconds` ahead, so no one takes it while it is in flight, and
`release` stamps it again when the answer is back; a process that dies mid-call only keeps
that slot until the stamp passes.
"""

from __future__ import annotations

import contextlib
import logging
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
    LIMIT 1
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
SELECT (SELECT granted_at FROM granted) AS granted_at, (SELECT slot FROM granted) AS slot,
       seen.slots,
       extract(epoch FROM seen.oldest_at + interval '1 second' - clock_timestamp())::float8
           AS wait
FROM seen
"""

# Stamp a held slot with the time its call ended, unless it was taken over meanwhile.
_RELEASE = """
UPDATE budget_slots SET granted_at = clock_timestamp()
WHERE addon_key = $1 AND workspace_id = $2 AND slot = $3 AND granted_at = $4
"""

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

    @property
    def granted(self) -> bool:
        return self.granted_at is not None


class SharedBudget(Protocol):
    """A request budget per workspace shared by every process of an add-on."""

    async def try_grant(self, workspace_id: str, *, hold: bool = False) -> Grant:
        """Take a call slot for the workspace now, or say how long until one may be free.

        With `hold`, the slot stays taken until `release` (the call's answer is back).
        """
        ...

    async def release(self, workspace_id: str, grant: Grant) -> None:
        """Count a held call from now, the time its answer came back."""
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
    grants (up to `max_idle` of them): checking one out of the engine's pool per grant
    would cost a pre-ping and a transaction, several times the statement itself. When
    the database cannot answer, the grant fails with `DatabaseUnavailableError` (503).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        addon_key: str,
        limit: int,
        *,
        max_idle: int = 2,
        hold_seconds: float = 60.0,
    ) -> None:
        if limit < 1:
            raise ValueError(f"the shared budget's limit must be at least 1 (got {limit})")
        self.addon_key = addon_key
        self.limit = limit
        self._engine = engine
        self._max_idle = max_idle
        self.hold_seconds = hold_seconds
        self._idle: list[_Held] = []
        self._closed = False

    async def try_grant(self, workspace_id: str, *, hold: bool = False) -> Grant:
        """Take a call slot for the workspace now, or say how long until one may be free."""
        reused = bool(self._idle)
        held_for = self.hold_seconds if hold else 0.0
        try:
            try:
                return await self._grant(workspace_id, held_for, fresh=False)
            except _ERRORS:
                if not reused:
                    raise
                # A kept connection may have died while idle (server restart, idle
                # timeout): try once on a fresh one, as the pool's pre-ping would.
                # Repeating a grant is safe: a lost one only wasted a slot.
                return await self._grant(workspace_id, held_for, fresh=True)
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
        """Stamp a held slot with now; on a database error the slot frees at its hold's end."""
        if grant.slot is None or grant.granted_at is None:
            return
        try:
            held = await self._borrow(fresh=False)
        except _ERRORS as exc:
            log.warning("could not release a Clockify budget slot: %s", exc.__class__.__name__)
            return
        try:
            await held.driver.execute(
                _RELEASE, self.addon_key, workspace_id, grant.slot, grant.granted_at
            )
        except BaseException as exc:
            await _release(held, invalidate=True)
            if isinstance(exc, _ERRORS):
                log.warning("could not release a Clockify budget slot: %s", exc.__class__.__name__)
                return
            raise
        await self._give_back(held)

    async def aclose(self) -> None:
        """Return the kept connections to the engine's pool (call before disposing it)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for held in idle:
            await _release(held, invalidate=False)

    async def _grant(self, workspace_id: str, held_for: float, *, fresh: bool) -> Grant:
        held = await self._borrow(fresh=fresh)
        args = (self.addon_key, workspace_id, self.limit, held_for)
        try:
            row = await held.grant.fetchrow(*args)
            if row["granted_at"] is None and row["slots"] < self.limit:
                # First call for this workspace (or a raised limit, or purged rows).
                await held.driver.execute(_CREATE_SLOTS, self.addon_key, workspace_id, self.limit)
                row = await held.grant.fetchrow(*args)
        except BaseException:
            # An error or a cancel mid-statement leaves the connection in an unknown state.
            await _release(held, invalidate=True)
            raise
        await self._give_back(held)
        if row["granted_at"] is not None:
            return Grant(row["granted_at"], 0.0, row["slot"])
        return Grant(None, max(row["wait"] or 0.0, RETRY_FLOOR_SECONDS))

    async def _borrow(self, *, fresh: bool) -> _Held:
        if self._idle and not fresh:
            return self._idle.pop()
        connection = await self._engine.connect()
        try:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            return _Held(connection, driver, await driver.prepare(_GRANT))
        except BaseException:
            await connection.close()
            raise

    async def _give_back(self, held: _Held) -> None:
        if len(self._idle) < self._max_idle and not self._closed:
            self._idle.append(held)
        else:
            await _release(held, invalidate=False)


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
