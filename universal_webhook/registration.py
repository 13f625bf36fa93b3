"""Registering event types beyond the manifest through Clockify's webhooks API, and back.

The manifest subscribes to 10 event types (Clockify's cap). At INSTALLED a
`coverage.register` job registers further types through the workspace webhooks API
(`createWebhook`, with the installation token) until Clockify refuses one: its docs give
10 webhooks per admin and 100 per workspace (PLATFORM.md, "Webhooks"), but what is
left depends on the webhooks the admin already has, so the add-on takes what Clockify
allows and records, for each type left out, the reason Clockify gave (`coverage_gaps`,
shown by `GET /api/coverage`). Types are taken in the order of the
`COVERAGE_PRIORITY` setting, then `PRIORITY`: first those that complete the life cycle
of the entities the manifest follows (time entries, projects, clients, approvals), then
the tasks and tags time entries refer to, then users, then the rest. Each webhook
points at the type's own path, so its deliveries are verified like the manifest's: by
path and token digest.
The job is idempotent: it lists the workspace's webhooks and keeps or adopts those
whose URL is ours, so a re-run creates nothing twice. At DELETED the registered
webhooks are deleted, best effort (`webhooks_api`). The order lives in `coverage_order`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.client import ClockifyAPIError, InstallationContext
from addon_core.clockify.event_types import webhook_path
from addon_core.errors import AddonError
from addon_core.installations.context import installation_context
from addon_core.jobs.queue import ClaimedJob, PermanentJobError
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import CoverageGap, Installation, WebhookRegistration
from addon_core.storage.vault import token_context, webhook_purpose
from universal_webhook.coverage_order import wanted_event_types
from universal_webhook.webhooks_api import (
    create_webhook,
    delete_webhook,
    is_refusal,
    our_webhooks,
)

log = logging.getLogger(__name__)

JOB_KIND = "coverage.register"
#: How much of Clockify's refusal is kept as the reason a type is not covered.
REASON_LIMIT = 300


async def enqueue_registration(
    session: AsyncSession, runtime: AddonRuntime, installation: Installation
) -> None:
    """Queue the registration with the install (network calls stay out of the transaction)."""
    queue = runtime.jobs
    session.add(
        queue.new(
            JOB_KIND,
            installation.workspace_id,
            {"addon_id": installation.addon_id},
            ordering_key=f"{installation.workspace_id}:coverage",
        )
    )
    # Wake the workers once the install commits rather than at their next poll.
    event.listen(session.sync_session, "after_commit", lambda _s: queue.wake(), once=True)


async def register_webhooks(runtime: AddonRuntime, job: ClaimedJob) -> None:
    """Create the missing webhooks, keep or adopt ours, drop ours no longer wanted."""
    workspace_id = job.workspace_id
    sessions = runtime.sessions
    async with sessions() as session:
        installation = await _current(session, runtime, workspace_id, job.payload.get("addon_id"))
        if installation is None:
            return  # uninstalled or reinstalled since: that installation's job does the work
        context = installation_context(runtime, installation)
        stored = {
            r.path: r
            for r in await session.scalars(
                select(WebhookRegistration).where(
                    WebhookRegistration.installation_id == installation.id,
                    WebhookRegistration.source == "api",
                )
            )
        }
    try:
        hooks = await our_webhooks(runtime, context)
        wanted = wanted_event_types(runtime)
        wanted_paths = {webhook_path(e): e for e in wanted}
        for url, listed in hooks.items():
            if _path_of(runtime, url) not in wanted_paths:
                await delete_webhook(runtime, context, str(listed.get("id")))
        gaps = await _register_in_order(runtime, job, installation.id, context, hooks, stored)
        if gaps is None:
            return
        await _record_outcome(runtime, installation.id, set(wanted_paths), gaps)
    except AddonError as exc:
        if isinstance(exc, ClockifyAPIError) or exc.status_code < 500:
            # A host outside the allowlist, a refused token, a missing permission:
            # retrying cannot help. Clockify being down (503) is retried.
            raise PermanentJobError(f"coverage registration failed: {exc.detail}") from None
        raise


async def _register_in_order(
    runtime: AddonRuntime,
    job: ClaimedJob,
    installation_id: int,
    context: InstallationContext,
    hooks: dict[str, dict[str, Any]],
    stored: Mapping[str, WebhookRegistration],
) -> dict[str, str] | None:
    """Register the wanted types in order until Clockify refuses one; return the gaps.

    A refused type takes the place of one of ours lower in the order, if any (the order
    changed since those were registered). The gaps are the refused type and those after
    it that are not registered, each with its reason; None means the installation went
    away meanwhile.
    """
    wanted = wanted_event_types(runtime)
    for position, event_type in enumerate(wanted):
        path = webhook_path(event_type)
        hook = hooks.get(runtime.settings.base_url + path)
        registration = stored.get(path)
        if (
            hook is not None
            and registration is not None
            and registration.clockify_webhook_id == hook.get("id")
            and _same_token(registration, hook)
        ):
            continue  # registered and stored: nothing to do
        if hook is None or not isinstance(hook.get("authToken"), str):
            if hook is not None:  # ours, but its token is not listed: start it over
                await delete_webhook(runtime, context, str(hook.get("id")))
            try:
                hook = await _create_making_room(
                    runtime, installation_id, context, event_type, hooks, wanted[position + 1 :]
                )
            except ClockifyAPIError as exc:
                if not is_refusal(exc):
                    raise
                later = [
                    e
                    for e in wanted[position + 1 :]
                    if webhook_path(e) not in stored
                    or runtime.settings.base_url + webhook_path(e) not in hooks
                ]
                return _refused(context.workspace_id, event_type, exc, later)
        if not await _store(runtime, installation_id, job, context, event_type, path, hook):
            return None
    return {}


async def _create_making_room(
    runtime: AddonRuntime,
    installation_id: int,
    context: InstallationContext,
    event_type: str,
    hooks: dict[str, dict[str, Any]],
    lower: Sequence[str],
) -> dict[str, Any]:
    """Create the webhook; if refused, drop ours lowest in the order and try again.

    Raises the last refusal when none of ours is lower in the order than `event_type`.
    """
    path = webhook_path(event_type)
    while True:
        try:
            return await create_webhook(runtime, context, event_type, path)
        except ClockifyAPIError as exc:
            held = [e for e in lower if runtime.settings.base_url + webhook_path(e) in hooks]
            if not is_refusal(exc) or not held:
                raise
            dropped = held[-1]
            url = runtime.settings.base_url + webhook_path(dropped)
            await delete_webhook(runtime, context, str(hooks.pop(url).get("id")))
            await _forget_registration(runtime, installation_id, webhook_path(dropped))
            log.info(
                "coverage: dropped %s in workspace %s to make room for %s, first in the order",
                dropped,
                context.workspace_id,
                event_type,
            )


async def _forget_registration(runtime: AddonRuntime, installation_id: int, path: str) -> None:
    sessions = runtime.sessions
    async with sessions.begin() as session:
        await session.execute(
            delete(WebhookRegistration).where(
                WebhookRegistration.installation_id == installation_id,
                WebhookRegistration.source == "api",
                WebhookRegistration.path == path,
            )
        )


def _refused(
    workspace_id: str, event_type: str, exc: ClockifyAPIError, later: list[str]
) -> dict[str, str]:
    """The reasons for the refused type and the ones never tried after it."""
    said = redact_text(f"{exc.status} {exc.message}")[:REASON_LIMIT]
    # Expected: Clockify caps webhooks per admin and per workspace; coverage reports it.
    log.info(
        "coverage: Clockify refused a webhook for %s in workspace %s (%s); "
        "%d type(s) left uncovered",
        event_type,
        workspace_id,
        said,
        len(later) + 1,
    )
    gaps = {event_type: f"Clockify refused its webhook: {said}"}
    for other in later:
        gaps[other] = (
            f"not registered: Clockify refused {event_type}, which comes first in the "
            f"priority order ({said}); free webhooks in Clockify or set COVERAGE_PRIORITY, "
            "then reinstall"
        )
    return gaps


def _same_token(registration: WebhookRegistration, hook: Mapping[str, Any]) -> bool:
    """False when Clockify lists another token than ours (it was regenerated there)."""
    listed = hook.get("authToken")
    if not isinstance(listed, str):
        return True
    return hmac.compare_digest(registration.token_digest, hashlib.sha256(listed.encode()).digest())


async def _current(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, addon_id: Any
) -> Installation | None:
    installation = await session.scalar(
        select(Installation).where(
            Installation.addon_key == runtime.addon_key,
            Installation.workspace_id == workspace_id,
        )
    )
    if installation is None or installation.status == "DELETED":
        return None
    if addon_id is not None and installation.addon_id != addon_id:
        return None
    return installation


def _path_of(runtime: AddonRuntime, url: str) -> str:
    return url.removeprefix(runtime.settings.base_url)


async def _store(
    runtime: AddonRuntime,
    installation_id: int,
    job: ClaimedJob,
    context: InstallationContext,
    event_type: str,
    path: str,
    hook: dict[str, Any],
) -> bool:
    """Keep a webhook's token; false if the installation went away meanwhile."""
    token = str(hook["authToken"])
    sessions = runtime.sessions
    async with sessions.begin() as session:
        locked = await session.scalar(
            select(Installation).where(Installation.id == installation_id).with_for_update()
        )
        if (
            locked is None
            or locked.status == "DELETED"
            or (locked.addon_id != job.payload.get("addon_id", locked.addon_id))
        ):
            # Uninstalled while we called Clockify: undo, best effort.
            await delete_webhook(runtime, context, str(hook["id"]))
            return False
        registration = await session.scalar(
            select(WebhookRegistration).where(
                WebhookRegistration.installation_id == installation_id,
                WebhookRegistration.path == path,
            )
        )
        if registration is None:
            registration = WebhookRegistration(
                installation_id=installation_id,
                addon_key=runtime.addon_key,
                workspace_id=context.workspace_id,
                path=path,
            )
            session.add(registration)
        elif registration.source != "api":
            return True  # the manifest covers it after all
        registration.event_type = event_type
        registration.source = "api"
        registration.clockify_webhook_id = str(hook["id"])
        registration.token_digest = hashlib.sha256(token.encode()).digest()
        registration.auth_token = runtime.key_ring.encrypt(
            token, token_context(runtime.addon_key, context.workspace_id, webhook_purpose(path))
        )
    return True


async def _record_outcome(
    runtime: AddonRuntime, installation_id: int, wanted: set[str], gaps: Mapping[str, str]
) -> None:
    """Forget registrations no longer wanted, and replace the recorded gaps."""
    sessions = runtime.sessions
    async with sessions.begin() as session:
        await session.execute(
            delete(WebhookRegistration).where(
                WebhookRegistration.installation_id == installation_id,
                WebhookRegistration.source == "api",
                WebhookRegistration.path.not_in(wanted),
            )
        )
        await session.execute(
            delete(CoverageGap).where(CoverageGap.installation_id == installation_id)
        )
        session.add_all(
            CoverageGap(installation_id=installation_id, event_type=event_type, reason=reason)
            for event_type, reason in gaps.items()
        )
