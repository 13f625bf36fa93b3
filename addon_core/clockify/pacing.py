"""The per-workspace request budget for Clockify's API: 50 requests/s per add-on per workspace.

Clockify counts requests as they arrive, and a request arrives some time after it is sent.
Pacing by send time alone lets a slow burst (new connections, a busy server) land in the
same second as the next one: in a loopback test that was 62 arrivals in one second. So a
call made with `Pacer.call` holds its place in the window while in flight and is stamped
when its answer is back. Every request arrives before its answer, hence no second of
arrivals ever holds more than `rate` of them, whatever the latency; the price is a rate of
about `rate / (1 + latency)` when saturated (99 % at 10 ms, 91 % at 100 ms).

Each process paces its own calls; given a `SharedBudget` (PostgreSQL, `addon_core.clockify.budget`),
every call also takes a slot of the budget all processes share. SQLite runs one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from addon_core.clockify.budget import Grant, SharedBudget

Lane = Literal["interactive", "flow", "bootstrap"]

#: Lower is served first: a user waiting on a page, then flow actions, then bootstrap.
LANE_PRIORITY: dict[Lane, int] = {"interactive": 0, "flow": 1, "bootstrap": 2}

# Clockify states its limit per second (PLATFORM.md, "The Clockify API").
_WINDOW = 1.0
# A floor on each sleep, so float rounding never leaves a waiter spinning on a zero sleep.
_MIN_SLEEP = 1e-6
#: What `_wait_needed` answers when only the end of an in-flight call can free the window.
_UNTIL_RELEASED = float("inf")


@dataclass(order=True)
class _Ticket:
    priority: int
    seq: int
    turn: asyncio.Event = field(compare=False, default_factory=asyncio.Event)
    grant: Grant | None = field(compare=False, default=None)


@dataclass
class _Bucket:
    tokens: float
    updated: float
    #: when the latest calls ended (`call`) or started (`acquire`), oldest first
    recent: deque[float]
    #: calls made with `call` that have not answered yet: each holds a place in the window
    in_flight: int = 0
    #: set when an in-flight call ends, for a head waiting on a full window of them
    released: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: list[_Ticket] = field(default_factory=list)
    #: a waiter is asking the shared budget; the others wait, so that one process sends
    #: one grant at a time per workspace and the lanes keep their order
    asking: bool = False
    #: held shared slots granted along with an earlier waiter's, for the next waiters
    spare: list[Grant] = field(default_factory=list)


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

    @contextlib.asynccontextmanager
    async def call(self, workspace_id: str, lane: Lane = "interactive") -> AsyncIterator[float]:
        """Hold a call slot for the block (send the request in it); yield the seconds waited.

        The call counts in the window from its start until one second after it ends.
        """
        waited, grant = await self._admit(workspace_id, lane, hold=True)
        bucket = self._buckets[workspace_id]
        try:
            yield waited
        finally:
            bucket.in_flight -= 1
            bucket.recent.append(self._clock())
            bucket.released.set()
            if grant is not None and self.shared is not None:
                await self.shared.release(workspace_id, grant)

    def window_use(self, workspace_id: str) -> float:
        """The share of the workspace's 1-second window taken now (in flight or recent), 0-1."""
        bucket = self._buckets.get(workspace_id)
        if bucket is None:
            return 0.0
        now = self._clock()
        recent = bucket.recent  # oldest first: drop what has left the window, count the rest
        while recent and now - recent[0] >= _WINDOW:
            recent.popleft()
        return min(1.0, (bucket.in_flight + len(recent)) / self.window_cap)

    async def acquire(self, workspace_id: str, lane: Lane = "interactive") -> float:
        """Wait for the workspace's next call slot, counted from now; return the seconds waited.

        Raises `DatabaseUnavailableError` (503) when the shared budget cannot be asked.
        """
        waited, _grant = await self._admit(workspace_id, lane, hold=False)
        return waited

    async def _admit(
        self, workspace_id: str, lane: Lane, *, hold: bool
    ) -> tuple[float, Grant | None]:
        started = self._clock()
        bucket = self._bucket(workspace_id, started)
        shared = self.shared
        if shared is None and not bucket.waiters and self._wait_needed(bucket, started) == 0.0:
            self._take(bucket, started, hold=hold)
            return 0.0, None
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
                if wait == _UNTIL_RELEASED:
                    bucket.released.clear()
                    await bucket.released.wait()
                    continue
                if wait == 0.0 and shared is not None:
                    wait = await self._ask_shared(shared, bucket, workspace_id, ticket, hold)
                if wait == 0.0:
                    now = self._clock()
                    self._take(bucket, now, hold=hold)
                    return now - started, ticket.grant
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
            elif bucket.spare and shared is not None:
                # Nobody left to use them: count them from now, as calls that just ended.
                spare, bucket.spare = bucket.spare, []
                for grant in spare:
                    await shared.release(workspace_id, grant)

    def _ask_shared_room(self, bucket: _Bucket) -> int:
        """How many calls the local bucket and window would let start now."""
        room = self.window_cap - bucket.in_flight - len(bucket.recent)
        return max(1, min(len(bucket.waiters), int(bucket.tokens), room))

    async def _ask_shared(
        self, shared: SharedBudget, bucket: _Bucket, workspace_id: str, ticket: _Ticket, hold: bool
    ) -> float:
        """Take a shared slot: return 0.0 if granted, else the seconds to wait.

        A held call takes a spare slot granted with an earlier one if there is one; else
        it asks for as many as the waiters queued here could start now, in one round trip.
        """
        if hold and bucket.spare:
            ticket.grant = bucket.spare.pop()
            return 0.0
        bucket.asking = True
        try:
            want = self._ask_shared_room(bucket) if hold else 1
            grant = await shared.try_grant(workspace_id, hold=hold, want=want)
            if grant.granted:
                ticket.grant = grant
                bucket.spare.extend(grant.more)
        finally:
            bucket.asking = False
            # A caller of a higher lane may have queued meanwhile: its turn now.
            if bucket.waiters:
                bucket.waiters[0].turn.set()
        # A refusal is never a go, even one whose wait rounded to zero.
        return 0.0 if grant.granted else max(grant.wait, _MIN_SLEEP)

    def _bucket(self, workspace_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(workspace_id)
        if bucket is None:
            bucket = self._buckets[workspace_id] = _Bucket(float(self.burst), now, deque())
        return bucket

    def _wait_needed(self, bucket: _Bucket, now: float) -> float:
        """Refill the bucket to `now`; return how long until a call may start (0 if now)."""
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        token_wait = 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate
        recent = bucket.recent
        while recent and now - recent[0] >= _WINDOW:
            recent.popleft()
        over = bucket.in_flight + len(recent) - self.window_cap
        if over < 0:
            window_wait = 0.0
        elif bucket.in_flight >= self.window_cap:
            return _UNTIL_RELEASED
        else:
            # The window frees up when the `over + 1` oldest stamps are a second old.
            window_wait = max(_MIN_SLEEP, recent[over] + _WINDOW - now)
        return max(token_wait, window_wait)

    def _take(self, bucket: _Bucket, now: float, *, hold: bool) -> None:
        bucket.tokens -= 1.0
        if hold:
            bucket.in_flight += 1
        else:
            bucket.recent.append(now)
