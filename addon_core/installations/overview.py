"""The overview JSON API: one workspace's installation, job queue, event rate and flow health.

`GET /api/overview` gathers what the Overview page shows in one request (one round trip
for the page), with counts computed in the database, never by loading rows. It includes
the bootstrap's progress (as `/api/bootstrap`) and the newest dead jobs (as
`/api/jobs/dead`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import get
from litestar.handlers import BaseRouteHandler
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.bootstrap.routes import render_progress
from addon_core.installations.context import live_installation
from addon_core.jobs.dead_letters import render_job
from addon_core.jobs.queue import DEAD, QUEUED, RUNNING
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import Event, Execution, Flow, Installation, Job
from addon_core.storage.scope import scoped
from addon_core.web.caller import CallerDep

#: The events chart covers this many hours, one bar per hour, oldest first.
CHART_HOURS = 24
#: How many paused flows the overview names (the flows list shows them all).
MAX_PAUSED_SHOWN = 20
#: How many dead jobs the overview lists (`/api/jobs/dead` pages through them all).
MAX_DEAD_SHOWN = 10


@get("/api/overview", name="overview")
async def show_overview(runtime: Runtime, sessions: Sessions, caller: CallerDep) -> dict[str, Any]:
    """Summarise the caller's workspace: installation, jobs, events per hour, flow health."""
    now = datetime.now(UTC)
    since = now - timedelta(hours=CHART_HOURS)
    async with sessions() as session:
        installation = await live_installation(session, runtime, caller.workspace_id)
        overview = {
            "installation": _render_installation(installation),
            "bootstrap": await render_progress(session, runtime, caller.workspace_id),
            "jobs": await _job_counts(session, runtime, caller.workspace_id, now),
            "events": await _event_counts(session, runtime, caller.workspace_id, since, now),
            "flows": await _flow_health(session, runtime, caller.workspace_id, since),
            "role": caller.role,
            "canWrite": caller.can_write,
        }
    dead = await runtime.jobs.dead_jobs(caller.workspace_id, limit=MAX_DEAD_SHOWN)
    return {**overview, "deadJobs": [render_job(job) for job in dead]}


def _render_installation(installation: Installation) -> dict[str, Any]:
    return {
        "workspaceId": installation.workspace_id,
        "status": installation.status,
        "installedAt": installation.installed_at.isoformat(),
        "updatedAt": installation.updated_at.isoformat(),
    }


async def _job_counts(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, now: datetime
) -> dict[str, Any]:
    rows = await session.execute(
        select(Job.status, func.count(), func.min(Job.created_at))
        .where(*scoped(Job, runtime.addon_key, workspace_id))
        .where(Job.status.in_((QUEUED, RUNNING, DEAD)))
        .group_by(Job.status)
    )
    counts = {QUEUED: 0, RUNNING: 0, DEAD: 0}
    oldest: datetime | None = None
    for status, count, first in rows:
        counts[status] = count
        if status in (QUEUED, RUNNING) and first is not None:
            oldest = first if oldest is None else min(oldest, first)
    return {
        "queued": counts[QUEUED],
        "running": counts[RUNNING],
        "dead": counts[DEAD],
        "depth": counts[QUEUED] + counts[RUNNING],
        "oldestAgeSeconds": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


async def _event_counts(
    session: AsyncSession,
    runtime: AddonRuntime,
    workspace_id: str,
    since: datetime,
    now: datetime,
) -> dict[str, Any]:
    """Events per hour over the chart's window; hours are bucketed here, portably."""
    times = await session.scalars(
        select(Event.received_at).where(
            *scoped(Event, runtime.addon_key, workspace_id),
            Event.received_at >= since,
        )
    )
    hours = [0] * CHART_HOURS
    for moment in times:
        age = (now - moment).total_seconds() // 3600
        if 0 <= age < CHART_HOURS:
            hours[CHART_HOURS - 1 - int(age)] += 1
    return {"perHour": hours, "total": sum(hours), "hours": CHART_HOURS}


async def _flow_health(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, since: datetime
) -> dict[str, Any]:
    scope = scoped(Flow, runtime.addon_key, workspace_id)
    total, enabled = (
        await session.execute(
            select(func.count(), func.count().filter(Flow.enabled.is_(True))).where(*scope)
        )
    ).one()
    paused = await session.execute(
        select(Flow.id, Flow.name, Flow.paused_reason)
        .where(*scope, Flow.paused_reason.is_not(None))
        .order_by(Flow.updated_at.desc())
        .limit(MAX_PAUSED_SHOWN)
    )
    runs = dict(
        (
            await session.execute(
                select(Execution.status, func.count())
                .where(
                    *scoped(Execution, runtime.addon_key, workspace_id),
                    Execution.created_at >= since,
                )
                .group_by(Execution.status)
            )
        ).all()
    )
    return {
        "total": total,
        "enabled": enabled,
        "runs24h": sum(runs.values()),
        "failures24h": runs.get("failed", 0),
        "byStatus": runs,
        "paused": [{"id": i, "name": n, "reason": r} for i, n, r in paused],
    }


OVERVIEW_ROUTES: list[BaseRouteHandler] = [show_overview]
