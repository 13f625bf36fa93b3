"""The per-workspace request budget: window limit, separate workspaces, priority lanes,
and the same with a budget shared between processes (faked in memory here)."""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from datetime import UTC, datetime

import pytest

from addon_core.clockify.budget import Grant
from addon_core.clockify.pacing import Lane, Pacer
from addon_core.errors import ServiceUnavailableError
from addon_core.storage.database import DatabaseUnavailableError


class FakeClock:
    """A clock that moves only when a sleeper asks it to, or when the test advances it.

    With `auto=True` a sleep jumps the clock to the sleeper's deadline at once; with
    `auto=False` sleepers wait until `advance` passes their deadline.
    """

    def __init__(self, *, auto: bool) -> None:
        self.now = 0.0
        self.auto = auto
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        deadline = self.now + seconds
        if self.auto:
            await asyncio.sleep(0)
            self.now = max(self.now, deadline)
            return
        future = asyncio.get_running_loop().create_future()
        self._sleepers.append((deadline, future))
        await future

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [(d, f) for d, f in self._sleepers if d <= self.now]
        self._sleepers = [(d, f) for d, f in self._sleepers if d > self.now]
        for _, future in due:
            if not future.done():  # a cancelled sleeper's future is already done
                future.set_result(None)
        await settle()


async def settle() -> None:
    """Let every runnable task run until it blocks again."""
    for _ in range(20):
        await asyncio.sleep(0)


async def order_served(pacer: Pacer, clock: FakeClock) -> list[str]:
    """Queue two bootstrap callers, then a flow and an interactive one, on an empty bucket;
    return the order they were served in as the clock moves on."""
    served: list[str] = []

    async def call(name: str, lane: Lane) -> None:
        await pacer.acquire("ws-1", lane)
        served.append(name)

    tasks = [asyncio.create_task(call(f"bootstrap-{i}", "bootstrap")) for i in (1, 2)]
    await settle()
    tasks.append(asyncio.create_task(call("flow", "flow")))
    tasks.append(asyncio.create_task(call("interactive", "interactive")))
    await settle()
    for _ in range(4):
        await clock.advance(1.0)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    return served


