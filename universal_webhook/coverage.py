"""Event coverage (Universal Webhook): how each Clockify event type reaches a workspace.

The manifest subscribes to some types; `universal_webhook.registration` registers more
through Clockify's webhooks API at INSTALLED (and deletes them at DELETED), and records
why a type is left out. This module wires that in (`setup_coverage`) and shows, for
every event type, whether it arrives by the manifest, by the API, or not and why
(`GET /api/coverage`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from litestar import get
from litestar.handlers import BaseRouteHandler
from sqlalchemy import select

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES, webhook_path
from addon_core.installations.context import live_installation
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import CoverageGap, Job, WebhookRegistration
from addon_core.storage.scope import scoped
from addon_core.web.caller import CallerDep
from universal_webhook.coverage_order import NOT_IN_WEBHOOKS_API
from universal_webhook.registration import JOB_KIND, enqueue_registration, register_webhooks
from universal_webhook.webhooks_api import delete_registered_webhooks

log = logging.getLogger(__name__)


def setup_coverage(runtime: AddonRuntime) -> None:
    """Register the uncovered event types at INSTALLED; delete them at DELETED."""
    runtime.add_job_handler(JOB_KIND, lambda job: register_webhooks(runtime, job))
    runtime.on_installed.append(enqueue_registration)
    runtime.on_deleted.append(delete_registered_webhooks)


# --- the JSON API ------------------------------------------------------------------------------


@get("/api/coverage", name="coverage")
async def list_coverage(caller: CallerDep, runtime: Runtime, sessions: Sessions) -> dict[str, Any]:
    """Every Clockify event type and how it reaches this workspace."""
    async with sessions() as session:
        installation = await live_installation(session, runtime, caller.workspace_id)
        registrations = {
            r.path: r.source
            for r in await session.execute(
                select(WebhookRegistration.path, WebhookRegistration.source).where(
                    WebhookRegistration.installation_id == installation.id
                )
            )
        }
        gaps = {
            gap.event_type: gap.reason
            for gap in await session.scalars(
                select(CoverageGap).where(CoverageGap.installation_id == installation.id)
            )
        }
        job = (
            await session.execute(
                select(Job.status, Job.last_error)
                .where(
                    *scoped(Job, runtime.addon_key, caller.workspace_id),
                    Job.kind == JOB_KIND,
                )
                .order_by(Job.id.desc())
                .limit(1)
            )
        ).first()
    manifest = set(runtime.manifest.webhook_events.values())
    items = [
        _coverage_item(event_type, registrations, manifest, gaps, job)
        for event_type in sorted(CLOCKIFY_EVENT_TYPES)
    ]
    counts = {
        kind: sum(item["delivery"] == kind for item in items)
        for kind in ("manifest", "api", "none")
    }
    return {"items": items, "next": None, "summary": counts}


def _coverage_item(
    event_type: str,
    registrations: Mapping[str, str],
    manifest: set[str],
    gaps: Mapping[str, str],
    job: Any,
) -> dict[str, Any]:
    path = webhook_path(event_type)
    source = registrations.get(path)
    item: dict[str, Any] = {"eventType": event_type, "path": path}
    if source in ("manifest", "api"):
        return {**item, "delivery": source}
    if event_type in manifest:
        reason = (
            "declared in the manifest, but Clockify sent no token for it at install; "
            "reinstall the add-on"
        )
    elif event_type in NOT_IN_WEBHOOKS_API:
        reason = (
            "Clockify's webhooks API does not offer this event, and the manifest's "
            "10 webhooks are taken"
        )
    elif job is not None and job.status in ("queued", "running"):
        reason = "registration through Clockify's webhooks API is under way"
    elif job is not None and job.status == "dead":
        reason = f"registration failed: {redact_text(job.last_error or 'unknown error')}"
    elif event_type in gaps:
        reason = gaps[event_type]
    else:
        reason = "not registered through Clockify's webhooks API yet; reinstall the add-on"
    return {**item, "delivery": "none", "reason": reason}


COVERAGE_ROUTES: list[BaseRouteHandler] = [list_coverage]
