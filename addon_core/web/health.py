"""Probes and metrics: `/livez`, `/readyz`, `/healthz` and `/metrics` (CONTRACT.md)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from litestar import Request, Response, get

from addon_core.runtime import AddonRuntime, Runtime
from addon_core.storage.database import DATABASE_ERRORS, current_revision, probe_write

PROBE_TIMEOUT_SECONDS = 2.0


async def database_status(runtime: AddonRuntime) -> dict[str, Any]:
    """Tell whether the database answers, is at the latest migration and takes writes."""
    engine = runtime.engine
    try:
        revision = await asyncio.wait_for(current_revision(engine), PROBE_TIMEOUT_SECONDS)
    except Exception as exc:
        return {"status": "unavailable", "error": type(exc).__name__}
    if revision != runtime.head_revision:
        return {
            "status": "migration_pending",
            "revision": revision,
            "head": runtime.head_revision,
            "hint": "run `clockify-addons migrate APP`",
        }
    intake = runtime.intake
    if intake.write_failed:
        # Reads pass on a full disk: after a refused write, only a write tells it is over.
        try:
            await asyncio.wait_for(probe_write(engine), PROBE_TIMEOUT_SECONDS)
        except Exception as exc:
            return {"status": "unwritable", "revision": revision, "error": type(exc).__name__}
        intake.write_failed = False
    return {"status": "ok", "revision": revision}


def _intake_status(runtime: AddonRuntime) -> str:
    """`ok` while the webhook intake writer runs: without it no event can be accepted."""
    return "ok" if runtime.intake.running else "stopped"


@get("/livez", name="livez", sync_to_thread=False)
def livez() -> dict[str, str]:
    """Answer while the process can serve requests."""
    return {"status": "ok"}


@get("/readyz", name="readyz")
async def readyz(runtime: Runtime) -> Response[dict[str, Any]]:
    """Answer 200 when the database is reachable and at the latest migration, else 503."""
    database = await database_status(runtime)
    intake = _intake_status(runtime)
    ready = database["status"] == "ok" and intake == "ok"
    return Response(
        {"status": "ready" if ready else "not_ready", "database": database, "intake": intake},
        status_code=200 if ready else 503,
    )


@get("/healthz", name="healthz")
async def healthz(runtime: Runtime) -> Response[dict[str, Any]]:
    """Report the process and the database as JSON."""
    database = await database_status(runtime)
    intake = _intake_status(runtime)
    ok = database["status"] == "ok" and intake == "ok"
    return Response(
        {
            "status": "ok" if ok else "degraded",
            "addon": runtime.addon_key,
            "checks": {
                "process": {"status": "ok"},
                "database": database,
                "intake": {"status": intake},
            },
        },
        status_code=200 if ok else 503,
    )


@get("/metrics", name="metrics")
async def metrics(request: Request[Any, Any, Any], runtime: Runtime) -> Response[bytes]:
    """Expose the app's Prometheus metrics in the format the scraper asks for."""
    database = await database_status(runtime)
    ready = database["status"] == "ok" and _intake_status(runtime) == "ok"
    runtime.metrics.ready.labels(runtime.addon_key).set(1 if ready else 0)
    # The queue gauges are read at each scrape; a database that cannot answer leaves
    # them as last sampled rather than failing the scrape.
    with contextlib.suppress(TimeoutError, *DATABASE_ERRORS):
        await asyncio.wait_for(runtime.jobs.sample(), timeout=2.0)
    body, content_type = runtime.metrics.render(request.headers.get("accept", ""))
    # The content type is set whole: Litestar would append a second charset.
    return Response(body, headers={"content-type": content_type})
