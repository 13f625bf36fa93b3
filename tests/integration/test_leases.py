"""Named leases on SQLite and PostgreSQL: one holder at a time, expiry, renewal, release."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.storage.leases import acquire_lease, release_lease
from addon_core.storage.models import Lease

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
TTL = 60.0


async def lease_row(engine: AsyncEngine, name: str) -> tuple[str, datetime] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(Lease.holder, Lease.expires_at).where(Lease.name == name))
        ).first()
    if row is None:
        return None
    expires = row.expires_at
    # SQLite gives the stored UTC stamp back without its offset.
    return row.holder, expires if expires.tzinfo else expires.replace(tzinfo=UTC)


async def test_a_free_lease_is_taken_and_a_second_holder_is_refused(engine: AsyncEngine) -> None:
    assert await acquire_lease(engine, "retention:a", "one", TTL, now=NOW)
    assert not await acquire_lease(
        engine, "retention:a", "two", TTL, now=NOW + timedelta(seconds=1)
    )

    assert await lease_row(engine, "retention:a") == ("one", NOW + timedelta(seconds=TTL))


async def test_leases_of_other_names_are_independent(engine: AsyncEngine) -> None:
    assert await acquire_lease(engine, "retention:a", "one", TTL, now=NOW)

    assert await acquire_lease(engine, "retention:b", "two", TTL, now=NOW)


async def test_an_expired_lease_goes_to_the_next_holder(engine: AsyncEngine) -> None:
    await acquire_lease(engine, "retention:a", "one", TTL, now=NOW)
    expiry = NOW + timedelta(seconds=TTL)

    # Still held at the very instant it expires; free just after.
    assert not await acquire_lease(engine, "retention:a", "two", TTL, now=expiry)
    assert await acquire_lease(engine, "retention:a", "two", TTL, now=expiry + timedelta(seconds=1))

    assert not await acquire_lease(
        engine, "retention:a", "one", TTL, now=expiry + timedelta(seconds=2)
    )
    row = await lease_row(engine, "retention:a")
    assert row is not None
    assert row[0] == "two"


async def test_the_holder_renews_its_lease(engine: AsyncEngine) -> None:
    await acquire_lease(engine, "retention:a", "one", TTL, now=NOW)
    renewed_at = NOW + timedelta(seconds=TTL - 5)

    assert await acquire_lease(engine, "retention:a", "one", TTL, now=renewed_at)

    assert await lease_row(engine, "retention:a") == ("one", renewed_at + timedelta(seconds=TTL))
    # Past the first expiry, the renewed lease still holds the other out.
    assert not await acquire_lease(
        engine, "retention:a", "two", TTL, now=NOW + timedelta(seconds=TTL + 1)
    )


async def test_release_frees_the_lease_for_its_holder_only(engine: AsyncEngine) -> None:
    await acquire_lease(engine, "retention:a", "one", TTL, now=NOW)

    assert not await release_lease(engine, "retention:a", "two")
    assert not await acquire_lease(engine, "retention:a", "two", TTL, now=NOW)

    assert await release_lease(engine, "retention:a", "one")
    assert await lease_row(engine, "retention:a") is None
    assert await acquire_lease(engine, "retention:a", "two", TTL, now=NOW)


async def test_concurrent_holders_get_the_lease_exactly_once(engine: AsyncEngine) -> None:
    holders = [f"replica-{n}" for n in range(8)]

    taken = await asyncio.gather(
        *(acquire_lease(engine, "retention:a", holder, TTL, now=NOW) for holder in holders)
    )

    assert sum(taken) == 1
    row = await lease_row(engine, "retention:a")
    assert row is not None
    assert row[0] == holders[taken.index(True)]


async def test_a_lease_needs_a_positive_ttl(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="positive ttl"):
        await acquire_lease(engine, "retention:a", "one", 0, now=NOW)
