"""Flows as stored: created, changed, versioned, paused, resumed and deleted.

Every function is scoped by add-on and workspace: another workspace's flow is a 404,
exactly as one that does not exist. A save validates the whole document first and
stores it as a new version in the same transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core import audit
from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES
from addon_core.errors import BadRequestError, ConflictError, NotFoundError, UnprocessableError
from addon_core.flows.dispatch import ANY_EVENT
from addon_core.flows.document import FlowDocument, validate_flow
from addon_core.flows.engine import signing_secret_context
from addon_core.flows.masking import keep_masked_secrets, mask_document
from addon_core.flows.plan import template_limits
from addon_core.flows.review import refuse_undeclared_settings
from addon_core.intake.standard_webhooks import generate_secret
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import (
    Endpoint,
    Execution,
    ExecutionStep,
    Flow,
    FlowVersion,
)
from addon_core.storage.scope import scoped
from addon_core.web.caller import find_in_workspace

#: Random bytes of a flow id: 20 url-safe characters.
FLOW_ID_BYTES: Final = 15
#: What a GET (or the create answer) shows of a flow beyond its document; a PUT may send
#: them back and they are ignored.
READ_ONLY_FIELDS: Final = frozenset(
    {"id", "version", "paused", "pausedReason", "consecutiveFailures", "createdAt",
     "updatedAt", "createdBy", "signingSecret", "warnings"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Saved:
    """A flow just stored, with the signing secret made for it (shown this once)."""

    flow: Flow
    signing_secret: str | None = None


def flow_event_types() -> frozenset[str]:
    """The Clockify event types a flow may trigger on: any Clockify type, or `*` for all.

    Not narrowed to what the app receives today: Universal Webhook registers what its
    manifest lacks through Clockify's API, and a flow saved now keeps working once it does.
    """
    return CLOCKIFY_EVENT_TYPES | {ANY_EVENT}


def uses_signing_secret(runtime: AddonRuntime) -> bool:
    """Whether flows here sign outbound http requests (Universal Webhook)."""
    return "http" in runtime.flow_action_types


# --- documents ---------------------------------------------------------------------------------


async def check_document(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, document: Any
) -> FlowDocument:
    """Validate a flow document for a workspace; raise `FlowValidationError` (422) if bad.

    A setting the app does not declare is refused too (see `addon_core.flows.review`).
    """
    checked = validate_flow(
        document,
        catalogue=runtime.catalogue,
        event_types=flow_event_types(),
        endpoints=await endpoint_ids(session, runtime, workspace_id),
        action_types=runtime.flow_action_types,
        workspace_id=workspace_id,
        limits=template_limits(runtime.settings),
    )
    refuse_undeclared_settings(_canonical(checked), runtime)
    return checked


async def endpoint_ids(session: AsyncSession, runtime: AddonRuntime, workspace_id: str) -> set[str]:
    """Return the ids of the workspace's custom inbound endpoints (none in API Studio)."""
    rows = await session.scalars(
        select(Endpoint.id).where(*scoped(Endpoint, runtime.addon_key, workspace_id))
    )
    return set(rows)


def strip_read_only(document: Any, flow: Flow | None = None) -> Any:
    """Drop what a GET adds to a document, so its output can be PUT back as is.

    An `id` naming another flow is refused rather than ignored: it is a mistake.
    """
    if not isinstance(document, dict):
        return document
    given = document.get("id")
    if flow is not None and given is not None and given != flow.id:
        raise UnprocessableError(
            f"the document's id {given!r} is not the flow being saved ({flow.id}); "
            "remove id or send it to PUT /api/flows/{id} of that flow",
            extra={"errors": [{"field": "id", "message": "does not match the URL"}]},
        )
    return {key: value for key, value in document.items() if key not in READ_ONLY_FIELDS}


def _canonical(document: FlowDocument) -> dict[str, Any]:
    stored: dict[str, Any] = document.model_dump(mode="json")
    return stored


# --- flows -------------------------------------------------------------------------------------


