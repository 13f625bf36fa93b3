"""Rate limits by key, GCRA in this process's memory: custom endpoints' deliveries
(Universal Webhook) and the per-workspace rate quotas (`addon_core.quotas`).

A limit holds per process: with several replicas each enforces it on its own, so a key
may get up to `replicas x limit` a minute. That is an accepted trade-off.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
DEFAULT_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request.

    `reset_seconds` is how long until a request is allowed again when refused, and
    until the full allowance is back when allowed.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """Return the `X-RateLimit-*` headers, and `Retry-After` when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class RateLimiter:
    """Allow `limit_per_minute` requests per key: a full minute's burst, refilled evenly.

    GCRA keeps one number per key, the theoretical arrival time (TAT); a key whose TAT
    has passed is back to a full allowance and is forgotten. At most `max_keys` are kept:
    beyond that the least recently seen key is dropped, which can only make it more lenient.
    Not thread-safe; meant for one event loop.
    """

    def __init__(
        self,
        limit_per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if limit_per_minute < 1 or max_keys < 1:
            raise ValueError("limit_per_minute and max_keys must be at least 1")
        self.limit_per_minute = limit_per_minute
        self._clock = clock
        self._max_keys = max_keys
        self._tats: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tats)

    def check(self, key: str, limit: int | None = None) -> Decision:
        """Count one request for `key` (an endpoint id) and tell whether it may pass."""
        limit = self.limit_per_minute if limit is None else limit
        if limit < 1:
            raise ValueError("limit must be at least 1")
        now = self._clock()
        self._evict_idle(now)
        interval = WINDOW_SECONDS / limit
        tat = max(self._tats.get(key, now), now)
        new_tat = tat + interval
        allowed_from = new_tat - WINDOW_SECONDS
        if now < allowed_from:
            return Decision(False, limit, 0, max(_ceil_seconds(allowed_from - now), 1))
        self._tats[key] = new_tat
        self._tats.move_to_end(key)
        if len(self._tats) > self._max_keys:
            self._tats.popitem(last=False)
        # The small epsilon absorbs float error so a fresh key reports limit - 1, not limit - 2.
        remaining = math.floor((now + WINDOW_SECONDS - new_tat) / interval + 1e-9)
        return Decision(True, limit, max(remaining, 0), _ceil_seconds(new_tat - now))

    def _evict_idle(self, now: float) -> None:
        # Least recently seen first: stop at the first key still owed time, so each
        # call does amortised O(1) work; `max_keys` bounds whatever this leaves.
        while self._tats:
            key, tat = next(iter(self._tats.items()))
            if tat > now:
                return
            del self._tats[key]


def _ceil_seconds(seconds: float) -> int:
    return max(math.ceil(seconds - 1e-9), 0)