async def test_a_burst_of_300_never_exceeds_the_rate_in_any_second_and_completes() -> None:
    clock = FakeClock(auto=True)
    pacer = Pacer(rate=50, burst=50, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def call() -> None:
        await pacer.acquire("ws-1", "bootstrap")
        starts.append(clock.now)

    await asyncio.wait_for(asyncio.gather(*(call() for _ in range(300))), timeout=10)

    assert len(starts) == 300
    starts.sort()
    busiest = max(sum(1 for t in starts[i:] if t - start < 1.0) for i, start in enumerate(starts))
    assert busiest <= 50
    # 300 calls at 50/s need just under 6 s of budget; pacing must not waste much more.
    assert starts[-1] <= 6.0


async def test_two_workspaces_do_not_share_a_budget() -> None:
    clock = FakeClock(auto=True)
    pacer = Pacer(rate=10, burst=10, clock=clock, sleep=clock.sleep)

    waits = [await pacer.acquire("ws-1") for _ in range(10)]
    waits += [await pacer.acquire("ws-2") for _ in range(10)]

    assert waits == [0.0] * 20
    assert clock.now == 0.0
    assert await pacer.acquire("ws-1") > 0.0


async def test_a_waiting_interactive_caller_is_served_before_waiting_bootstrap_callers() -> None:
    clock = FakeClock(auto=False)
    pacer = Pacer(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    await pacer.acquire("ws-1", "bootstrap")  # the bucket is now empty
    assert await order_served(pacer, clock) == ["interactive", "flow", "bootstrap-1", "bootstrap-2"]


async def test_a_cancelled_waiter_does_not_hold_up_the_queue() -> None:
    clock = FakeClock(auto=False)
    pacer = Pacer(rate=1, burst=1, clock=clock, sleep=clock.sleep)
    await pacer.acquire("ws-1")
    first = asyncio.create_task(pacer.acquire("ws-1"))
    second = asyncio.create_task(pacer.acquire("ws-1"))
    await settle()

    first.cancel()
    await settle()
    await clock.advance(1.0)

    assert second.done()
    assert second.result() == pytest.approx(1.0)
    assert first.cancelled()


async def test_the_wait_reported_is_the_time_spent_waiting() -> None:
    clock = FakeClock(auto=True)
    pacer = Pacer(rate=4, burst=1, clock=clock, sleep=clock.sleep)

    assert await pacer.acquire("ws-1") == 0.0
    assert await pacer.acquire("ws-1") == pytest.approx(0.25)


async def test_a_held_call_counts_until_a_second_after_its_answer() -> None:
    # Clockify counts arrivals, and a request arrives before its answer: stamping a call
    # when its answer is back keeps any second of arrivals within the rate, however slow.
    clock = FakeClock(auto=False)
    pacer = Pacer(rate=2, burst=2, clock=clock, sleep=clock.sleep)
    started: list[float] = []

    async def slow_call(latency: float) -> None:
        async with pacer.call("ws-1"):
            started.append(clock.now)
            if latency:
                await clock.sleep(latency)

    first = [asyncio.create_task(slow_call(3.0)) for _ in range(2)]
    third = asyncio.create_task(slow_call(0.0))
    await settle()
    assert started == [0.0, 0.0]
    await clock.advance(2.0)  # both still in flight: the window stays full
    assert len(started) == 2
    assert not third.done()
    await clock.advance(1.0)  # both answered at 3.0: free again at 4.0, not before
    assert len(started) == 2
    await clock.advance(0.5)
    assert len(started) == 2
    await clock.advance(0.5)
    await asyncio.gather(*first, third)
    assert started == [0.0, 0.0, 4.0]


async def test_a_held_call_takes_and_releases_a_shared_slot() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=1)
    pacer = Pacer(rate=10, burst=10, shared=budget, clock=clock, sleep=clock.sleep)
    async with pacer.call("ws-1"):
        assert budget.slots["ws-1"] == [float("inf")]  # nobody else may take it in flight
        clock.now = 5.0
    assert budget.slots["ws-1"] == [5.0]
    await pacer.acquire("ws-1")
    assert clock.now == 6.0


def test_a_pacer_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        Pacer(rate=0, burst=1)


# --- with a budget shared between processes ------------------------------------------------


class FakeSharedBudget:
    """The sliding log of `addon_core.clockify.budget` in memory, on the fake clock.

    Each grant yields to the loop once, as a database round trip would; `gate`, when
    set, holds every grant until the test opens it.
    """

    def __init__(self, clock: FakeClock, limit: int) -> None:
        self.clock = clock
        self.limit = limit
        self.slots: dict[str, list[float]] = {}
        self.granted: list[tuple[str, float]] = []
        self.asking = 0
        self.most_asking = 0
        self.gate: asyncio.Event | None = None
        self.failures: list[Exception] = []
        self.round_trips = 0
        self.released: list[tuple[str, float]] = []

    async def try_grant(self, workspace_id: str, *, hold: bool = False, want: int = 1) -> Grant:
        self.asking += 1
        self.most_asking = max(self.most_asking, self.asking)
        self.round_trips += 1
        try:
            await asyncio.sleep(0)
            if self.gate is not None:
                await self.gate.wait()
            if self.failures:
                raise self.failures.pop(0)
            now = self.clock.now
            slots = self.slots.setdefault(workspace_id, [float("-inf")] * self.limit)
            oldest = sorted(range(self.limit), key=slots.__getitem__)[: want if hold else 1]
            free = [slot for slot in oldest if now - slots[slot] >= 1.0]
            if not free:
                return Grant(None, slots[oldest[0]] + 1.0 - now)
            grants = []
            for slot in free:
                slots[slot] = float("inf") if hold else now
                self.granted.append((workspace_id, now))
                grants.append(Grant(datetime.fromtimestamp(now, UTC), 0.0, slot))
            return Grant(grants[0].granted_at, 0.0, grants[0].slot, tuple(grants[1:]))
        finally:
            self.asking -= 1

    async def release(self, workspace_id: str, grant: Grant) -> None:
        assert grant.slot is not None
        assert self.slots[workspace_id][grant.slot] == float("inf"), "released twice"
        self.slots[workspace_id][grant.slot] = self.clock.now
        self.released.append((workspace_id, self.clock.now))

    async def flush(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def busiest_second(times: list[float]) -> int:
    """The most calls that started within any one-second window [t, t + 1)."""
    ordered = sorted(times)
    return max((bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


async def test_two_pacers_sharing_a_budget_never_exceed_it_together() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=50)
    # Each process alone would allow 50/s: only the shared budget keeps them to 50 together.
    pacers = [Pacer(rate=50, burst=50, shared=budget, clock=clock, sleep=clock.sleep) for _ in "ab"]

    async def call(pacer: Pacer) -> None:
        await pacer.acquire("ws-1", "bootstrap")

    calls = (call(pacers[i % 2]) for i in range(300))
    await asyncio.wait_for(asyncio.gather(*calls), timeout=10)

    starts = [at for _, at in budget.granted]
    assert len(starts) == 300
    assert busiest_second(starts) == 50
    # 300 calls at 50/s: 50 at once, then 50 more each second.
    assert max(starts) <= 6.0


async def test_held_calls_take_shared_slots_for_the_waiters_queued_in_one_round_trip() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=50)
    pacers = [Pacer(rate=50, burst=50, shared=budget, clock=clock, sleep=clock.sleep) for _ in "ab"]
    ends: list[float] = []

    async def call(pacer: Pacer) -> None:
        async with pacer.call("ws-1", "flow"):
            await clock.sleep(0.01)  # the request's flight
        ends.append(clock.now)

    await asyncio.wait_for(asyncio.gather(*(call(pacers[i % 2]) for i in range(300))), timeout=10)

    starts = [at for _, at in budget.granted]
    assert len(starts) == 300
    assert len(budget.released) == 300  # every slot released once, none left held
    assert busiest_second(starts) <= 50
    # Fewer round trips than calls (one a call, and refusals, before): the first burst
    # takes its slots in one per pacer; later slots free one by one as calls answer.
    assert budget.round_trips < 200


async def test_spare_shared_slots_are_released_when_their_waiters_leave() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=10)
    first_gate, second_gate = asyncio.Event(), asyncio.Event()
    budget.gate = first_gate
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)

    async def call() -> None:
        async with pacer.call("ws-1"):
            await clock.sleep(0.01)

    tasks = [asyncio.create_task(call()) for _ in range(6)]
    await settle()  # the first asks for itself alone; five queue behind it
    budget.gate = second_gate
    first_gate.set()
    await settle()  # the second asks for the five queued, itself included
    for task in tasks[2:]:
        task.cancel()  # four of them give up while it asks
    second_gate.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await settle()

    assert len(budget.granted) == 6
    assert budget.round_trips == 2
    # Two calls' slots, and the four spares given back when nobody was left for them.
    assert len(budget.released) == 6
    assert float("inf") not in budget.slots["ws-1"]