async def create_flow(
    runtime: AddonRuntime,
    workspace_id: str,
    user_id: str | None,
    document: Any,
    *,
    actor: audit.Actor,
    kind: str = "flow.created",
) -> Saved:
    """Validate and store a new flow as version 1; make its signing secret if it signs.

    The audit entry (`kind`) commits with the flow.
    """
    async with runtime.sessions.begin() as session:
        checked = await check_document(session, runtime, workspace_id, document)
        await _check_flow_quota(session, runtime, workspace_id)
        now = datetime.now(UTC)
        flow_id = secrets.token_urlsafe(FLOW_ID_BYTES)
        secret = generate_secret() if uses_signing_secret(runtime) else None
        canonical = _canonical(checked)
        flow = Flow(
            id=flow_id,
            addon_key=runtime.addon_key,
            workspace_id=workspace_id,
            name=checked.name,
            enabled=checked.enabled,
            version=1,
            document=canonical,
            signing_secret=None
            if secret is None
            else runtime.key_ring.encrypt(
                secret, signing_secret_context(runtime.addon_key, workspace_id, flow_id)
            ),
            paused_reason=None,
            consecutive_failures=0,
            created_by=user_id,
            created_at=now,
            updated_at=now,
        )
        session.add(flow)
        session.add(
            FlowVersion(
                flow_id=flow_id, version=1, document=canonical, saved_by=user_id, saved_at=now
            )
        )
        audit.add(session, runtime.addon_key, workspace_id, actor, kind, target=flow_id,
                  after=mask_document(canonical))  # fmt: skip
    return Saved(flow, secret)


async def update_flow(
    runtime: AddonRuntime,
    workspace_id: str,
    user_id: str | None,
    flow_id: str,
    document: Any,
    *,
    actor: audit.Actor,
) -> Flow:
    """Store a changed document as the flow's next version; a paused flow resumes.

    A `version` sent with the document must be the current one (409 otherwise), so an
    editor does not overwrite a change it has not seen.
    """
    async with runtime.sessions.begin() as session:
        flow = await find_flow(session, runtime, workspace_id, flow_id, for_update=True)
        expected = document.get("version") if isinstance(document, dict) else None
        if expected is not None and expected != flow.version:
            raise ConflictError(
                f"flow {flow_id} is at version {flow.version}, not {expected!r}: it changed "
                "since it was read; GET it again and reapply the edit"
            )
        fresh = keep_masked_secrets(strip_read_only(document, flow), flow.document)
        checked = await check_document(session, runtime, workspace_id, fresh)
        now = datetime.now(UTC)
        canonical = _canonical(checked)
        audit.add(session, runtime.addon_key, workspace_id, actor, "flow.version",
                  target=f"{flow.id}@{flow.version + 1}", before=mask_document(flow.document),
                  after=mask_document(canonical))  # fmt: skip
        flow.version += 1
        flow.document = canonical
        flow.name = checked.name
        flow.enabled = checked.enabled
        # "Resumes on edit": the change is the user's answer to what paused it.
        flow.paused_reason = None
        flow.consecutive_failures = 0
        flow.updated_at = now
        session.add(
            FlowVersion(
                flow_id=flow.id,
                version=flow.version,
                document=canonical,
                saved_by=user_id,
                saved_at=now,
            )
        )
        await _prune_versions(session, flow, runtime.quotas.limit_versions())
    return flow


async def _check_flow_quota(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str
) -> None:
    """Refuse a flow past the workspace's quota (two creates take turns for the last place)."""
    await runtime.quotas.lock_workspace(session, runtime.addon_key, workspace_id)
    current = await session.scalar(
        select(func.count()).select_from(Flow).where(*scoped(Flow, runtime.addon_key, workspace_id))
    )
    runtime.quotas.check_count("flows", current or 0, what="flows")


async def _prune_versions(session: AsyncSession, flow: Flow, keep: int) -> None:
    """Keep only the newest `keep` versions of a flow (the current one always stays)."""
    await session.flush()
    await session.execute(
        delete(FlowVersion).where(
            FlowVersion.flow_id == flow.id, FlowVersion.version <= flow.version - keep
        )
    )


async def resume_flow(runtime: AddonRuntime, workspace_id: str, flow_id: str) -> Flow:
    """Clear a flow's pause and its failure streak."""
    async with runtime.sessions.begin() as session:
        flow = await find_flow(session, runtime, workspace_id, flow_id, for_update=True)
        if flow.paused_reason is not None or flow.consecutive_failures:
            flow.paused_reason = None
            flow.consecutive_failures = 0
            flow.updated_at = datetime.now(UTC)
    return flow


