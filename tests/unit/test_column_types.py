"""`UtcDateTime` takes aware datetimes only and gives back aware UTC ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from addon_core.storage.types import NaiveDateTimeError, UtcDateTime

PARIS_SUMMER = timezone(timedelta(hours=2))


def test_a_naive_datetime_is_refused_on_the_way_in() -> None:
    with pytest.raises(NaiveDateTimeError, match="give it a time zone"):
        UtcDateTime().process_bind_param(datetime(2026, 7, 1, 9, 0), sqlite.dialect())


def test_an_aware_datetime_is_stored_as_the_same_instant_in_utc() -> None:
    moment = datetime(2026, 7, 1, 11, 0, tzinfo=PARIS_SUMMER)
    stored = UtcDateTime().process_bind_param(moment, sqlite.dialect())
    assert stored == moment
    assert stored is not None
    assert stored.utcoffset() == timedelta(0)
    assert stored.hour == 9


def test_what_is_not_a_datetime_is_refused() -> None:
    with pytest.raises(TypeError, match="takes a datetime, not str"):
        UtcDateTime().process_bind_param("2026-07-01T09:00:00Z", sqlite.dialect())  # type: ignore[arg-type]


def test_a_naive_value_read_back_from_sqlite_is_utc() -> None:
    read = UtcDateTime().process_result_value(datetime(2026, 7, 1, 9, 0), sqlite.dialect())
    assert read == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert read is not None
    assert read.isoformat().endswith("+00:00")


def test_an_aware_value_read_back_is_given_in_utc() -> None:
    moment = datetime(2026, 7, 1, 11, 0, tzinfo=PARIS_SUMMER)
    read = UtcDateTime().process_result_value(moment, postgresql.dialect())
    assert read is not None
    assert read.isoformat() == "2026-07-01T09:00:00+00:00"


def test_null_passes_both_ways() -> None:
    assert UtcDateTime().process_bind_param(None, sqlite.dialect()) is None
    assert UtcDateTime().process_result_value(None, sqlite.dialect()) is None


def test_the_stored_type_is_the_timezone_aware_datetime_of_before() -> None:
    impl = UtcDateTime().impl
    assert impl.timezone is True  # type: ignore[attr-defined]
    assert UtcDateTime().compile(dialect=postgresql.dialect()) == "TIMESTAMP WITH TIME ZONE"
