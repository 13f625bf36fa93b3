"""The Clockify budget shared through PostgreSQL: no 1-second window, by the database clock,
holds more than the limit, whether the callers share a process or not."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import sys
import time
from bisect import bisect_left
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from addon_core.clockify.budget import Grant, PostgresBudget, open_shared_budget
from addon_core.clockify.pacing import Lane, Pacer
from addon_core.errors import ServiceUnavailableError
from addon_core.storage.database import DatabaseUnavailableError, create_engine
from tests.conftest import POSTGRES_VARIABLE, REPO

LIMIT = 50
LANES: tuple[Lane, ...] = ("interactive", "flow", "bootstrap")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    """PostgreSQL only: SQLite deployments run one process and need no shared budget."""
    if not os.environ.get(POSTGRES_VARIABLE):
        pytest.skip(f"{POSTGRES_VARIABLE} is not set")
    return "postgres"


def microseconds(at: datetime) -> int:
    """An exact integer time, so that a window edge is not blurred by float rounding."""
    return (at - _EPOCH) // _MICROSECOND


def busiest_second(times: list[int]) -> int:
    """The most grants (in microseconds) within any one-second window [t, t + 1 s)."""
    ordered = sorted(times)
    return max((bisect_left(ordered, t + 1_000_000) - i for i, t in enumerate(ordered)), default=0)


def achieved_fraction(times: list[int], limit: int) -> float:
    """The rate after the first second's burst, as a fraction of the limit."""
    span = (max(times) - min(times)) / 1e6
    ideal = math.ceil(len(times) / limit) - 1  # whole seconds of `limit` grants each
    return ideal / span if span else 1.0


class RecordingBudget(PostgresBudget):
    """The real budget, remembering when (database clock) each grant was made."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.granted: list[int] = []

    async def try_grant(self, workspace_id: str, *, hold: bool = False, want: int = 1) -> Grant:
        grant = await super().try_grant(workspace_id, hold=hold, want=want)
        for taken in (grant, *grant.more):
            if taken.granted_at is not None:
                self.granted.append(microseconds(taken.granted_at))
        return grant


async def test_two_pacers_on_one_shared_budget_keep_to_the_limit(database_url: str) -> None:
    engine = create_engine(database_url)
    budget = RecordingBudget(engine, "api-studio", LIMIT)
    # Each pacer alone allows LIMIT/s: only the shared budget keeps them to LIMIT together.
    pacers = [Pacer(rate=LIMIT, burst=LIMIT, shared=budget) for _ in range(2)]
    try:
        started = time.monotonic()
        calls = (pacers[i % 2].acquire("ws-1", LANES[i % 3]) for i in range(300))
        await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
        elapsed = time.monotonic() - started
    finally:
        await budget.aclose()
        await engine.dispose()

    assert len(budget.granted) == 300
    assert busiest_second(budget.granted) <= LIMIT
    # A correctness test, not a benchmark: a generous bound on 300 calls at LIMIT/s.
    assert elapsed < 3 * 300 / LIMIT
    print(f"one process, two pacers: {achieved_fraction(budget.granted, LIMIT):.1%} of the limit")


async def test_concurrent_grants_on_many_connections_never_take_a_slot_twice(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    budgets = [RecordingBudget(engine, "api-studio", LIMIT) for _ in range(6)]

    async def take(budget: PostgresBudget, count: int) -> None:
        granted = 0
        while granted < count:
            grant = await budget.try_grant("ws-1")
            granted += grant.granted
            await asyncio.sleep(grant.wait)  # 0.0 when granted: ask again at once

    try:
        await asyncio.wait_for(asyncio.gather(*(take(b, 25) for b in budgets)), timeout=60)
    finally:
        for budget in budgets:
            await budget.aclose()
        await engine.dispose()

    granted = [at for budget in budgets for at in budget.granted]
    assert len(granted) == 150
    assert busiest_second(granted) <= LIMIT


# Run by the test below in two OS processes: after "ready", waits for a line on stdin,
# then makes COUNT paced calls and prints each grant time (database clock, microseconds).
_WORKER = """
import asyncio, sys
from datetime import UTC, datetime, timedelta
from addon_core.clockify.budget import PostgresBudget
from addon_core.storage.database import create_engine
from addon_core.clockify.pacing import Pacer

url, workspace, limit, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
held = sys.argv[5:] == ["held"]
epoch = datetime(1970, 1, 1, tzinfo=UTC)

