"""HTTP rules (RFC 9110) the add-ons apply in more than one place, written once.

`IDEMPOTENT_METHODS` decides what may be sent again after a crash or a lost answer (the
Clockify client's retries, a flow step found in flight); `retry_after_seconds` reads a
`Retry-After` header for the Clockify client and for outbound http actions.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Final

#: Methods whose repetition has the effect of one request (RFC 9110, 9.2.2).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def retry_after_seconds(value: str | None) -> float | None:
    """Read `Retry-After` as seconds or an HTTP date (RFC 9110, 10.2.3); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
