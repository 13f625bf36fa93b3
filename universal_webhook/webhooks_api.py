"""Clockify's workspace webhooks API as coverage uses it: list ours, create one, delete one.

Also the uninstall's best-effort delete of every webhook registered through it, bounded by
`DELETE_TIMEOUT_SECONDS` so Clockify being slow never holds up a DELETED call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.client import ClockifyAPIError, InstallationContext
from addon_core.clockify.event_types import WEBHOOK_PATH_PREFIX
from addon_core.clockify.pacing import Lane
from addon_core.errors import AddonError
from addon_core.installations.context import installation_context
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Installation, WebhookRegistration

log = logging.getLogger(__name__)

#: The uninstall waits at most this long for Clockify before going on without it.
DELETE_TIMEOUT_SECONDS = 5.0


def is_refusal(exc: ClockifyAPIError) -> bool:
    """Clockify said no to this webhook (a limit, a permission), not to the token or the rate."""
    return 400 <= exc.status < 500 and exc.status not in (401, 429)


def webhooks_url(context: InstallationContext) -> str:
    """Return the URL of the workspace's webhooks on its regular server."""
    # OpenAPI: getWebhooks / createWebhook, `/v1/workspaces/{workspaceId}/webhooks`
    # on the regular server (the installation's backendUrl).
    base = context.base_urls.get("backendUrl") or context.base_urls.get("apiUrl") or ""
    return f"{base.rstrip('/')}/v1/workspaces/{context.workspace_id}/webhooks"


async def our_webhooks(
    runtime: AddonRuntime, context: InstallationContext
) -> dict[str, dict[str, Any]]:
    """The workspace's webhooks that point at this add-on's webhook paths, by URL."""
    response = await runtime.clockify.call(
        context, "GET", webhooks_url(context), operation="getWebhooks", lane="bootstrap"
    )
    body = response.body
    # WebhooksDtoV1 wraps the list; accept a bare list too.
    listed = body.get("webhooks") if isinstance(body, Mapping) else body
    prefix = runtime.settings.base_url + WEBHOOK_PATH_PREFIX
    return {
        hook["url"]: hook
        for hook in listed or []
        if isinstance(hook, dict) and str(hook.get("url", "")).startswith(prefix)
    }


async def create_webhook(
    runtime: AddonRuntime, context: InstallationContext, event_type: str, path: str
) -> dict[str, Any]:
    """Create the webhook of one event type at its path; answer it with its id and token."""
    response = await runtime.clockify.call(
        context,
        "POST",
        webhooks_url(context),
        operation="createWebhook",
        lane="bootstrap",
        json={
            # CreateWebhookRequestV1: name of 2 to 30 characters.
            "name": f"{runtime.addon_key[:16]} {event_type.lower()}"[:30],
            "url": runtime.settings.base_url + path,
            "webhookEvent": event_type,
            "triggerSourceType": "WORKSPACE_ID",
            "triggerSource": [context.workspace_id],
        },
    )
    hook = response.body
    if not isinstance(hook, dict) or not hook.get("id") or not hook.get("authToken"):
        raise ClockifyAPIError(response.status, "createWebhook answered without id and authToken")
    return hook


async def delete_webhook(
    runtime: AddonRuntime,
    context: InstallationContext,
    webhook_id: str,
    *,
    lane: Lane = "bootstrap",
) -> None:
    """Delete one webhook in Clockify; one already gone counts as deleted."""
    try:
        await runtime.clockify.call(
            context,
            "DELETE",
            f"{webhooks_url(context)}/{webhook_id}",
            operation="deleteWebhook",
            lane=lane,
        )
    except ClockifyAPIError as exc:
        if exc.status != 404:  # already gone is what we wanted
            raise


async def delete_registered_webhooks(
    session: AsyncSession, runtime: AddonRuntime, installation: Installation
) -> None:
    """Delete our API-registered webhooks in Clockify; never hold up the uninstall."""
    ids = [
        webhook_id
        for webhook_id in await session.scalars(
            select(WebhookRegistration.clockify_webhook_id).where(
                WebhookRegistration.installation_id == installation.id,
                WebhookRegistration.source == "api",
                WebhookRegistration.clockify_webhook_id.is_not(None),
            )
        )
        if webhook_id
    ]
    if not ids:
        return
    try:
        context = installation_context(runtime, installation)
        async with asyncio.timeout(DELETE_TIMEOUT_SECONDS):
            results = await asyncio.gather(
                *(
                    delete_webhook(runtime, context, webhook_id, lane="interactive")
                    for webhook_id in ids
                ),
                return_exceptions=True,
            )
    except TimeoutError:
        log.warning(
            "coverage: deleting %d webhook(s) of workspace %s took over %.0fs; left in Clockify",
            len(ids),
            installation.workspace_id,
            DELETE_TIMEOUT_SECONDS,
        )
        return
    except AddonError as exc:
        log.warning(
            "coverage: could not delete the webhooks of workspace %s: %s",
            installation.workspace_id,
            redact_text(exc.detail),
        )
        return
    failed = [r for r in results if isinstance(r, BaseException)]
    for failure in failed:
        detail = failure.detail if isinstance(failure, AddonError) else type(failure).__name__
        log.warning(
            "coverage: a webhook of workspace %s was not deleted: %s",
            installation.workspace_id,
            redact_text(detail),
        )