class Printing(PostgresBudget):
    async def try_grant(self, workspace_id, *, hold=False, want=1):
        grant = await super().try_grant(workspace_id, hold=hold, want=want)
        for taken in (grant, *grant.more):
            if taken.granted_at is not None:
                print((taken.granted_at - epoch) // timedelta(microseconds=1), flush=True)
        return grant

async def main():
    engine = create_engine(url)
    budget = Printing(engine, "universal-webhook", limit)
    pacer = Pacer(rate=limit, burst=limit, shared=budget)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    async def held_call():
        async with pacer.call(workspace, "bootstrap"):
            await asyncio.sleep(0.002)  # the request's flight

    calls = (held_call() if held else pacer.acquire(workspace, "bootstrap") for _ in range(count))
    await asyncio.gather(*calls)
    await budget.aclose()
    await engine.dispose()

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["started", "held"])
async def test_two_processes_share_one_budget_per_workspace(database_url: str, mode: str) -> None:
    """Calls counted from their start, or held until their answer and released in batches."""
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            database_url,
            "ws-1",
            str(LIMIT),
            "150",
            mode,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            ready = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
            assert ready == b"ready\n", (await worker.communicate())[1].decode()[-2000:]
        started = time.monotonic()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(worker.communicate(b"go\n") for worker in workers)), timeout=120
        )
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()

    grants = []
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()[-2000:]
        grants.append([int(line) for line in stdout.split()])
    first, second = grants
    assert len(first) == len(second) == 150
    if mode == "started":
        # They ran together: each was granted calls before the other's last.
        assert min(first) < max(second)
        assert min(second) < max(first)
    # Held calls: a saturated process asks again the moment its own slots free (its
    # window says when), so the other may only get slots once it is done; not fair
    # (architecture, "Shared Clockify budget"), but never over the limit either way.
    merged = first + second
    assert busiest_second(merged) <= LIMIT
    assert elapsed < 3 * 300 / LIMIT
    print(
        f"two processes: {achieved_fraction(merged, LIMIT):.1%} of the limit, "
        f"300 calls in {elapsed:.2f} s after start"
    )


async def test_releases_are_written_together_each_from_its_own_answer(database_url: str) -> None:
    engine = create_engine(database_url)
    budget = PostgresBudget(engine, "api-studio", 3, hold_seconds=60.0, release_delay=0.5)
    try:
        grants = [await budget.try_grant("ws-1", hold=True) for _ in range(3)]
        trips_before_release = budget.round_trips
        for grant in grants:
            await budget.release("ws-1", grant)
        unwritten = await budget.try_grant("ws-1")
        await budget.flush()
        trips_for_release = budget.round_trips - trips_before_release
        written = await budget.try_grant("ws-1")
        async with engine.connect() as connection:
            ages = (
                await connection.scalars(
                    text(
                        "SELECT extract(epoch FROM clock_timestamp() - granted_at) "
                        "FROM budget_slots WHERE addon_key = 'api-studio' AND workspace_id = 'ws-1'"
                    )
                )
            ).all()
    finally:
        await budget.aclose()
        await engine.dispose()

    assert all(grant.granted for grant in grants)
    # Before the batch is written the slots are still held; three releases, one statement.
    assert not unwritten.granted
    assert unwritten.wait == 1.0  # held: ask again within the window
    assert trips_for_release == 2  # the refused grant and the batch
    # Written, each counts from its answer: free again within a second, not before.
    assert not written.granted
    assert 0.0 < written.wait <= 1.0
    assert len(ages) == 3
    assert all(0.0 <= age < 1.0 for age in ages)


