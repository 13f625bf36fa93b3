"""The audit trail: every change of a workspace's configuration, who made it and from where.

Flows (created, each new version, paused by the add-on after failing too often,
resumed, deleted, secret rotated), custom endpoints (created, rotated, deleted),
lifecycle calls and settings from Clockify, event and dead-job replays, and key rotation
by the operator each add one `AuditEntry`: the actor (the user id and role of the
verified token, or `clockify` / `operator` / `addon`), the time, the
kind, the object, the request id (from `correlation`), and the fields that changed,
redacted. Entries written with the change share its transaction (`add`); route-level
ones commit on their own (`record`). `GET /api/audit` shows them to OWNER and ADMIN;
retention keeps them for `{P}RETENTION_AUDIT_DAYS`, and uninstall erases them with the
workspace's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from litestar import get
from litestar.handlers import BaseRouteHandler
from litestar.params import FromQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.correlation import current_request_id
from addon_core.errors import BadRequestError
from addon_core.redaction import redact
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import AuditEntry
from addon_core.storage.scope import scoped
from addon_core.web.caller import Caller, CallerDep, decode_int_cursor, page_limit, page_of

#: A value larger than this (as text) is stored as a note, not in full.
MAX_VALUE_CHARS: Final = 4000


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    role: str | None = None


CLOCKIFY: Final = Actor("clockify")
OPERATOR: Final = Actor("operator")
#: the add-on itself (a flow paused after failing too often in a row)
ADDON: Final = Actor("addon")


def by(caller: Caller) -> Actor:
    """The actor behind an /api/ request."""
    return Actor(caller.user_id or "unknown", caller.role or None)


def diff(before: Any, after: Any) -> dict[str, Any]:
    """The redacted fields that differ; whole values when they are not both objects."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
        before = {k: before[k] for k in keys if k in before}
        after = {k: after[k] for k in keys if k in after}
    changes: dict[str, Any] = {}
    if before is not None:
        changes["before"] = _bounded(redact(before))
    if after is not None:
        changes["after"] = _bounded(redact(after))
    return changes


def _bounded(value: Any) -> Any:
    text = repr(value)
    if len(text) <= MAX_VALUE_CHARS:
        return value
    return {"note": f"{len(text)} characters, not kept in the audit trail"}


def add(
    session: AsyncSession,
    addon_key: str,
    workspace_id: str,
    actor: Actor,
    kind: str,
    *,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Add an entry to the session's transaction, so it commits with the change."""
    session.add(
        AuditEntry(
            **values(
                addon_key, workspace_id, actor, kind, target=target, before=before, after=after
            )
        )
    )


def values(
    addon_key: str,
    workspace_id: str,
    actor: Actor,
    kind: str,
    *,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> dict[str, Any]:
    """The column values of one entry (for an INSERT outside the ORM session)."""
    request_id = current_request_id()
    return {
        "addon_key": addon_key,
        "workspace_id": workspace_id,
        "at": datetime.now(UTC),
        "actor": actor.id[:64],
        "actor_role": actor.role,
        "kind": kind,
        "target": None if target is None else str(target)[:100],
        "request_id": None if request_id is None else request_id[:100],
        "changes": diff(before, after),
    }


async def record(
    runtime: AddonRuntime,
    workspace_id: str,
    actor: Actor,
    kind: str,
    *,
    target: str | None = None,
    before: Any = None,
    after: Any = None,
) -> None:
    """Write one entry in a transaction of its own, after the change committed."""
    async with runtime.sessions.begin() as session:
        add(
            session,
            runtime.addon_key,
            workspace_id,
            actor,
            kind,
            target=target,
            before=before,
            after=after,
        )


def render(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "actorRole": entry.actor_role,
        "kind": entry.kind,
        "target": entry.target,
        "requestId": entry.request_id,
        "changes": entry.changes,
    }


def _moment(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(
            f"{name} must be an ISO 8601 time such as 2026-12-01T00:00:00Z (got {text[:40]!r})"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@get("/api/audit", name="audit:list")
async def list_audit(
    runtime: Runtime,
    sessions: Sessions,
    caller: CallerDep,
    kind: FromQuery[str | None] = None,
    actor: FromQuery[str | None] = None,
    since: FromQuery[str | None] = None,
    until: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """The workspace's audit trail, newest first; OWNER and ADMIN only."""
    caller.require_writer("reading the audit trail")
    size = page_limit(limit)
    query = select(AuditEntry).where(*scoped(AuditEntry, runtime.addon_key, caller.workspace_id))
    if kind:
        query = query.where(
            AuditEntry.kind.startswith(kind, autoescape=True) if kind.endswith(".")
            else AuditEntry.kind == kind
        )  # fmt: skip
    if actor:
        query = query.where(AuditEntry.actor == actor)
    start, end = _moment("since", since), _moment("until", until)
    if start is not None:
        query = query.where(AuditEntry.at >= start)
    if end is not None:
        query = query.where(AuditEntry.at < end)
    before = decode_int_cursor(cursor)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    async with sessions() as session:
        rows = list(await session.scalars(query.order_by(AuditEntry.id.desc()).limit(size + 1)))
    return page_of(rows, size, render=render, key=lambda entry: entry.id)


AUDIT_ROUTES: list[BaseRouteHandler] = [list_audit]
