"""Named leases in the `leases` table, so that one process at a time runs a schedule.

Time is the app's UTC clock (injectable), not the database's: both dialects then
compare the same values, and replicas are assumed to keep their clocks in sync.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.storage.database import for_writing, is_sqlite, translate_errors
from addon_core.storage.models import Lease


async def acquire_lease(
    engine: AsyncEngine,
    name: str,
    holder: str,
    ttl_seconds: float,
    *,
    now: datetime | None = None,
) -> bool:
    """Take the lease if it is free, expired or already ours (then extend it); tell if taken."""
    if ttl_seconds <= 0:
        raise ValueError(f"a lease needs a positive ttl (got {ttl_seconds})")
    at = _utc(now)
    insert = sqlite_insert if is_sqlite(engine) else postgresql_insert
    values = insert(Lease).values(
        name=name, holder=holder, expires_at=at + timedelta(seconds=ttl_seconds)
    )
    # One statement decides: the upsert only overwrites an expired lease or our own, and
    # RETURNING yields no row when the WHERE refused it (PostgreSQL makes a concurrent
    # inserter wait and re-check; SQLite serialises writers under BEGIN IMMEDIATE).
    statement = values.on_conflict_do_update(
        index_elements=[Lease.name],
        set_={"holder": values.excluded.holder, "expires_at": values.excluded.expires_at},
        where=(Lease.expires_at < at) | (Lease.holder == holder),
    ).returning(Lease.holder)
    async with translate_errors("taking a lease"), for_writing(engine).begin() as conn:
        taken = (await conn.execute(statement)).scalar_one_or_none()
    return taken == holder


async def release_lease(engine: AsyncEngine, name: str, holder: str) -> bool:
    """Give the lease up if we hold it; tell whether we did."""
    statement = delete(Lease).where(Lease.name == name, Lease.holder == holder)
    async with translate_errors("releasing a lease"), for_writing(engine).begin() as conn:
        result = await conn.execute(statement)
    return bool(result.rowcount)


def _utc(now: datetime | None) -> datetime:
    # SQLite stores DateTime without its offset: every stamp must be UTC to compare.
    return datetime.now(UTC) if now is None else now.astimezone(UTC)