async def test_a_held_grant_takes_the_free_slots_asked_for_in_one_statement(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    budget = PostgresBudget(engine, "api-studio", 3, hold_seconds=60.0)
    try:
        assert (await budget.try_grant("ws-1", hold=True)).granted  # creates the slots
        trips = budget.round_trips
        several = await budget.try_grant("ws-1", hold=True, want=5)
        trips = budget.round_trips - trips
        none_left = await budget.try_grant("ws-1", hold=True, want=2)
        unheld = await budget.try_grant("ws-2", want=3)
    finally:
        await budget.aclose()
        await engine.dispose()

    # Two slots were free: both taken by one statement, the third is held.
    assert several.granted
    assert trips == 1
    assert sorted(grant.slot for grant in (several, *several.more)) == [1, 2]
    assert not none_left.granted
    # A grant counted from its start takes one slot only: a spare would start later.
    assert unheld.granted
    assert unheld.more == ()


async def test_closing_the_budget_writes_its_pending_releases(database_url: str) -> None:
    engine = create_engine(database_url)
    budget = PostgresBudget(engine, "api-studio", 1, hold_seconds=60.0, release_delay=0.9)
    other = PostgresBudget(engine, "api-studio", 1)
    try:
        grant = await budget.try_grant("ws-1", hold=True)
        await budget.release("ws-1", grant)
        await budget.aclose()
        after_close = await other.try_grant("ws-1")
    finally:
        await other.aclose()
        await engine.dispose()

    assert grant.granted
    assert not after_close.granted
    assert 0.0 < after_close.wait <= 1.0


async def test_workspaces_and_addons_do_not_share_a_budget(database_url: str) -> None:
    engine = create_engine(database_url)
    webhook = PostgresBudget(engine, "universal-webhook", 3)
    studio = PostgresBudget(engine, "api-studio", 3)
    try:
        first = [await webhook.try_grant("ws-a") for _ in range(4)]
        other_workspace = [await webhook.try_grant("ws-b") for _ in range(3)]
        other_addon = [await studio.try_grant("ws-a") for _ in range(3)]
    finally:
        await webhook.aclose()
        await studio.aclose()
        await engine.dispose()

    assert [grant.granted for grant in first] == [True, True, True, False]
    assert 0.0 < first[3].wait <= 1.0
    assert all(grant.granted and grant.wait == 0.0 for grant in other_workspace + other_addon)


async def test_a_changed_limit_keeps_working(database_url: str) -> None:
    engine = create_engine(database_url)
    budgets = {limit: PostgresBudget(engine, "api-studio", limit) for limit in (1, 2, 3)}
    try:
        at_two = [(await budgets[2].try_grant("ws-1")).granted for _ in range(3)]
        raised = [(await budgets[3].try_grant("ws-1")).granted for _ in range(2)]
        lowered = (await budgets[1].try_grant("ws-1")).granted
    finally:
        for budget in budgets.values():
            await budget.aclose()
        await engine.dispose()

    assert at_two == [True, True, False]
    assert raised == [True, False]  # the third slot is added, and only it is free
    assert lowered is False


async def test_a_connection_the_server_closed_is_replaced_without_failing(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    budget = PostgresBudget(engine, "api-studio", LIMIT)
    try:
        assert (await budget.try_grant("ws-1")).granted  # its connection is now kept
        async with engine.connect() as conn:
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert (await budget.try_grant("ws-1")).granted
    finally:
        await budget.aclose()
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_database_fails_the_call_with_503() -> None:
    engine = create_engine(f"postgresql+asyncpg://nobody@127.0.0.1:{_closed_port()}/none")
    budget = open_shared_budget(engine, "api-studio", LIMIT)
    assert budget is not None
    pacer = Pacer(rate=LIMIT, burst=LIMIT, shared=budget)
    try:
        with pytest.raises(DatabaseUnavailableError) as raised:
            await pacer.acquire("ws-1")
        # Nothing queued is left behind: the next caller asks again (and fails too).
        with pytest.raises(ServiceUnavailableError):
            await asyncio.wait_for(pacer.acquire("ws-1"), timeout=10)
    finally:
        await budget.aclose()
        await engine.dispose()
    assert raised.value.status_code == 503


async def test_sqlite_has_no_shared_budget(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'addons.db'}")
    try:
        assert open_shared_budget(engine, "api-studio", LIMIT) is None
    finally:
        await engine.dispose()


async def test_a_held_slot_is_nobody_elses_until_released_and_then_counts_from_release(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    budget = PostgresBudget(engine, "api-studio", 1, hold_seconds=60.0)
    try:
        held = await budget.try_grant("ws-1", hold=True)
        assert held.granted
        assert held.slot == 0
        while_in_flight = await budget.try_grant("ws-1")
        await budget.release("ws-1", held)
        await budget.flush()
        after_release = await budget.try_grant("ws-1")
        async with engine.connect() as connection:
            stamped_age = await connection.scalar(
                text(
                    "SELECT extract(epoch FROM clock_timestamp() - granted_at) FROM budget_slots "
                    "WHERE addon_key = 'api-studio' AND workspace_id = 'ws-1'"
                )
            )
    finally:
        await budget.aclose()
        await engine.dispose()

    # In flight, the slot is stamped a minute ahead: refused, asked again within a second.
    assert not while_in_flight.granted
    assert while_in_flight.wait == 1.0
    # Released, it counts from the answer: taken again only a second later.
    assert not after_release.granted
    assert 0.0 < after_release.wait <= 1.0
    assert 0.0 <= stamped_age < 1.0