async def test_a_refused_shared_grant_delays_the_call_by_the_wait_it_gives() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=2)
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)

    waits = [await pacer.acquire("ws-1") for _ in range(3)]

    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == pytest.approx(1.0)
    assert [at for _, at in budget.granted] == [0.0, 0.0, pytest.approx(1.0)]


async def test_workspaces_do_not_share_the_shared_budget() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=2)
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)

    waits = [await pacer.acquire(ws) for ws in ("ws-1", "ws-1", "ws-2", "ws-2")]

    assert waits == [0.0] * 4
    assert clock.now == 0.0


async def test_one_pacer_asks_the_shared_budget_once_at_a_time_per_workspace() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=10)
    budget.gate = asyncio.Event()
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)

    tasks = [asyncio.create_task(pacer.acquire("ws-1")) for _ in range(5)]
    tasks.append(asyncio.create_task(pacer.acquire("ws-2")))
    await settle()
    assert budget.asking == 2  # one per workspace; the other four callers wait their turn

    budget.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert budget.most_asking == 2
    assert len(budget.granted) == 6


async def test_lanes_keep_their_order_when_the_shared_budget_is_the_limit() -> None:
    clock = FakeClock(auto=False)
    budget = FakeSharedBudget(clock, limit=1)
    # The local bucket has room; the shared budget (one call a second) holds them back.
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)
    await pacer.acquire("ws-1", "bootstrap")
    assert await order_served(pacer, clock) == ["interactive", "flow", "bootstrap-1", "bootstrap-2"]
    assert [at for _, at in budget.granted] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_a_caller_arriving_while_the_head_asks_is_served_by_its_lane() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=10)
    budget.gate = asyncio.Event()
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)
    served: list[str] = []

    async def call(name: str, lane: Lane) -> None:
        await pacer.acquire("ws-1", lane)
        served.append(name)

    tasks = [asyncio.create_task(call("bootstrap-1", "bootstrap"))]
    await settle()  # bootstrap-1 is asking the budget
    tasks.append(asyncio.create_task(call("bootstrap-2", "bootstrap")))
    tasks.append(asyncio.create_task(call("interactive", "interactive")))
    await settle()
    assert budget.asking == 1  # the interactive caller waits for the answer, then goes first
    budget.gate.set()

    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert served == ["bootstrap-1", "interactive", "bootstrap-2"]


async def test_a_shared_budget_failure_fails_that_call_and_the_queue_moves_on() -> None:
    clock = FakeClock(auto=True)
    budget = FakeSharedBudget(clock, limit=10)
    budget.failures.append(DatabaseUnavailableError("the database is unavailable"))
    pacer = Pacer(rate=100, burst=100, shared=budget, clock=clock, sleep=clock.sleep)

    first = asyncio.create_task(pacer.acquire("ws-1"))
    second = asyncio.create_task(pacer.acquire("ws-1"))
    results = await asyncio.gather(first, second, return_exceptions=True)

    assert isinstance(results[0], ServiceUnavailableError)
    assert results[1] == 0.0
    assert len(budget.granted) == 1


async def test_window_use_counts_calls_in_flight_and_in_the_last_second() -> None:
    clock = FakeClock(auto=False)
    pacer = Pacer(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    assert pacer.window_use("ws") == 0.0

    for _ in range(3):
        await pacer.acquire("ws")
    async with pacer.call("ws"):
        assert pacer.window_use("ws") == pytest.approx(0.4)
    assert pacer.window_use("ws") == pytest.approx(0.4)
    assert pacer.window_use("other") == 0.0

    await clock.advance(1.0)
    assert pacer.window_use("ws") == 0.0
