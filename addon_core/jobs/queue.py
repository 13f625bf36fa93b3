"""Durable background jobs: rows in `jobs`, claimed under a lease, retried, then dead.

A job is enqueued in the transaction that makes it necessary (the intake stores a
`flow.dispatch` job with its event), claimed by one worker at a time under a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the claim is one UPDATE under the
write lock, so one claimer wins), and finished, retried after an exponential backoff
with jitter, or declared dead after its last attempt. Jobs sharing an ordering key
(workspace and entity) run one at a time, oldest first. Each queue beats in `workers`
and extends its leases with each beat; the jobs of a worker that stopped beating (or
whose process is gone from this machine) go back to the queue at once, and a lease
that expires does too. Enqueuing in this process wakes the claimer at once; other
processes notice within the poll interval.

The module is long on purpose: the claim, run, settle and beat loops share the queue's
state (running jobs, wake-ups, the worker identity) and are one thing. Rows made or
changed outside the loop (new jobs, dead jobs, replays) are `jobs.rows`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CTE, ColumnElement, and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import ReturningUpdate

from addon_core.correlation import bind
from addon_core.errors import AddonError
from addon_core.jobs.rows import (
    DEAD,
    DONE,
    QUEUED,
    REQUEST_ID_FIELD,
    RUNNING,
    list_dead_jobs,
    new_job,
    replay_job,
)
from addon_core.jobs.workers import WorkerIdentity, beat, find_dead_workers, forget_workers
from addon_core.metrics import Metrics
from addon_core.redaction import redact_text
from addon_core.storage.database import DATABASE_ERRORS, is_sqlite
from addon_core.storage.models import Job
from addon_core.tracing import TRACEPARENT, span

log = logging.getLogger(__name__)

_ERROR_LIMIT = 2000
#: How often the claimer refreshes the queue gauges.
SAMPLE_SECONDS = 5.0
LEASE_EXPIRED_ERROR = (
    "LeaseExpired: the worker running the last attempt stopped without finishing it "
    "(its process died or hung); replay the job once the cause is fixed"
)


class PermanentJobError(AddonError):
    """A job failure that no retry can fix: the job goes dead at once."""


class RetryJobError(AddonError):
    """Ask for a retry after `delay` seconds (default: the backoff), logged as expected.

    It still uses an attempt, so a job that keeps asking ends dead, not queued forever.
    """

    def __init__(self, detail: str, *, delay: float | None = None) -> None:
        super().__init__(detail)
        self.delay = delay


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: int
    kind: str
    workspace_id: str
    ordering_key: str | None
    payload: Mapping[str, Any]
    attempts: int
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        return self.attempts >= self.max_attempts


Handler = Callable[[ClaimedJob], Awaitable[None]]


def default_worker_id() -> str:
    """Name this process's worker uniquely: a restarted process never reuses its predecessor's
    id, even with the same pid (pid 1 in a container)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def ready_jobs(addon_key: str, now: datetime, limit: int, skip_locked: bool) -> CTE:
    """Choose up to `limit` ready jobs, oldest first, whose ordering key lets them run.

    `skip_locked` (PostgreSQL) lets claimers in other processes pass each other's rows by.
    """
    earlier = aliased(Job)
    # A job waits while an older job of its ordering key is queued (even for a later
    # retry) or running: jobs of one entity run one at a time, oldest first.
    blocked = exists().where(
        and_(
            earlier.ordering_key == Job.ordering_key,
            earlier.addon_key == Job.addon_key,
            earlier.id < Job.id,
            earlier.status.in_((QUEUED, RUNNING)),
        )
    )
    ready = (
        select(Job.id)
        .where(
            Job.addon_key == addon_key,
            Job.status == QUEUED,
            Job.run_at <= now,
            ~blocked,
        )
        .order_by(Job.run_at, Job.id)
        .limit(limit)
    )
    if skip_locked:
        ready = ready.with_for_update(skip_locked=True)
    # Materialised, so the LIMIT holds: as a plain `IN (subquery)` PostgreSQL may run
    # the subquery again for each row and claim far more jobs than asked for.
    return ready.cte("chosen").prefix_with("MATERIALIZED", dialect="postgresql")


