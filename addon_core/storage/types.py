"""Column types: `UtcDateTime`, the one way a moment goes into and out of the database.

SQLite keeps no time zone (it hands back naive datetimes) while PostgreSQL's
`timestamptz` does; this type makes both behave the same for the ORM.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class NaiveDateTimeError(ValueError):
    """A datetime without a time zone was about to be stored."""


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only takes and only gives aware UTC datetimes.

    The stored type is unchanged (`TIMESTAMP WITH TIME ZONE`, or SQLite's text), so no
    migration follows from using it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a UtcDateTime column takes a datetime, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise NaiveDateTimeError(
                f"refusing the naive datetime {value.isoformat()}: give it a time zone, "
                "for example datetime.now(UTC)"
            )
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # SQLite hands back what was stored in UTC without its zone.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
