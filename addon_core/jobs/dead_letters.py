"""Dead jobs over the JSON API: list the caller's workspace's, and send one back to the queue.

A job is dead when it failed its last attempt (or a permanent error); it keeps its
payload and last error until a writer replays it or retention deletes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromQuery

from addon_core import audit
from addon_core.redaction import redact, redact_text
from addon_core.runtime import Runtime
from addon_core.storage.models import Job
from addon_core.web.caller import CallerDep, RowId, decode_int_cursor, page_limit, page_of


@get("/api/jobs/dead", name="jobs:dead")
async def show_dead_jobs(
    runtime: Runtime,
    caller: CallerDep,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List the workspace's dead jobs, newest first, with their last error."""
    size = page_limit(limit)
    rows = await runtime.jobs.dead_jobs(
        caller.workspace_id, limit=size + 1, before=decode_int_cursor(cursor)
    )
    return page_of(rows, size, render=render_job, key=lambda job: job.id)


@post("/api/jobs/{job_id:int}/replay", name="jobs:replay", status_code=202)
async def replay_dead_job(runtime: Runtime, caller: CallerDep, job_id: RowId) -> dict[str, Any]:
    """Queue a dead job of the workspace again, with a fresh set of attempts."""
    caller.require_writer("replaying a job")
    job = await runtime.jobs.replay(job_id, caller.workspace_id)
    await audit.record(
        runtime,
        caller.workspace_id,
        audit.by(caller),
        "job.replayed",
        target=str(job_id),
        after={"kind": job.kind},
    )
    return render_job(job)


def render_job(job: Job) -> dict[str, Any]:
    """Render a job as the API shows it: secrets in its payload and error masked."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "lastError": redact_text(job.last_error) if job.last_error else None,
        "createdAt": _iso(job.created_at),
        "updatedAt": _iso(job.updated_at),
        "payload": redact(job.payload),
    }


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()  # SQLite


DEAD_LETTER_ROUTES: list[BaseRouteHandler] = [show_dead_jobs, replay_dead_job]
