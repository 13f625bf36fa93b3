"""The per-endpoint rate limiter, driven by an injected clock."""

from __future__ import annotations

import pytest

from addon_core.rate_limit import Decision, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_full_minute_burst_passes_then_the_next_is_refused(clock: Clock) -> None:
    limiter = RateLimiter(60, clock)
    decisions = [limiter.check("ep") for _ in range(60)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions[:3]] == [59, 58, 57]
    assert decisions[-1].remaining == 0
    refused = limiter.check("ep")
    assert refused == Decision(allowed=False, limit=60, remaining=0, reset_seconds=1)


def test_allowance_refills_evenly(clock: Clock) -> None:
    limiter = RateLimiter(6, clock)  # one request every 10 s
    for _ in range(6):
        assert limiter.check("ep").allowed
    refused = limiter.check("ep")
    assert not refused.allowed
    assert refused.reset_seconds == 10
    clock.advance(9.5)
    assert not limiter.check("ep").allowed
    clock.advance(0.5)
    again = limiter.check("ep")
    assert again.allowed
    assert again.remaining == 0
    assert not limiter.check("ep").allowed


def test_refused_requests_do_not_use_up_allowance(clock: Clock) -> None:
    limiter = RateLimiter(2, clock)
    limiter.check("ep")
    limiter.check("ep")
    for _ in range(100):
        assert not limiter.check("ep").allowed
    clock.advance(30)
    assert limiter.check("ep").allowed


def test_reset_counts_down_to_a_full_allowance(clock: Clock) -> None:
    limiter = RateLimiter(60, clock)
    assert limiter.check("ep").reset_seconds == 1
    for _ in range(9):
        limiter.check("ep")
    assert limiter.check("ep").reset_seconds == 11
    clock.advance(11)
    assert limiter.check("ep").remaining == 59


def test_keys_are_independent(clock: Clock) -> None:
    limiter = RateLimiter(1, clock)
    assert limiter.check("a").allowed
    assert not limiter.check("a").allowed
    assert limiter.check("b").allowed


def test_per_call_limit_overrides_the_default(clock: Clock) -> None:
    limiter = RateLimiter(600, clock)
    assert limiter.check("strict", limit=2).limit == 2
    assert limiter.check("strict", limit=2).allowed
    refused = limiter.check("strict", limit=2)
    assert not refused.allowed
    assert refused.reset_seconds == 30
    assert limiter.check("loose").limit == 600


def test_headers_carry_the_decision(clock: Clock) -> None:
    limiter = RateLimiter(1, clock)
    assert limiter.check("ep").headers() == {
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "60",
    }
    clock.advance(15)
    assert limiter.check("ep").headers() == {
        "X-RateLimit-Limit": "1",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "45",
        "Retry-After": "45",
    }


def test_idle_keys_are_forgotten(clock: Clock) -> None:
    limiter = RateLimiter(60, clock)
    for key in range(100):
        limiter.check(f"ep{key}")
    assert len(limiter) == 100
    clock.advance(61)
    limiter.check("fresh")
    assert len(limiter) == 1


def test_memory_is_bounded_by_max_keys(clock: Clock) -> None:
    limiter = RateLimiter(1, clock, max_keys=10)
    for key in range(1000):
        assert limiter.check(f"ep{key}").allowed
    assert len(limiter) == 10
    # The most recent keys keep their state.
    assert not limiter.check("ep999").allowed


def test_invalid_limits_are_refused(clock: Clock) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(0, clock)
    with pytest.raises(ValueError, match="at least 1"):
        RateLimiter(10, clock).check("ep", limit=0)
