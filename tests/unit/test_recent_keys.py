"""The intake's memory of the keys it stored lately: same token, within the window, bounded."""

from __future__ import annotations

import time

from addon_core.intake.writer import Delivery, RecentKeys


def _delivery(key: str = "k1", token: bytes = b"t1", workspace: str = "w1") -> Delivery:
    return Delivery(
        workspace_id=workspace,
        event_type="NEW_TIME_ENTRY",
        path="/webhooks/new-time-entry",
        addon_id=None,
        token_digest=token,
        dedupe_key=key,
        payload="{}",
        headers={},
    )


def test_recent_keys_answer_a_redelivery_with_the_same_token_within_the_window() -> None:
    recent = RecentKeys(window_seconds=600)
    assert not recent.seen(_delivery())
    recent.remember(_delivery(), time.monotonic())
    assert recent.seen(_delivery())
    assert not recent.seen(_delivery(token=b"another token"))
    assert not recent.seen(_delivery(key="k2"))


def test_recent_keys_expire_with_the_window_and_forget_a_workspace() -> None:
    recent = RecentKeys(window_seconds=600)
    recent.remember(_delivery("old"), time.monotonic() - 600)
    recent.remember(_delivery("w1"), time.monotonic())
    recent.remember(_delivery("w2", workspace="w2"), time.monotonic())
    assert not recent.seen(_delivery("old"))
    recent.forget("w1")
    assert not recent.seen(_delivery("w1"))
    assert recent.seen(_delivery("w2", workspace="w2"))


def test_recent_keys_are_bounded_oldest_first() -> None:
    recent = RecentKeys(window_seconds=600, size=2)
    for key in ("a", "b", "c"):
        recent.remember(_delivery(key), time.monotonic())
    assert [recent.seen(_delivery(key)) for key in ("a", "b", "c")] == [False, True, True]
