"""Every datetime column gives back aware UTC datetimes and refuses naive ones, on
SQLite (which keeps no zone) as on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import StatementError

from addon_core.storage.database import create_engine, create_session_factory
from addon_core.storage.models import Lease
from addon_core.storage.types import NaiveDateTimeError


async def test_a_stored_time_comes_back_aware_in_utc(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    moment = datetime(2026, 7, 1, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    try:
        async with sessions.begin() as session:
            session.add(Lease(name="retention", holder="a", expires_at=moment))
        async with sessions() as session:
            lease = await session.get(Lease, "retention")
            assert lease is not None
            assert lease.expires_at == moment
            assert lease.expires_at.tzinfo is UTC
            assert lease.expires_at.isoformat() == "2026-07-01T09:30:00+00:00"
    finally:
        await engine.dispose()


async def test_a_naive_time_is_refused_before_it_is_written(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = create_session_factory(engine)
    try:
        with pytest.raises(StatementError) as raised:
            async with sessions.begin() as session:
                session.add(Lease(name="retention", holder="a", expires_at=datetime(2026, 7, 1)))
        assert isinstance(raised.value.orig, NaiveDateTimeError)
        async with sessions() as session:
            assert await session.get(Lease, "retention") is None
    finally:
        await engine.dispose()
