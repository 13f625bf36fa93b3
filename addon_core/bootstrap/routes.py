"""Bootstrap over the JSON API: the workspace's progress, a re-run, and a retry of one list."""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.bootstrap.runs import retry_list, start_run
from addon_core.errors import ConflictError
from addon_core.installations.context import live_installation
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import BootstrapProgress
from addon_core.storage.scope import scoped
from addon_core.web.caller import CallerDep


@get("/api/bootstrap", name="bootstrap:progress")
async def show_progress(runtime: Runtime, sessions: Sessions, caller: CallerDep) -> dict[str, Any]:
    """Show how far the workspace's latest bootstrap run got, list by list."""
    async with sessions() as session:
        await live_installation(session, runtime, caller.workspace_id)
        return await render_progress(session, runtime, caller.workspace_id)


@post("/api/bootstrap", name="bootstrap:rerun", status_code=202)
async def rerun_bootstrap(
    runtime: Runtime, sessions: Sessions, caller: CallerDep
) -> dict[str, Any]:
    """Start a new bootstrap run for the workspace (OWNER or ADMIN); answer its lists."""
    caller.require_writer("re-running the bootstrap")
    if not runtime.settings.bootstrap_enabled:
        variable = runtime.settings.env_name("bootstrap_enabled")
        raise ConflictError(
            f"bootstrap is turned off on this server ({variable}=false); "
            "ask its operator to turn it on"
        )
    async with sessions.begin() as session:
        await live_installation(session, runtime, caller.workspace_id)
        run = await start_run(session, runtime, caller.workspace_id)
        progress = await render_progress(session, runtime, caller.workspace_id)
    runtime.jobs.wake()
    return progress | {"run": run}


@post("/api/bootstrap/{operation_id:str}/retry", name="bootstrap:retry", status_code=202)
async def retry_failed_list(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, operation_id: FromPath[str]
) -> dict[str, Any]:
    """Retry one failed list of the latest run from the page it reached (OWNER or ADMIN)."""
    caller.require_writer("retrying a bootstrap list")
    async with sessions.begin() as session:
        await live_installation(session, runtime, caller.workspace_id)
        await retry_list(session, runtime, caller.workspace_id, operation_id)
        progress = await render_progress(session, runtime, caller.workspace_id)
    runtime.jobs.wake()
    return progress


async def render_progress(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str
) -> dict[str, Any]:
    """`{"items": [per list], "next": null, "run": n}`, lists by operationId."""
    rows = list(
        await session.scalars(
            select(BootstrapProgress)
            .where(*scoped(BootstrapProgress, runtime.addon_key, workspace_id))
            .order_by(BootstrapProgress.operation_id)
        )
    )
    return {
        "items": [
            {
                "operation": row.operation_id,
                "status": row.status,
                "pages": row.pages,
                "items": row.items,
                "errors": row.errors,
                "lastError": redact_text(row.last_error) if row.last_error else None,
                "updatedAt": row.updated_at.isoformat(),
            }
            for row in rows
        ],
        "next": None,
        "run": max((row.run for row in rows), default=0),
    }


BOOTSTRAP_ROUTES: list[BaseRouteHandler] = [show_progress, rerun_bootstrap, retry_failed_list]
