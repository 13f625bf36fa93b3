"""The per-workspace request budget: window limit, separate workspaces, priority lanes."""

from __future__ import annotations

import asyncio

import pytest

from addon_core.pacing import Lane, Pacer


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

    await asyncio.gather(*tasks)
    assert served == ["interactive", "flow", "bootstrap-1", "bootstrap-2"]


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


def test_a_pacer_needs_a_positive_rate_and_burst() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        Pacer(rate=0, burst=1)
