"""The quota rules on their own: rate quotas per workspace, count quotas at their limit."""

from __future__ import annotations

import pytest

from addon_core.intake.store import over_quota_marks
from addon_core.metrics import Metrics
from addon_core.quotas import QuotaExceededError, Quotas, RateQuotaExceededError
from addon_core.settings import load_settings
from api_studio.app import ApiStudioSettings


def quotas(**limits: int) -> tuple[Quotas, Metrics]:
    settings = load_settings(ApiStudioSettings, **limits)
    metrics = Metrics("api-studio")
    return Quotas(settings, metrics, "api-studio"), metrics


def refusals(metrics: Metrics, quota: str) -> float:
    return float(metrics.quota_refusals.labels("api-studio", quota)._value.get())


def test_a_rate_quota_is_per_workspace_and_says_when_it_resets() -> None:
    limits, metrics = quotas(quota_outbound_per_minute=2)
    assert limits.charge("w1", "outbound_per_minute")["X-RateLimit-Remaining"] == "1"
    limits.charge("w1", "outbound_per_minute")
    with pytest.raises(RateQuotaExceededError) as refused:
        limits.charge("w1", "outbound_per_minute")
    assert refused.value.status_code == 429
    assert refused.value.extra == {"quota": "outbound_per_minute", "limit": 2, "resetSeconds": 30}
    assert refused.value.headers["Retry-After"] == "30"
    assert refusals(metrics, "outbound_per_minute") == 1
    limits.charge("w2", "outbound_per_minute")  # another workspace is not affected


def test_a_count_quota_refuses_at_its_limit_only() -> None:
    limits, metrics = quotas(quota_flows=3)
    limits.check_count("flows", 2, what="flows")
    with pytest.raises(QuotaExceededError) as refused:
        limits.check_count("flows", 3, what="flows")
    assert refused.value.status_code == 409
    assert "quota flows allows 3" in refused.value.detail
    assert refusals(metrics, "flows") == 1


def _rows(*workspaces: str) -> list[tuple[str, ...]]:
    # Planned intake rows: the workspace is the second column.
    return [("addon", workspace, "NEW_TIME_ENTRY") for workspace in workspaces]


def test_the_last_events_past_the_daily_quota_are_marked_per_workspace() -> None:
    rows = _rows("a", "b", "a", "a", "b")
    # a stored 3 now and has 4 today (1 over a quota of 3); b stored 2 and has 2.
    assert over_quota_marks(rows, {"a": 4, "b": 2}, 3) == [False, False, False, True, False]


def test_a_workspace_already_past_the_quota_has_every_new_event_marked() -> None:
    assert over_quota_marks(_rows("a", "a"), {"a": 10}, 3) == [True, True]


def test_nothing_is_marked_within_the_quota() -> None:
    assert over_quota_marks(_rows("a", "a"), {"a": 3}, 3) == [False, False]
