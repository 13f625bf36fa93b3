"""Durable jobs on SQLite and PostgreSQL: enqueue, retry, dead letters, order, leases, stop."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from addon_core.clockify.tokens import TokenSigner
from addon_core.jobs.queue import (
    DEAD,
    DONE,
    LEASE_EXPIRED_ERROR,
    QUEUED,
    RUNNING,
    ClaimedJob,
    JobQueue,
    PermanentJobError,
    RetryJobError,
    new_job,
)
from addon_core.metrics import Metrics
from addon_core.runtime import AddonRuntime
from addon_core.storage.database import create_session_factory, for_writing
from addon_core.storage.encryption import generate_key
from addon_core.storage.models import Installation, Job
from tests.fake_clockify import Workspace
from tests.harness import SCRIPT, bearer, eventually

ADDON = "universal-webhook"
KIND = "test.job"
#: A generous bound for "eventually": liveness, not speed (benchmarks measure speed).
PATIENCE = 20.0
FAKE_JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJlc2lnbmF0dXJl"

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
def sessions(engine: AsyncEngine) -> Sessions:
    return create_session_factory(for_writing(engine))


@pytest.fixture
async def make_queue(
    engine: AsyncEngine, sessions: Sessions
) -> AsyncIterator[Callable[..., JobQueue]]:
    """Build queues with quick test settings; every started one is stopped at the end."""
    queues: list[JobQueue] = []

    def build(**options: Any) -> JobQueue:
        settings: dict[str, Any] = {
            "workers": 4,
            "lease_seconds": 30.0,
            "max_attempts": 3,
            "backoff_seconds": 0.01,
            "backoff_max_seconds": 0.05,
            "poll_seconds": 0.05,
            "worker_id": f"test-worker-{len(queues)}",
            **options,
        }
        queue = JobQueue(engine, sessions, ADDON, Metrics(ADDON), **settings)
        queues.append(queue)
        return queue

    yield build
    for queue in queues:
        await queue.stop(grace=1.0)


async def add_jobs(sessions: Sessions, *jobs: Job) -> list[int]:
    async with sessions.begin() as session:
        session.add_all(jobs)
    return [job.id for job in jobs]


def job(
    workspace_id: str = "ws-1",
    *,
    ordering_key: str | None = None,
    max_attempts: int = 3,
    **values: Any,
) -> Job:
    """A job row of the test kind (attempts as the test queues allow), with `values` set."""
    row = new_job(
        ADDON,
        KIND,
        workspace_id,
        {"n": values.pop("n", 0)},
        ordering_key=ordering_key,
        max_attempts=max_attempts,
    )
    for name, value in values.items():
        setattr(row, name, value)
    return row


def record(queue: JobQueue) -> list[ClaimedJob]:
    """Register a handler of KIND that keeps each job it runs; return the list it fills."""
    ran: list[ClaimedJob] = []

    async def handle(claimed: ClaimedJob) -> None:
        ran.append(claimed)

    queue.register(KIND, handle)
    return ran


async def load(sessions: Sessions, job_id: int) -> Job:
    async with sessions() as session:
        row = await session.get(Job, job_id)
    assert row is not None
    return row


async def status_of(sessions: Sessions, job_id: int) -> str:
    return (await load(sessions, job_id)).status


# --- enqueue -------------------------------------------------------------------------------------


async def test_a_job_enqueued_in_a_rolled_back_transaction_never_exists(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    ran = record(queue)

    class Abort(Exception):
        pass

    async def store_then_fail() -> None:
        async with sessions.begin() as session:
            session.add(queue.new(KIND, "ws-1", {"n": 1}))
            await session.flush()
            raise Abort

    with pytest.raises(Abort):
        await store_then_fail()
    await queue.run_until_idle()

    assert ran == []
    async with sessions() as session:
        assert (await session.scalars(select(Job))).all() == []


async def test_a_job_enqueued_with_the_callers_commit_runs_once_with_its_payload(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    ran = record(queue)
    async with sessions.begin() as session:
        row = queue.new(KIND, "ws-1", {"event_id": 42}, ordering_key="ws-1:e")
        session.add(row)
    await queue.run_until_idle()
    await queue.run_until_idle()

    assert [(c.id, c.kind, c.workspace_id, dict(c.payload), c.attempts) for c in ran] == [
        (row.id, KIND, "ws-1", {"event_id": 42}, 1)
    ]
    stored = await load(sessions, row.id)
    assert (stored.status, stored.lease_until, stored.worker) == (DONE, None, None)


# --- failures ------------------------------------------------------------------------------------


async def test_a_failing_job_is_retried_with_growing_backoff_then_dead_with_its_error(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue(max_attempts=3, backoff_seconds=0.2, backoff_max_seconds=10.0)
    started: list[float] = []

    async def handle(claimed: ClaimedJob) -> None:
        started.append(time.monotonic())
        raise ValueError(f"attempt {claimed.attempts} broke")

    queue.register(KIND, handle)
    [job_id] = await add_jobs(sessions, job())
    await queue.start()
    await eventually(lambda: _is(sessions, job_id, DEAD), "the job to go dead")

    stored = await load(sessions, job_id)
    assert stored.attempts == 3
    assert stored.last_error == "ValueError: attempt 3 broke"
    assert (stored.lease_until, stored.worker) == (None, None)
    assert len(started) == 3
    # Each wait is at least half its step of the exponential backoff: 0.2 s, then 0.4 s.
    assert started[1] - started[0] >= 0.1
    assert started[2] - started[1] >= 0.2


async def test_a_permanent_error_makes_the_job_dead_at_once(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    calls = 0

    async def handle(claimed: ClaimedJob) -> None:
        nonlocal calls
        calls += 1
        raise PermanentJobError("the flow was deleted")

    queue.register(KIND, handle)
    [job_id] = await add_jobs(sessions, job())
    await queue.run_until_idle()

    stored = await load(sessions, job_id)
    assert (stored.status, stored.attempts, calls) == (DEAD, 1, 1)
    assert stored.last_error == "PermanentJobError: the flow was deleted"


async def test_a_job_of_an_unknown_kind_is_dead_naming_the_kind(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    [job_id] = await add_jobs(sessions, job())
    await queue.run_until_idle()

    stored = await load(sessions, job_id)
    assert stored.status == DEAD
    assert KIND in (stored.last_error or "")


async def test_a_retry_request_runs_the_job_again_after_its_delay(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    started: list[float] = []

    async def handle(claimed: ClaimedJob) -> None:
        started.append(time.monotonic())
        if len(started) == 1:
            raise RetryJobError("Clockify is busy", delay=0.5)

    queue.register(KIND, handle)
    [job_id] = await add_jobs(sessions, job())
    await queue.run_until_idle()

    waiting = await load(sessions, job_id)
    assert (waiting.status, waiting.attempts) == (QUEUED, 1)
    assert waiting.last_error == "RetryJobError: Clockify is busy"
    await queue.start()
    await eventually(lambda: _is(sessions, job_id, DONE), "the retried job to finish")
    assert len(started) == 2
    assert started[1] - started[0] >= 0.5


async def test_the_last_error_is_stored_without_secrets(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()

    async def handle(claimed: ClaimedJob) -> None:
        raise RuntimeError(f"call failed with X-Addon-Token: {FAKE_JWT}")

    queue.register(KIND, handle)
    [job_id] = await add_jobs(sessions, job(max_attempts=1))
    await queue.run_until_idle()

    stored = await load(sessions, job_id)
    assert stored.status == DEAD
    assert stored.last_error is not None
    assert "RuntimeError: call failed" in stored.last_error
    assert FAKE_JWT not in stored.last_error
    assert "c2lnbmF0dXJl" not in stored.last_error


# --- order ---------------------------------------------------------------------------------------


async def test_jobs_of_one_ordering_key_run_one_at_a_time_in_order(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queues = [make_queue(workers=4), make_queue(workers=4)]
    spans: list[tuple[int, float, float]] = []

    async def handle(claimed: ClaimedJob) -> None:
        begun = time.monotonic()
        await asyncio.sleep(0.02)
        spans.append((int(claimed.payload["n"]), begun, time.monotonic()))

    for queue in queues:
        queue.register(KIND, handle)
    ids = await add_jobs(sessions, *(job(ordering_key="ws-1:entity", n=n) for n in range(8)))
    for queue in queues:
        await queue.start()
    await eventually(lambda: _all(sessions, ids, DONE), "every job to finish")

    assert [n for n, _begun, _ended in spans] == list(range(8))
    for (_n, _b, ended), (_next, begun, _e) in itertools.pairwise(spans):
        assert begun >= ended


async def test_a_failed_job_holds_back_the_later_jobs_of_its_key_until_it_succeeds(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue(backoff_seconds=0.1, backoff_max_seconds=0.1)
    order: list[tuple[int, int]] = []

    async def handle(claimed: ClaimedJob) -> None:
        order.append((int(claimed.payload["n"]), claimed.attempts))
        if claimed.payload["n"] == 0 and claimed.attempts == 1:
            raise ValueError("first try fails")

    queue.register(KIND, handle)
    ids = await add_jobs(sessions, job(ordering_key="k", n=0), job(ordering_key="k", n=1))
    await queue.start()
    await eventually(lambda: _all(sessions, ids, DONE), "both jobs to finish")

    assert order == [(0, 1), (0, 2), (1, 1)]


async def test_jobs_of_different_keys_run_at_the_same_time(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue(workers=4)
    started = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def handle(claimed: ClaimedJob) -> None:
        mine, other = ("a", "b") if claimed.ordering_key == "ws-1:a" else ("b", "a")
        started[mine].set()
        # Finishes only if the other key's job is running at the same time.
        await asyncio.wait_for(started[other].wait(), PATIENCE)

    queue.register(KIND, handle)
    ids = await add_jobs(sessions, job(ordering_key="ws-1:a"), job(ordering_key="ws-1:b"))
    await queue.run_until_idle()

    assert await _all(sessions, ids, DONE)


async def test_the_same_ordering_key_of_another_add_on_does_not_hold_a_job_back(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    ran = record(queue)
    other = job(ordering_key="ws-1:e")
    other.addon_key = "api-studio"
    [_other_id, mine] = await add_jobs(sessions, other, job(ordering_key="ws-1:e"))
    await queue.run_until_idle()

    assert [c.id for c in ran] == [mine]


async def test_a_queue_claims_no_more_jobs_than_it_has_free_workers(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue(workers=2)
    release = asyncio.Event()

    async def handle(claimed: ClaimedJob) -> None:
        await release.wait()

    queue.register(KIND, handle)
    ids = await add_jobs(sessions, *(job(ordering_key=f"ws-1:{n}") for n in range(12)))
    await queue.start()
    await eventually(lambda: _count(sessions, RUNNING, 2), "two jobs to be claimed")
    await asyncio.sleep(0.3)  # several polls: a greedy claimer would take more by now

    assert await _count(sessions, RUNNING, 2)
    release.set()
    await eventually(lambda: _all(sessions, ids, DONE), "every job to finish")


# --- leases --------------------------------------------------------------------------------------


async def test_a_job_whose_worker_died_is_run_by_another_queue_after_its_lease(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    [job_id] = await add_jobs(
        sessions, job(status=RUNNING, attempts=1, worker="crashed:1", lease_until=past)
    )
    queue = make_queue(worker_id="survivor:2")
    ran = record(queue)
    await queue.run_until_idle()

    assert [(c.id, c.attempts) for c in ran] == [(job_id, 2)]
    assert await status_of(sessions, job_id) == DONE


async def test_a_job_under_a_live_lease_is_left_to_its_worker(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    future = datetime.now(UTC) + timedelta(seconds=60)
    [job_id] = await add_jobs(
        sessions, job(status=RUNNING, attempts=1, worker="alive:1", lease_until=future)
    )
    queue = make_queue()
    ran = record(queue)
    await queue.run_until_idle()

    assert ran == []
    stored = await load(sessions, job_id)
    assert (stored.status, stored.worker) == (RUNNING, "alive:1")


async def test_a_job_whose_last_attempt_lost_its_worker_goes_dead(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    [job_id] = await add_jobs(
        sessions,
        job(status=RUNNING, attempts=3, max_attempts=3, worker="crashed:1", lease_until=past),
    )
    queue = make_queue()
    await queue.run_until_idle()

    stored = await load(sessions, job_id)
    assert (stored.status, stored.last_error, stored.worker) == (DEAD, LEASE_EXPIRED_ERROR, None)


async def test_a_long_job_keeps_its_lease_while_it_runs(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    holder = make_queue(lease_seconds=1.0, worker_id="holder")
    other = make_queue(lease_seconds=1.0, worker_id="other")
    runs: list[str] = []
    release = asyncio.Event()

    def handler(name: str) -> Callable[[ClaimedJob], Awaitable[None]]:
        async def handle(claimed: ClaimedJob) -> None:
            runs.append(name)
            await release.wait()

        return handle

    holder.register(KIND, handler("holder"))
    other.register(KIND, handler("other"))
    [job_id] = await add_jobs(sessions, job())
    await holder.start()
    await eventually(lambda: _truthy(runs), "the holder to start the job")
    await other.start()
    await asyncio.sleep(2.5)  # over two lease lengths: only the heartbeat keeps it
    release.set()
    await eventually(lambda: _is(sessions, job_id, DONE), "the job to finish")

    assert runs == ["holder"]


# --- wake-up and stop ----------------------------------------------------------------------------


async def test_an_enqueued_job_starts_long_before_the_next_poll(
    make_queue: Callable[..., JobQueue],
) -> None:
    queue = make_queue(poll_seconds=30.0)
    ran = asyncio.Event()

    async def handle(claimed: ClaimedJob) -> None:
        ran.set()

    queue.register(KIND, handle)
    await queue.start()
    await asyncio.sleep(0.2)  # the claimer has looked, found nothing, and sleeps on its poll
    await queue.enqueue(KIND, "ws-1", {"n": 1})

    # A liveness bound far below the 30 s poll, not a measurement.
    await asyncio.wait_for(ran.wait(), timeout=10.0)


async def test_stop_lets_a_running_job_finish_within_the_grace(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    started = asyncio.Event()

    async def handle(claimed: ClaimedJob) -> None:
        started.set()
        await asyncio.sleep(0.3)

    queue.register(KIND, handle)
    [job_id] = await add_jobs(sessions, job())
    await queue.start()
    await asyncio.wait_for(started.wait(), PATIENCE)
    await queue.stop(grace=PATIENCE)

    assert await status_of(sessions, job_id) == DONE


async def test_stop_releases_a_job_that_outlives_the_grace_for_another_worker(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    first = make_queue(worker_id="stopping")
    started = asyncio.Event()

    async def hang(claimed: ClaimedJob) -> None:
        started.set()
        await asyncio.Event().wait()

    first.register(KIND, hang)
    [job_id] = await add_jobs(sessions, job())
    await first.start()
    await asyncio.wait_for(started.wait(), PATIENCE)
    await first.stop(grace=0.2)

    released = await load(sessions, job_id)
    assert (released.status, released.lease_until, released.worker) == (QUEUED, None, None)
    assert released.attempts == 0  # cut short by the shutdown: not a failed attempt

    second = make_queue(worker_id="next")
    ran = record(second)
    await second.run_until_idle()
    assert [(c.id, c.attempts) for c in ran] == [(job_id, 1)]
    assert await status_of(sessions, job_id) == DONE


async def test_a_stopped_queue_claims_nothing_more(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    ran = record(queue)
    await queue.start()
    await queue.stop(grace=1.0)
    [job_id] = await add_jobs(sessions, job())
    queue.wake()
    await asyncio.sleep(0.3)

    assert ran == []
    assert await status_of(sessions, job_id) == QUEUED


# --- many claimers -------------------------------------------------------------------------------


async def test_two_queues_on_one_database_run_each_job_exactly_once(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queues = [make_queue(worker_id="one", workers=4), make_queue(worker_id="two", workers=4)]
    ran: list[tuple[str, int]] = []

    def handler(name: str) -> Callable[[ClaimedJob], Awaitable[None]]:
        async def handle(claimed: ClaimedJob) -> None:
            await asyncio.sleep(0.01)
            ran.append((name, claimed.id))

        return handle

    for queue in queues:
        queue.register(KIND, handler(queue.worker_id))
    ids = await add_jobs(sessions, *(job(n=n) for n in range(100)))
    await asyncio.gather(*(queue.start() for queue in queues))
    await eventually(lambda: _all(sessions, ids, DONE), "every job to finish")

    assert sorted(job_id for _name, job_id in ran) == sorted(ids)
    assert {name for name, _id in ran} == {"one", "two"}


# --- metrics -------------------------------------------------------------------------------------


async def test_sampling_sets_the_queue_depth_oldest_age_and_dead_gauges(
    make_queue: Callable[..., JobQueue], sessions: Sessions
) -> None:
    queue = make_queue()
    old = datetime.now(UTC) - timedelta(seconds=120)
    await add_jobs(
        sessions,
        job(run_at=old),
        job(),
        job(status=DEAD, last_error="x"),
        job(status=DONE),
    )
    await queue.sample()

    text = queue._metrics.render()[0].decode()
    assert f'addon_job_queue_depth{{addon="{ADDON}",kind="{KIND}"}} 2.0' in text
    assert f'addon_jobs_dead{{addon="{ADDON}"}} 1.0' in text
    age = _gauge(text, "addon_job_oldest_age_seconds")
    assert 120 <= age < 120 + PATIENCE


# --- dead letters over the API -------------------------------------------------------------------


@pytest.fixture
async def api_app(
    make_app: Callable[..., Litestar],
) -> AsyncIterator[tuple[AsyncTestClient[Litestar], AddonRuntime]]:
    app = make_app("universal-webhook")
    async with AsyncTestClient(app=app) as client:
        yield client, app.state.runtime


async def installed(sessions: Sessions, *workspaces: Workspace) -> None:
    """Record the add-on as installed and active: /api/ writes need it."""
    async with sessions.begin() as session:
        session.add_all(
            Installation(
                addon_key=ADDON,
                workspace_id=workspace.workspace_id,
                addon_id=workspace.addon_id,
                status="ACTIVE",
            )
            for workspace in workspaces
        )


async def test_dead_jobs_are_listed_for_the_callers_workspace_only_newest_first(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime],
    sessions: Sessions,
    signer: Callable[[str], TokenSigner],
) -> None:
    client, _runtime = api_app
    mine, theirs = Workspace(signer(ADDON)), Workspace(signer(ADDON))
    ids = await add_jobs(
        sessions,
        job(mine.workspace_id, status=DEAD, attempts=3, last_error=f"Boom: {FAKE_JWT}"),
        job(theirs.workspace_id, status=DEAD, last_error="theirs"),
        job(mine.workspace_id, status=DEAD, attempts=2, last_error="second"),
        job(mine.workspace_id, status=QUEUED),
    )

    first = await client.get(
        "/api/jobs/dead", params={"limit": 1}, headers=bearer(mine.user_token())
    )
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["id"] for item in page["items"]] == [ids[2]]
    assert page["next"]
    second = await client.get(
        "/api/jobs/dead",
        params={"limit": 1, "cursor": page["next"]},
        headers=bearer(mine.user_token()),
    )
    [item] = second.json()["items"]
    assert second.json()["next"] is None
    assert item["id"] == ids[0]
    assert set(item) >= {"id", "kind", "attempts", "lastError", "createdAt", "updatedAt", "payload"}
    assert (item["kind"], item["attempts"], item["payload"]) == (KIND, 3, {"n": 0})
    assert item["lastError"].startswith("Boom: ")
    assert FAKE_JWT not in item["lastError"]
    assert datetime.fromisoformat(item["createdAt"]).tzinfo is not None


async def test_a_dead_job_is_replayed_with_fresh_attempts_and_runs_again(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime],
    sessions: Sessions,
    signer: Callable[[str], TokenSigner],
) -> None:
    client, _runtime = api_app
    workspace = Workspace(signer(ADDON))
    await installed(sessions, workspace)
    [job_id] = await add_jobs(
        sessions, job(workspace.workspace_id, status=DEAD, attempts=3, last_error="old")
    )

    response = await client.post(
        f"/api/jobs/{job_id}/replay", headers=bearer(workspace.user_token())
    )

    assert response.status_code == 202, response.text
    assert (response.json()["id"], response.json()["attempts"]) == (job_id, 0)
    # The app has no handler for the test kind: it runs it once more and it is dead again.
    await eventually(
        lambda: _dead_after(sessions, job_id, attempts=1), "the replayed job to run again"
    )


async def test_replaying_needs_a_writer_role(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime],
    sessions: Sessions,
    signer: Callable[[str], TokenSigner],
) -> None:
    client, _runtime = api_app
    workspace = Workspace(signer(ADDON))
    await installed(sessions, workspace)
    [job_id] = await add_jobs(sessions, job(workspace.workspace_id, status=DEAD))

    response = await client.post(
        f"/api/jobs/{job_id}/replay", headers=bearer(workspace.user_token("USER"))
    )

    assert response.status_code == 403
    assert (await load(sessions, job_id)).status == DEAD


async def test_replaying_another_workspaces_job_is_404_and_a_live_job_409(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime],
    sessions: Sessions,
    signer: Callable[[str], TokenSigner],
) -> None:
    client, _runtime = api_app
    mine, theirs = Workspace(signer(ADDON)), Workspace(signer(ADDON))
    await installed(sessions, mine, theirs)
    future = datetime.now(UTC) + timedelta(hours=1)
    [their_dead, my_queued] = await add_jobs(
        sessions,
        job(theirs.workspace_id, status=DEAD),
        job(mine.workspace_id, run_at=future),
    )

    foreign = await client.post(f"/api/jobs/{their_dead}/replay", headers=bearer(mine.user_token()))
    unknown = await client.post("/api/jobs/999999/replay", headers=bearer(mine.user_token()))
    live = await client.post(f"/api/jobs/{my_queued}/replay", headers=bearer(mine.user_token()))
    listed = await client.get("/api/jobs/dead", headers=bearer(mine.user_token()))

    assert (foreign.status_code, unknown.status_code, live.status_code) == (404, 404, 409)
    assert foreign.json()["detail"] == unknown.json()["detail"].replace("999999", str(their_dead))
    assert "not dead" in live.json()["detail"]
    assert listed.json() == {"items": [], "next": None}
    assert (await load(sessions, their_dead)).status == DEAD


async def test_the_dead_list_needs_a_user_token(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime],
) -> None:
    client, _runtime = api_app
    assert (await client.get("/api/jobs/dead")).status_code == 401


async def test_metrics_show_the_job_gauges_once_sampled(
    api_app: tuple[AsyncTestClient[Litestar], AddonRuntime], engine: AsyncEngine, sessions: Sessions
) -> None:
    client, runtime = api_app
    await add_jobs(sessions, job(status=DEAD), job(status=DEAD))
    # Sampled through this test's engine into the app's registry: the app's own pool
    # belongs to the event loop its lifespan runs on.
    await JobQueue(engine, sessions, ADDON, runtime.metrics).sample()

    text = (await client.get("/metrics")).text

    assert f'addon_jobs_dead{{addon="{ADDON}"}} 2.0' in text
    assert "addon_job_oldest_age_seconds" in text


# --- dead letters from the command line ----------------------------------------------------------


def run_cli(*args: str, database_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if "UNIVERSAL_WEBHOOK_" not in name}
    env |= {
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_DATA_DIR": str(tmp_path / "data"),
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": generate_key(),
    }
    return subprocess.run(  # noqa: S603
        [str(SCRIPT), "jobs", args[0], "universal-webhook", *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_cli_lists_and_replays_dead_jobs(
    database_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    dead_a, dead_b = await add_jobs(
        sessions,
        job("ws-a", status=DEAD, attempts=3, last_error=f"Boom\nwith {FAKE_JWT}"),
        job("ws-b", status=DEAD, attempts=1, last_error="other"),
    )

    def cli(*args: str) -> Awaitable[subprocess.CompletedProcess[str]]:
        return asyncio.to_thread(run_cli, *args, database_url=database_url, tmp_path=tmp_path)

    table = await cli("dead")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "WORKSPACE", "KIND", "ATTEMPTS", "UPDATED", "LAST", "ERROR"]
    assert [line.split()[0] for line in lines[1:]] == [str(dead_b), str(dead_a)]
    assert FAKE_JWT not in table.stdout

    only_a = await cli("dead", "--workspace", "ws-a", "--json")
    assert only_a.returncode == 0, only_a.stderr
    [row] = [json.loads(line) for line in only_a.stdout.splitlines()]
    assert (row["id"], row["workspaceId"], row["attempts"]) == (dead_a, "ws-a", 3)
    assert FAKE_JWT not in row["lastError"]

    replayed = await cli("replay", str(dead_a))
    assert replayed.returncode == 0, replayed.stderr
    assert str(dead_a) in replayed.stdout
    stored = await load(sessions, dead_a)
    assert (stored.status, stored.attempts) == (QUEUED, 0)

    not_dead = await cli("replay", str(dead_a))
    unknown = await cli("replay", "999999")
    for result in (not_dead, unknown):
        assert result.returncode == 1
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1
    assert "not dead" in not_dead.stderr
    assert "no job 999999" in unknown.stderr


async def test_the_cli_says_when_nothing_is_dead(database_url: str, tmp_path: Path) -> None:
    result = await asyncio.to_thread(run_cli, "dead", database_url=database_url, tmp_path=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "no dead jobs")


# --- helpers -------------------------------------------------------------------------------------


async def _is(sessions: Sessions, job_id: int, status: str) -> bool:
    return await status_of(sessions, job_id) == status


async def _all(sessions: Sessions, ids: list[int], status: str) -> bool:
    async with sessions() as session:
        found = (await session.scalars(select(Job.status).where(Job.id.in_(ids)))).all()
    return len(found) == len(ids) and set(found) == {status}


async def _count(sessions: Sessions, status: str, expected: int) -> bool:
    async with sessions() as session:
        found = (await session.scalars(select(Job.id).where(Job.status == status))).all()
    return len(found) == expected


async def _dead_after(sessions: Sessions, job_id: int, *, attempts: int) -> bool:
    stored = await load(sessions, job_id)
    return stored.status == DEAD and stored.attempts == attempts


async def _truthy(values: list[str]) -> bool:
    return bool(values)


def _gauge(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not in the metrics")
