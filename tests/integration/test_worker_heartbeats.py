"""Worker heartbeats on SQLite and PostgreSQL: a dead worker's jobs are taken over at once,
a live worker's long job never is.

Each queue here has its own engine, as two runtimes (or two processes) would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from addon_core.jobs.queue import DONE, RUNNING, ClaimedJob, JobQueue, new_job
from addon_core.jobs.workers import machine_identity
from addon_core.metrics import Metrics
from addon_core.storage.database import create_engine, create_session_factory, for_writing
from addon_core.storage.models import Job, Worker
from tests.harness import eventually

ADDON = "universal-webhook"
KIND = "test.job"
#: Far longer than any test runs: only a heartbeat verdict can free these jobs.
LONG_LEASE = 3600.0

Build = Callable[..., JobQueue]


@pytest.fixture
async def make_queue(database_url: str) -> AsyncIterator[Build]:
    """Build queues, each on an engine of its own; every one is stopped at the end."""
    queues: list[JobQueue] = []
    engines = []

    def build(worker_id: str, **options: Any) -> JobQueue:
        engine = create_engine(database_url)
        engines.append(engine)
        settings: dict[str, Any] = {
            "workers": 2,
            "lease_seconds": LONG_LEASE,
            "max_attempts": 3,
            "poll_seconds": 0.05,
            "heartbeat_seconds": 0.1,
            "worker_timeout_seconds": 1.0,
            "worker_id": worker_id,
            **options,
        }
        sessions = create_session_factory(for_writing(engine))
        queue = JobQueue(engine, sessions, ADDON, Metrics(ADDON), **settings)
        queues.append(queue)
        return queue

    yield build
    for queue in queues:
        await queue.stop(grace=1.0)
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(database_url)
    yield create_session_factory(for_writing(engine))
    await engine.dispose()


def held_job(worker: str) -> Job:
    """A job that `worker` claimed, with a lease that outlives the test."""
    row = new_job(ADDON, KIND, "ws-1", {}, max_attempts=3)
    row.status = RUNNING
    row.attempts = 1
    row.worker = worker
    row.lease_until = datetime.now(UTC) + timedelta(seconds=LONG_LEASE)
    return row


def worker_row(worker_id: str, *, machine: str, pid: int, beat_ago: float) -> Worker:
    at = datetime.now(UTC) - timedelta(seconds=beat_ago)
    return Worker(
        id=worker_id, addon_key=ADDON, machine=machine, pid=pid, started_at=at, heartbeat_at=at
    )


def exited_pid() -> int:
    """The pid of a process that has run and been reaped: no process has it now."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(30)
    return process.pid


async def seed(sessions: Any, *rows: Any) -> list[Any]:
    async with sessions.begin() as session:
        session.add_all(rows)
    return list(rows)


async def load(sessions: Any, job_id: int) -> Job:
    async with sessions() as session:
        row = await session.get(Job, job_id)
    assert row is not None
    return row


async def worker_ids(sessions: Any) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(select(Worker.id))).all())


def recorder(ran: list[tuple[str, int, int]], name: str) -> Callable[[ClaimedJob], Awaitable[None]]:
    async def handle(claimed: ClaimedJob) -> None:
        ran.append((name, claimed.id, claimed.attempts))

    return handle


async def test_the_jobs_of_a_worker_that_stopped_beating_are_taken_over_at_once(
    make_queue: Build, sessions: Any
) -> None:
    silent, held = await seed(
        sessions,
        worker_row("elsewhere:7:silent", machine="another-host", pid=7, beat_ago=60),
        held_job("elsewhere:7:silent"),
    )
    queue = make_queue("survivor")
    ran: list[tuple[str, int, int]] = []
    queue.register(KIND, recorder(ran, "survivor"))

    await queue.start()
    await eventually(lambda: _done(sessions, held.id), "the job to be taken over")

    # Its lease had an hour to run: only the heartbeat verdict freed it.
    assert ran == [("survivor", held.id, 2)]
    assert silent.id not in await worker_ids(sessions)


async def test_a_restart_on_the_same_machine_takes_over_its_dead_predecessors_jobs_at_start(
    make_queue: Build, sessions: Any
) -> None:
    # The predecessor beat a moment ago, then was killed: its pid is gone from this machine.
    _, held = await seed(
        sessions,
        worker_row("here:gone", machine=machine_identity(), pid=exited_pid(), beat_ago=0),
        held_job("here:gone"),
    )
    queue = make_queue("restarted", worker_timeout_seconds=600.0)
    ran: list[tuple[str, int, int]] = []
    queue.register(KIND, recorder(ran, "restarted"))

    await queue.beat()  # what `start` does first
    taken = await load(sessions, held.id)
    assert (taken.status, taken.worker, taken.lease_until) == ("queued", None, None)

    await queue.start()
    await eventually(lambda: _done(sessions, held.id), "the job to run")
    assert ran == [("restarted", held.id, 2)]


async def test_a_live_workers_long_job_is_never_taken_by_another_worker(
    make_queue: Build, sessions: Any
) -> None:
    # A short lease the job outlives three times over while it runs; the worker timeout is
    # twenty beats, so a loaded machine's stall does not pass for a dead holder.
    options = {"lease_seconds": 1.0, "heartbeat_seconds": 0.1, "worker_timeout_seconds": 2.0}
    holder = make_queue("holder", **options)
    other = make_queue("other", **options)
    runs: list[str] = []
    release = asyncio.Event()

    def handler(name: str) -> Callable[[ClaimedJob], Awaitable[None]]:
        async def handle(claimed: ClaimedJob) -> None:
            runs.append(name)
            await release.wait()

        return handle

    holder.register(KIND, handler("holder"))
    other.register(KIND, handler("other"))
    [job] = await seed(sessions, new_job(ADDON, KIND, "ws-1", {}, max_attempts=3))
    await holder.start()
    await eventually(lambda: _truthy(runs), "the holder to start the job")
    await other.start()
    await asyncio.sleep(3.0)  # three leases
    running = await load(sessions, job.id)
    assert (running.status, running.worker, running.attempts) == (RUNNING, "holder", 1)
    release.set()
    await eventually(lambda: _done(sessions, job.id), "the job to finish")

    assert runs == ["holder"]
    assert (await load(sessions, job.id)).attempts == 1


async def test_a_stopped_queue_forgets_its_worker_and_a_running_one_is_registered(
    make_queue: Build, sessions: Any
) -> None:
    queue = make_queue("short-lived")
    await queue.start()
    assert "short-lived" in await worker_ids(sessions)

    await queue.stop(grace=1.0)
    assert "short-lived" not in await worker_ids(sessions)


async def test_a_worker_that_beat_recently_on_another_machine_keeps_its_jobs(
    make_queue: Build, sessions: Any
) -> None:
    _, held = await seed(
        sessions,
        worker_row("elsewhere:7:alive", machine="another-host", pid=7, beat_ago=0),
        held_job("elsewhere:7:alive"),
    )
    queue = make_queue("neighbour", worker_timeout_seconds=600.0)
    await queue.beat()

    kept = await load(sessions, held.id)
    assert (kept.status, kept.worker) == (RUNNING, "elsewhere:7:alive")


async def _done(sessions: Any, job_id: int) -> bool:
    return (await load(sessions, job_id)).status == DONE


async def _truthy(values: list[str]) -> bool:
    return bool(values)
