"""Retry-After as seconds or an HTTP date; the idempotent methods."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

from addon_core.http_semantics import IDEMPOTENT_METHODS, retry_after_seconds


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("", None), (None, None),
                           ("soon", None)]
)  # fmt: skip
def test_retry_after_in_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    earlier = email.utils.format_datetime(datetime.now(UTC) - timedelta(seconds=90), usegmt=True)
    assert 80 <= (retry_after_seconds(later) or 0) <= 90
    assert retry_after_seconds(earlier) == 0.0


def test_post_and_patch_are_not_idempotent() -> None:
    assert {"GET", "PUT", "DELETE"} <= IDEMPOTENT_METHODS
    assert not {"POST", "PATCH"} & IDEMPOTENT_METHODS