def claim_statement(
    addon_key: str,
    worker_id: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    skip_locked: bool,
) -> ReturningUpdate[Any]:
    """Build the claim: one UPDATE ... RETURNING leasing the `ready_jobs` to `worker_id`."""
    chosen = ready_jobs(addon_key, now, limit, skip_locked)
    return (
        update(Job)
        # Re-checked on the row as locked: a job another claimer took meanwhile is
        # no longer queued, so it is not claimed twice.
        .where(Job.id.in_(select(chosen.c.id)), Job.status == QUEUED)
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            lease_until=lease_until,
            worker=worker_id,
            updated_at=now,
        )
        .returning(
            Job.id,
            Job.kind,
            Job.workspace_id,
            Job.ordering_key,
            Job.payload,
            Job.attempts,
            Job.max_attempts,
        )
        .execution_options(synchronize_session=False)
    )


class JobQueue:
    """Claims and runs this add-on's jobs with up to `workers` at once."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        addon_key: str,
        metrics: Metrics,
        *,
        workers: int = 4,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        backoff_seconds: float = 1.0,
        backoff_max_seconds: float = 300.0,
        poll_seconds: float = 1.0,
        heartbeat_seconds: float = 2.0,
        worker_timeout_seconds: float = 10.0,
        worker_id: str | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self.addon_key = addon_key
        self._metrics = metrics
        self._workers = workers
        self._lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._poll = poll_seconds
        self.worker_id = worker_id or default_worker_id()
        self._identity = WorkerIdentity.of_this_process(self.worker_id, addon_key)
        # Several beats fit in a lease, so a late beat never lets a live job's lease lapse.
        self._beat_every = min(heartbeat_seconds, lease_seconds / 3)
        self._worker_timeout = timedelta(seconds=worker_timeout_seconds)
        self._beater: asyncio.Task[None] | None = None
        self._skip_locked = not is_sqlite(engine)
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()
        self._running: dict[int, asyncio.Task[None]] = {}
        self._claimer: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_sample = 0.0
        self._last_reclaim = -math.inf
        self._sampled_kinds: set[str] = set()

    # --- set-up ------------------------------------------------------------------------------

    def register(self, kind: str, handler: Handler) -> None:
        """Run jobs of `kind` with `handler` (raise to retry; PermanentJobError to give up)."""
        self._handlers[kind] = handler

    def new(
        self,
        kind: str,
        workspace_id: str,
        payload: Mapping[str, Any],
        *,
        ordering_key: str | None = None,
        delay: float = 0.0,
    ) -> Job:
        """Build a job row with this queue's attempt limit (add it to a session, then `wake`)."""
        return new_job(
            self.addon_key,
            kind,
            workspace_id,
            payload,
            ordering_key=ordering_key,
            max_attempts=self.max_attempts,
            delay=delay,
        )

    async def enqueue(
        self,
        kind: str,
        workspace_id: str,
        payload: Mapping[str, Any],
        *,
        ordering_key: str | None = None,
    ) -> int:
        """Store a job in a transaction of its own and wake the claimer; return its id."""
        job = self.new(kind, workspace_id, payload, ordering_key=ordering_key)
        async with self._sessions.begin() as session:
            session.add(job)
        self.wake()
        return job.id

    def wake(self) -> None:
        """Claim now rather than at the next poll (after a commit that enqueued work)."""
        self._wake.set()

    async def start(self) -> None:
        """Beat once (taking over dead workers' jobs), then claim and beat in the background."""
        self._stopping = False
        try:
            await self.beat()
        except DATABASE_ERRORS as exc:
            log.warning("jobs: the first heartbeat failed (%s); retrying", type(exc).__name__)
        self._beater = asyncio.create_task(self._beat_loop(), name=f"beat:{self.addon_key}")
        self._claimer = asyncio.create_task(self._claim_loop(), name=f"jobs:{self.addon_key}")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running jobs finish within `grace`, then release the rest."""
        deadline = time.monotonic() + grace
        self._stopping = True
        self._wake.set()
        if self._claimer is not None:
            # Let a claim in progress commit and spawn its jobs, so that none is left
            # claimed by nobody until its lease runs out.
            claimer, self._claimer = self._claimer, None
            _done, pending = await asyncio.wait({claimer}, timeout=max(grace, 0.0))
            if pending:
                claimer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claimer
        try:
            await self._finish_running(deadline)
        finally:
            await self._stop_beating()

    async def _finish_running(self, deadline: float) -> None:
        running = dict(self._running)
        if not running:
            return
        _done, pending = await asyncio.wait(
            running.values(), timeout=max(deadline - time.monotonic(), 0.0)
        )
        held = [job_id for job_id, task in running.items() if task in pending]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if held:
            log.warning("jobs: %d job(s) still running after the grace; released", len(held))
            # Back to the queue now rather than at lease expiry, for another process to run.
            try:
                await self._release(held)
            except DATABASE_ERRORS as exc:
                log.warning("jobs: releasing failed (%s); the leases expire", type(exc).__name__)

    async def _stop_beating(self) -> None:
        """Stop beating and forget this worker: what it still holds falls to its leases."""
        if self._beater is None:
            return
        beater, self._beater = self._beater, None
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater
        try:
            async with self._sessions.begin() as session:
                await forget_workers(session, [self.worker_id])
        except DATABASE_ERRORS as exc:
            log.warning("jobs: forgetting this worker failed (%s)", type(exc).__name__)

    async def run_until_idle(self, limit_seconds: float = 30.0) -> None:
        """Claim and run jobs until none is ready (for tests and one-shot commands)."""
        deadline = time.monotonic() + limit_seconds
        while time.monotonic() < deadline:
            claimed = await self._claim(self._workers - len(self._running))
            if not claimed and not self._running:
                return
            for job in claimed:
                self._spawn(job)
            if self._running:
                await asyncio.wait(
                    list(self._running.values()),
                    timeout=max(deadline - time.monotonic(), 0.0),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        raise TimeoutError("jobs still running after the timeout")

    # --- claiming ------------------------------------------------------------------------------

    async def _beat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._beat_every)
            try:
                await self.beat()
            except DATABASE_ERRORS as exc:
                log.warning("jobs: heartbeat failed (%s); retrying", type(exc).__name__)
            except Exception:
                log.exception("jobs: heartbeat failed; retrying at the next beat")

    async def beat(self) -> None:
        """Say this worker lives, extend its leases and take over the jobs of dead workers."""
        now = datetime.now(UTC)
        # Only the jobs running here: a row whose outcome could not be written (the database
        # was down when it settled) must let its lease lapse, so that it is taken again.
        running = list(self._running)
        async with self._sessions.begin() as session:
            await beat(session, self._identity, now, sqlite=not self._skip_locked)
            if running:
                await session.execute(
                    update(Job)
                    .where(Job.worker == self.worker_id, Job.status == RUNNING, Job.id.in_(running))
                    .values(lease_until=now + self._lease)
                    .execution_options(synchronize_session=False)
                )
            dead = await find_dead_workers(session, self._identity, now, self._worker_timeout)
            if dead:
                count = await self._requeue_abandoned(session, now, Job.worker.in_(dead))
                await forget_workers(session, dead)
                log.warning(
                    "jobs: %d worker(s) stopped beating; %d of their job(s) taken over",
                    len(dead),
                    count,
                )
        if dead:
            self.wake()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            # Cleared before the claim: a wake-up during it means "look again", not lost.
            self._wake.clear()
            claimed: list[ClaimedJob] = []
            limit = self._workers - len(self._running)
            try:
                claimed = await self._claim(limit)
                for job in claimed:
                    self._spawn(job)
                await self._sample()
            except DATABASE_ERRORS as exc:
                self._metrics.database_errors.labels(self.addon_key, "jobs").inc()
                log.warning("jobs: claiming failed (%s); retrying", exc.__class__.__name__)
            except Exception:
                log.exception("jobs: claiming failed; retrying at the next poll")
            if len(claimed) == limit and len(self._running) < self._workers:
                continue  # there may be more ready right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _claim(self, limit: int) -> list[ClaimedJob]:
        if limit <= 0:
            return []
        now = datetime.now(UTC)
        claim = claim_statement(
            self.addon_key, self.worker_id, now, now + self._lease, limit, self._skip_locked
        )
        async with self._sessions.begin() as session:
            # Leases run for many poll intervals: looking for lapsed ones once per poll
            # keeps two statements off the path of every claim (a woken job's first wait).
            if time.monotonic() - self._last_reclaim >= self._poll:
                await self._reclaim_expired(session, now)
                self._last_reclaim = time.monotonic()
            rows = (await session.execute(claim)).all()
        return sorted((ClaimedJob(*row) for row in rows), key=lambda job: job.id)

    async def _reclaim_expired(self, session: AsyncSession, now: datetime) -> None:
        """Put back jobs whose lease ran out while running (a worker that did not beat)."""
        count = await self._requeue_abandoned(session, now, Job.lease_until < now)
        if count:
            log.warning("jobs: %d expired lease(s) reclaimed", count)

    async def _requeue_abandoned(
        self, session: AsyncSession, now: datetime, abandoned: ColumnElement[bool]
    ) -> int:
        """Put back the running jobs that match `abandoned`; return how many.

        A job whose last attempt was cut short that way goes dead instead: a job that
        kills its process must not be claimed forever.
        """
        expired = (Job.addon_key == self.addon_key, Job.status == RUNNING, abandoned)
        dead = await session.execute(
            update(Job)
            .where(*expired, Job.attempts >= Job.max_attempts)
            .values(
                status=DEAD,
                lease_until=None,
                worker=None,
                updated_at=now,
                last_error=LEASE_EXPIRED_ERROR,
            )
            .execution_options(synchronize_session=False)
        )
        back = await session.execute(
            update(Job)
            .where(*expired)
            # `run_at` is kept: these are older than what was queued since, so they go first.
            .values(status=QUEUED, lease_until=None, worker=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if dead.rowcount:  # type: ignore[attr-defined]
            log.warning(
                "jobs: %d job(s) dead: their last attempt lost its worker",
                dead.rowcount,  # type: ignore[attr-defined]
            )
        return int(back.rowcount + dead.rowcount)  # type: ignore[attr-defined]

    # --- running ---------------------------------------------------------------------------------

    def _spawn(self, job: ClaimedJob) -> None:
        task = asyncio.create_task(self._run(job), name=f"job:{job.kind}:{job.id}")
        self._running[job.id] = task
        task.add_done_callback(lambda _task: self._finished(job.id))

    def _finished(self, job_id: int) -> None:
        self._running.pop(job_id, None)
        self._wake.set()  # a successor with the same ordering key may be ready now

    async def _run(self, job: ClaimedJob) -> None:
        # A task of its own: the ids bound here are this job's only.
        request_id = job.payload.get(REQUEST_ID_FIELD)
        bind(
            request_id=request_id if isinstance(request_id, str) else f"job-{job.id}",
            workspace_id=job.workspace_id,
            addon=self.addon_key,
        )
        log.debug("jobs: %s %d starts (attempt %d)", job.kind, job.id, job.attempts)
        parent = job.payload.get(TRACEPARENT)
        attributes = {"job.kind": job.kind, "job.id": job.id, "job.attempt": job.attempts}
        with span(f"job {job.kind}", parent=parent if isinstance(parent, str) else None,
                  attributes=attributes):  # fmt: skip
            await self._run_handler(job)

    async def _run_handler(self, job: ClaimedJob) -> None:
        handler = self._handlers.get(job.kind)
        try:
            try:
                if handler is None:
                    raise PermanentJobError(f"no handler for job kind {job.kind!r}")
                await handler(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail(job, exc)
            else:
                await self._settle(job, DONE, "done")
        except DATABASE_ERRORS as exc:
            # The outcome could not be written: the job runs again once taken over.
            self._metrics.database_errors.labels(self.addon_key, "jobs").inc()
            log.warning(
                "jobs: %s %d: recording its outcome failed (%s); it runs again after its lease",
                job.kind,
                job.id,
                type(exc).__name__,
            )

    async def _fail(self, job: ClaimedJob, exc: Exception) -> None:
        error = redact_text(f"{exc.__class__.__name__}: {exc}")[:_ERROR_LIMIT]
        if isinstance(exc, PermanentJobError) or job.last_attempt:
            log.error(
                "jobs: %s %d is dead after %d attempt(s): %s", job.kind, job.id, job.attempts, error
            )
            await self._settle(job, DEAD, "dead", error=error)
        elif isinstance(exc, RetryJobError):
            delay = self._delay(job) if exc.delay is None else exc.delay
            log.info("jobs: %s %d retries in %.1f s: %s", job.kind, job.id, delay, error)
            await self._settle(job, QUEUED, "retry", error=error, delay=delay)
        else:
            log.warning(
                "jobs: %s %d failed (attempt %d): %s", job.kind, job.id, job.attempts, error
            )
            await self._settle(job, QUEUED, "retry", error=error, delay=self._delay(job))

    def _delay(self, job: ClaimedJob) -> float:
        """Exponential backoff with jitter over the upper half of each step."""
        ceiling = float(min(self._backoff_max, self._backoff * 2.0 ** (job.attempts - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not security

    async def _settle(
        self,
        job: ClaimedJob,
        status: str,
        outcome: str,
        *,
        error: str | None = None,
        delay: float = 0.0,
    ) -> None:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "status": status,
            "lease_until": None,
            "worker": None,
            "updated_at": now,
        }
        if error is not None:
            values["last_error"] = error
        if status == QUEUED:
            values["run_at"] = now + timedelta(seconds=delay)
        async with self._sessions.begin() as session:
            # Only the lease holder settles: a job whose lease expired belongs to its new claimer.
            await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.worker == self.worker_id, Job.status == RUNNING)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        self._metrics.jobs.labels(self.addon_key, job.kind, outcome).inc()
        if status == QUEUED:
            self._schedule_wake(delay)

    def _schedule_wake(self, delay: float) -> None:
        asyncio.get_running_loop().call_later(max(delay, 0.0), self._wake.set)

    async def _release(self, job_ids: list[int]) -> None:
        now = datetime.now(UTC)
        # The attempt was cut short by shutdown, not failed by the job: it does not count.
        greatest = func.max if is_sqlite(self._engine) else func.greatest
        async with self._sessions.begin() as session:
            await session.execute(
                update(Job)
                .where(Job.id.in_(job_ids), Job.worker == self.worker_id, Job.status == RUNNING)
                .values(
                    status=QUEUED,
                    lease_until=None,
                    worker=None,
                    updated_at=now,
                    attempts=greatest(Job.attempts - 1, 0),
                )
                .execution_options(synchronize_session=False)
            )

    # --- observing and replaying -------------------------------------------------------------

    async def _sample(self) -> None:
        """Refresh the queue gauges, at most every few seconds."""
        if time.monotonic() - self._last_sample < SAMPLE_SECONDS:
            return
        await self.sample()

    async def sample(self) -> None:
        """Refresh the gauges: queue depth by kind, oldest ready job's age, dead jobs."""
        self._last_sample = time.monotonic()
        now = datetime.now(UTC)
        async with self._sessions() as session:
            depth = (
                await session.execute(
                    select(Job.kind, func.count())
                    .where(Job.addon_key == self.addon_key, Job.status.in_((QUEUED, RUNNING)))
                    .group_by(Job.kind)
                )
            ).all()
            oldest = await session.scalar(
                select(func.min(Job.run_at)).where(
                    Job.addon_key == self.addon_key, Job.status == QUEUED, Job.run_at <= now
                )
            )
            dead = await session.scalar(
                select(func.count()).where(Job.addon_key == self.addon_key, Job.status == DEAD)
            )
        for kind in {*self._handlers, *self._sampled_kinds}:
            self._metrics.job_queue_depth.labels(self.addon_key, kind).set(0)
        for kind, count in depth:
            self._sampled_kinds.add(kind)
            self._metrics.job_queue_depth.labels(self.addon_key, kind).set(count)
        age = 0.0
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            age = max(0.0, (now - oldest).total_seconds())
        self._metrics.job_oldest_age.labels(self.addon_key).set(age)
        self._metrics.jobs_dead.labels(self.addon_key).set(dead or 0)

    async def dead_jobs(
        self, workspace_id: str | None = None, *, limit: int = 100, before: int | None = None
    ) -> list[Job]:
        """List dead jobs, newest first (of one workspace when given)."""
        return await list_dead_jobs(
            self._sessions, self.addon_key, workspace_id, limit=limit, before=before
        )

    async def replay(self, job_id: int, workspace_id: str | None = None) -> Job:
        """Queue a dead job again with a fresh set of attempts, and wake the claimer."""
        job = await replay_job(self._sessions, self.addon_key, job_id, workspace_id)
        self.wake()
        return job


__all__ = [
    "DEAD",
    "DONE",
    "QUEUED",
    "RUNNING",
    "ClaimedJob",
    "JobQueue",
    "PermanentJobError",
    "RetryJobError",
    "new_job",
]