async def rotate_signing_secret(runtime: AddonRuntime, workspace_id: str, flow_id: str) -> str:
    """Replace a flow's signing secret and return the new one (shown this once)."""
    if not uses_signing_secret(runtime):
        raise ConflictError(
            "flows of this add-on send no http requests, so they have no signing secret"
        )
    secret = generate_secret()
    async with runtime.sessions.begin() as session:
        flow = await find_flow(session, runtime, workspace_id, flow_id, for_update=True)
        flow.signing_secret = runtime.key_ring.encrypt(
            secret, signing_secret_context(runtime.addon_key, workspace_id, flow_id)
        )
        flow.updated_at = datetime.now(UTC)
    return secret


async def delete_flow(
    runtime: AddonRuntime, workspace_id: str, flow_id: str, *, actor: audit.Actor
) -> None:
    """Delete a flow with its versions, executions and their steps."""
    async with runtime.sessions.begin() as session:
        flow = await find_flow(session, runtime, workspace_id, flow_id, for_update=True)
        audit.add(session, runtime.addon_key, workspace_id, actor, "flow.deleted",
                  target=flow_id, before=mask_document(flow.document))  # fmt: skip
        # Explicit rather than relying on ON DELETE CASCADE, which a SQLite connection
        # without `PRAGMA foreign_keys` would skip.
        runs = select(Execution.id).where(Execution.flow_id == flow.id).scalar_subquery()
        await session.execute(delete(ExecutionStep).where(ExecutionStep.execution_id.in_(runs)))
        await session.execute(delete(Execution).where(Execution.flow_id == flow.id))
        await session.execute(delete(FlowVersion).where(FlowVersion.flow_id == flow.id))
        await session.delete(flow)


async def find_flow(
    session: AsyncSession,
    runtime: AddonRuntime,
    workspace_id: str,
    flow_id: str,
    *,
    for_update: bool = False,
) -> Flow:
    """Return the workspace's flow, or 404."""
    return await find_in_workspace(
        session,
        Flow,
        flow_id,
        addon_key=runtime.addon_key,
        workspace_id=workspace_id,
        missing=f"no flow {flow_id!r} in this workspace; GET /api/flows lists them",
        for_update=for_update,
    )


async def list_flows(
    runtime: AddonRuntime, workspace_id: str, limit: int, after: str | None
) -> list[Flow]:
    """Return up to `limit + 1` flows newest first, after the cursor `created_at|id`."""
    query = (
        select(Flow)
        .where(*scoped(Flow, runtime.addon_key, workspace_id))
        .order_by(Flow.created_at.desc(), Flow.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        created_at, flow_id = read_flow_cursor(after)
        query = query.where(
            or_(
                Flow.created_at < created_at,
                and_(Flow.created_at == created_at, Flow.id < flow_id),
            )
        )
    async with runtime.sessions() as session:
        return list((await session.scalars(query)).all())


def flow_cursor(flow: Flow) -> str:
    """Return the cursor after a flow: its creation time and id."""
    return f"{flow.created_at.isoformat()}|{flow.id}"


def read_flow_cursor(text: str) -> tuple[datetime, str]:
    """Read a flow cursor back; one that was not ours is a 400."""
    moment, _, flow_id = text.partition("|")
    try:
        created_at = datetime.fromisoformat(moment)
    except ValueError:
        raise BadRequestError(
            "the cursor is not one this API returned; pass the 'next' value of the previous page"
        ) from None
    # Our cursors carry an offset; one without is read as UTC, like every stored time.
    return (created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)), flow_id


# --- versions ----------------------------------------------------------------------------------


async def list_versions(
    runtime: AddonRuntime, workspace_id: str, flow_id: str, limit: int, before: int | None
) -> list[FlowVersion]:
    """Return up to `limit + 1` saved versions of a flow, newest first."""
    async with runtime.sessions() as session:
        await find_flow(session, runtime, workspace_id, flow_id)
        query = (
            select(FlowVersion)
            .where(FlowVersion.flow_id == flow_id)
            .order_by(FlowVersion.version.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(FlowVersion.version < before)
        return list((await session.scalars(query)).all())


async def find_version(
    runtime: AddonRuntime, workspace_id: str, flow_id: str, version: int
) -> FlowVersion:
    """Return one saved version of the workspace's flow, or 404."""
    async with runtime.sessions() as session:
        await find_flow(session, runtime, workspace_id, flow_id)
        row = await session.get(FlowVersion, (flow_id, version))
    if row is None:
        raise NotFoundError(
            f"flow {flow_id} has no version {version}; GET /api/flows/{flow_id}/versions lists them"
        )
    return row
