"""The per-workspace request budget for Clockify's API: 50 requests/s per add-on per workspace.

Each process paces its own calls; given a `SharedBudget` (PostgreSQL, `addon_core.budget`),
every call also takes a slot of the budget all processes share. SQLite runs one process.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from addon_core.budget import SharedBudget

Lane = Literal["interactive", "flow", "bootstrap"]

#: Lower is served first: a user waiting on a page, then flow actions, then bootstrap.
LANE_PRIORITY: dict[Lane, int] = {"interactive": 0, "flow": 1, "bootstrap": 2}

# Clockify states its limit per second (PLATFORM.md, "The Clockify API").
_WINDOW = 1.0
# A floor on each sleep, so float rounding never leaves a waiter spinning on a zero sleep.
_MIN_SLEEP = 1e-6


@dataclass(order=True)
class _Ticket:
    priority: int
    seq: int
    turn: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    #: start times of the latest calls, at most `window_cap` of them
    recent: deque[float]
    waiters: list[_Ticket] = field(default_factory=list)
    #: a waiter is asking the shared budget; the others wait, so that one process sends
    #: one grant at a time per workspace and the lanes keep their order
    asking: bool = False


class Pacer:
    """Token buckets (`rate` per second, `burst` at most) per workspace, with priority lanes.

    A bucket alone admits `burst + rate` calls in the second after it fills, so each
    workspace also keeps the start times of its last `rate` calls: no 1-second window
    ever holds more than `rate` calls, which is how Clockify counts.

    With `shared`, the local bucket and lanes still pick which caller goes next; that
    caller then takes a slot of the shared budget, sleeping what it says when refused.
    """

    def __init__(
        self,
        rate: float = 50.0,
        burst: int = 50,
        *,
        shared: SharedBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"the pacing rate must be > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self.window_cap = max(1, int(rate * _WINDOW))
        self.shared = shared
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._seq = itertools.count()

    async def acquire(self, workspace_id: str, lane: Lane = "interactive") -> float:
        """Wait for the workspace's next call slot; return the seconds waited.

        Raises `DatabaseUnavailableError` (503) when the shared budget cannot be asked.
        """
        started = self._clock()
        bucket = self._bucket(workspace_id, started)
        shared = self.shared
        if shared is None and not bucket.waiters and self._wait_needed(bucket, started) == 0.0:
            self._take(bucket, started)
            return 0.0
        ticket = _Ticket(LANE_PRIORITY[lane], next(self._seq))
        heapq.heappush(bucket.waiters, ticket)
        try:
            while True:
                if bucket.waiters[0] is not ticket or bucket.asking:
                    # Only the head waits on the clock; the rest wait for their turn.
                    ticket.turn.clear()
                    await ticket.turn.wait()
                    continue
                wait = self._wait_needed(bucket, self._clock())
                if wait == 0.0 and shared is not None:
                    wait = await self._ask_shared(shared, bucket, workspace_id)
                if wait == 0.0:
                    now = self._clock()
                    self._take(bucket, now)
                    return now - started
                await self._sleep(max(wait, _MIN_SLEEP))
        finally:
            # Served or cancelled, the ticket leaves the queue and the next head takes over.
            if bucket.waiters and bucket.waiters[0] is ticket:
                heapq.heappop(bucket.waiters)
            elif ticket in bucket.waiters:
                bucket.waiters.remove(ticket)
                heapq.heapify(bucket.waiters)
            if bucket.waiters:
                bucket.waiters[0].turn.set()

    @staticmethod
    async def _ask_shared(shared: SharedBudget, bucket: _Bucket, workspace_id: str) -> float:
        """Take a shared slot: return 0.0 if granted, else the seconds to wait."""
        bucket.asking = True
        try:
            grant = await shared.try_grant(workspace_id)
        finally:
            bucket.asking = False
            # A caller of a higher lane may have queued meanwhile: its turn now.
            if bucket.waiters:
                bucket.waiters[0].turn.set()
        return grant.wait

    def _bucket(self, workspace_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(workspace_id)
        if bucket is None:
            bucket = self._buckets[workspace_id] = _Bucket(
                float(self.burst), now, deque(maxlen=self.window_cap)
            )
        return bucket

    def _wait_needed(self, bucket: _Bucket, now: float) -> float:
        """Refill the bucket to `now`; return how long until a call may start (0 if now)."""
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        token_wait = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate
        window_wait = 0.0
        if len(bucket.recent) == self.window_cap and now - bucket.recent[0] < _WINDOW:
            window_wait = max(_MIN_SLEEP, bucket.recent[0] + _WINDOW - now)
        return max(token_wait, window_wait)

    def _take(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens -= 1.0
        bucket.recent.append(now)
