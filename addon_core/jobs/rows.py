"""Job rows outside the queue's loop: making one in the caller's transaction, listing the
dead ones and sending one back (the API, the command line and the queue share these).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from addon_core.correlation import current_request_id
from addon_core.errors import ConflictError, NotFoundError
from addon_core.storage.models import Job
from addon_core.tracing import TRACEPARENT, current_traceparent

QUEUED, RUNNING, DONE, DEAD = "queued", "running", "done", "dead"
#: The payload field that carries the id of the request a job comes from (the intake's
#: store writes it too, for the flow jobs it makes from stored webhooks).
REQUEST_ID_FIELD = "request_id"


def new_job(
    addon_key: str,
    kind: str,
    workspace_id: str,
    payload: Mapping[str, Any],
    *,
    ordering_key: str | None = None,
    max_attempts: int = 8,
    delay: float = 0.0,
) -> Job:
    """Build a job row to add to the caller's session, so it commits with the caller's work.

    The request id of the request (or job) that makes it goes along, for its log lines.
    """
    now = datetime.now(UTC)
    payload = dict(payload)
    request_id = current_request_id()
    if request_id is not None:
        payload.setdefault(REQUEST_ID_FIELD, request_id)
    traceparent = current_traceparent()
    if traceparent is not None:
        payload.setdefault(TRACEPARENT, traceparent)
    return Job(
        addon_key=addon_key,
        workspace_id=workspace_id,
        kind=kind,
        ordering_key=ordering_key,
        payload=payload,
        status=QUEUED,
        attempts=0,
        max_attempts=max_attempts,
        run_at=now + timedelta(seconds=delay),
        created_at=now,
        updated_at=now,
    )


async def list_dead_jobs(
    sessions: async_sessionmaker[AsyncSession],
    addon_key: str,
    workspace_id: str | None = None,
    *,
    limit: int = 100,
    before: int | None = None,
) -> list[Job]:
    """List dead jobs newest first, of one workspace when given, with ids below `before`."""
    query = select(Job).where(Job.addon_key == addon_key, Job.status == DEAD)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    if before is not None:
        query = query.where(Job.id < before)
    async with sessions() as session:
        return list((await session.scalars(query.order_by(Job.id.desc()).limit(limit))).all())


async def replay_job(
    sessions: async_sessionmaker[AsyncSession],
    addon_key: str,
    job_id: int,
    workspace_id: str | None = None,
) -> Job:
    """Queue a dead job again with a fresh set of attempts (404 if unknown, 409 if not dead).

    A queue in another process picks it up within its poll interval.
    """
    now = datetime.now(UTC)
    query = select(Job).where(Job.id == job_id, Job.addon_key == addon_key)
    if workspace_id is not None:
        query = query.where(Job.workspace_id == workspace_id)
    async with sessions.begin() as session:
        job = await session.scalar(query.with_for_update())
        if job is None:
            raise NotFoundError(f"there is no job {job_id}; list dead jobs for their ids")
        if job.status != DEAD:
            raise ConflictError(
                f"job {job_id} is {job.status}, not dead; only dead jobs can be replayed"
            )
        job.status = QUEUED
        job.attempts = 0
        job.run_at = now
        job.updated_at = now
    return job
