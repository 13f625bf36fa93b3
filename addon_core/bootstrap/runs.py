"""Bootstrap runs: their progress rows planned, a run started, a failed list set going again.

A run is a pending progress row per list and one `bootstrap` job (run by `bootstrap.job`),
both written in the caller's transaction; a newer run takes the rows over, and the older
run's job stops at its next page.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.bootstrap.lists import select_listings
from addon_core.errors import AddonError, ConflictError, NotFoundError
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import BootstrapProgress, Installation
from addon_core.storage.scope import scoped

log = logging.getLogger(__name__)

KIND = "bootstrap"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def plan_rows(runtime: AddonRuntime, workspace_id: str, run: int) -> list[dict[str, Any]]:
    """One pending progress row per list the settings select (raises CatalogueError)."""
    settings = runtime.settings
    listings = select_listings(
        runtime.catalogue, settings.bootstrap_include, settings.bootstrap_exclude
    )
    now = datetime.now(UTC)
    return [
        {
            "addon_key": runtime.addon_key,
            "workspace_id": workspace_id,
            "operation_id": described.operation.operation_id,
            "run": run,
            "status": PENDING,
            "next_page": 1,
            "pages": 0,
            "items": 0,
            "errors": 0,
            "last_error": None,
            "updated_at": now,
        }
        for described in listings
    ]


async def start_run(session: AsyncSession, runtime: AddonRuntime, workspace_id: str) -> int:
    """Start a new run in the caller's transaction: fresh progress rows and a job; its number.

    The caller wakes the queue once the transaction commits (the lifecycle handler
    does after every call). A job of an earlier run still queued or running finds its
    rows taken over and stops at its next page.
    """
    where = scoped(BootstrapProgress, runtime.addon_key, workspace_id)
    previous = await session.scalar(select(func.max(BootstrapProgress.run)).where(*where))
    run = (previous or 0) + 1
    await session.execute(delete(BootstrapProgress).where(*where))
    try:
        rows = plan_rows(runtime, workspace_id, run)
    except AddonError as exc:
        # The job plans the run once the OpenAPI document can be read (it retries till then).
        log.warning("bootstrap: run %d of %s planned later: %s", run, workspace_id, exc.detail)
    else:
        if rows:
            await session.execute(insert(BootstrapProgress), rows)
    job = runtime.jobs.new(KIND, workspace_id, {"run": run}, ordering_key=f"{KIND}:{workspace_id}")
    session.add(job)
    return run


async def retry_list(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, operation_id: str
) -> None:
    """Set one failed list of the latest run going again from the page it reached.

    Raises `NotFoundError` for a list the run does not have and `ConflictError` for one
    that has not failed. The caller wakes the queue once the transaction commits.
    """
    row = await session.scalar(
        select(BootstrapProgress)
        .where(*scoped(BootstrapProgress, runtime.addon_key, workspace_id))
        .where(BootstrapProgress.operation_id == operation_id)
        .with_for_update()
    )
    if row is None:
        raise NotFoundError(
            f"the bootstrap has no list {operation_id}; GET /api/bootstrap names its lists"
        )
    if row.status != FAILED:
        raise ConflictError(
            f"the list {operation_id} is {row.status}, not failed; only a failed list is retried"
        )
    row.status = PENDING
    row.last_error = None
    row.updated_at = datetime.now(UTC)
    job = runtime.jobs.new(
        KIND, workspace_id, {"run": row.run}, ordering_key=f"{KIND}:{workspace_id}"
    )
    session.add(job)


async def start_at_install(
    session: AsyncSession, runtime: AddonRuntime, installation: Installation
) -> None:
    """Bootstrap a workspace as it is installed, unless `{P}BOOTSTRAP_ENABLED` is false.

    A redelivered INSTALLED leaves a run in progress alone rather than start it over.
    """
    if not runtime.settings.bootstrap_enabled:
        return
    in_progress = await session.scalar(
        select(func.count()).where(
            *scoped(BootstrapProgress, runtime.addon_key, installation.workspace_id),
            BootstrapProgress.status.in_((PENDING, RUNNING)),
        )
    )
    if in_progress:
        log.info("bootstrap: a run of %s is in progress; not restarted", installation.workspace_id)
        return
    await start_run(session, runtime, installation.workspace_id)
