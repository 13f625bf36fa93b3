"""Applying a verified lifecycle call to the installation and the workspace's data.

INSTALLED stores the (encrypted) installation and webhook tokens and the allowed base
URLs; STATUS_CHANGED and SETTINGS_UPDATED change what they name; DELETED forgets the
tokens and purges the workspace's rows, keeping a token-less tombstone. A call issued
before the one that set the current state is stale and changes nothing (the
watermarks). The routes that verify the calls are in `installations.lifecycle`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.manifest import normalize_webhook_path
from addon_core.clockify.tokens import ClaimMismatchError, Claims, TokenError, TokenKind
from addon_core.errors import BadRequestError, ConflictError, UnprocessableError
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Base, Installation, WebhookRegistration, utcnow
from addon_core.storage.scope import scoped
from addon_core.storage.vault import INSTALLATION_PURPOSE, token_context, webhook_purpose

log = logging.getLogger(__name__)

#: Tables that keep their rows when a workspace is purged.
#: Kept when a workspace's data is purged: the installation's tombstone, the lifecycle
#: record, and the day's event count (a reinstall must not reset the daily quota; it
#: holds no data of the workspace and retention removes it after two days).
_KEPT_ON_PURGE = frozenset({"installations", "lifecycle_audit", "event_day_counts"})


@dataclass(frozen=True, slots=True)
class LifecycleCall:
    """A verified lifecycle call: its type, token claims and body."""

    type: str
    claims: Claims
    body: dict[str, Any]
    token_digest: bytes

    @property
    def workspace_id(self) -> str:
        return self.claims.workspace_id

    @property
    def addon_id(self) -> str | None:
        value = self.body.get("addonId")
        return value if isinstance(value, str) and value else self.claims.addon_id

    @property
    def issued_at(self) -> float | None:
        iat = self.claims.raw.get("iat")
        return float(iat) if isinstance(iat, int | float) else None


#: The watermarks (issue times) each lifecycle type is ordered against: INSTALLED and
#: DELETED replace the whole state; status and settings change independently.
_WATERMARKS = {
    "INSTALLED": ("lifecycle_issued_at", "status_issued_at", "settings_issued_at"),
    "DELETED": ("lifecycle_issued_at", "status_issued_at", "settings_issued_at"),
    "STATUS_CHANGED": ("lifecycle_issued_at", "status_issued_at"),
    "SETTINGS_UPDATED": ("lifecycle_issued_at", "settings_issued_at"),
}


def _stale_reason(call: LifecycleCall, installation: Installation) -> str | None:
    """Say why a call is older than the state it would change, or None if it is current.

    Order is proved only by issue times that both sides carry: without them a call
    applies, since refusing a genuine reinstall forever is worse than replaying one.
    """
    marks = [getattr(installation, name) for name in _WATERMARKS[call.type]]
    newest = max((mark for mark in marks if mark is not None), default=None)
    if call.issued_at is not None and newest is not None and call.issued_at < newest:
        return "its token was issued before the one that set the current state"
    if call.type != "INSTALLED" and call.addon_id and call.addon_id != installation.addon_id:
        return f"it is for installation {call.addon_id}, not the current {installation.addon_id}"
    deleted_at = installation.lifecycle_issued_at
    if (
        call.type == "INSTALLED"
        and installation.status == "DELETED"
        and call.addon_id == installation.addon_id
        and call.issued_at is not None
        and deleted_at is not None
        and call.issued_at <= deleted_at
    ):
        return "this installation was deleted after it was installed"
    return None


def _advance(installation: Installation, watermark: str, issued_at: float | None) -> None:
    """Move a watermark forward to `issued_at`; never back."""
    current = getattr(installation, watermark)
    if issued_at is not None and (current is None or issued_at > current):
        setattr(installation, watermark, issued_at)


async def apply_installed(
    session: AsyncSession,
    runtime: AddonRuntime,
    call: LifecycleCall,
    installation: Installation | None,
) -> tuple[str, str]:
    """Store (or replace) the installation, its token, base URLs and webhook tokens."""
    body = call.body
    if installation is not None and (reason := _stale_reason(call, installation)):
        return "stale", reason
    auth_token = body.get("authToken")
    if not isinstance(auth_token, str) or not auth_token:
        raise BadRequestError("the INSTALLED body has no authToken")
    addon_id = call.addon_id
    if not addon_id:
        raise BadRequestError("the INSTALLED body has no addonId")
    token_claims = _verify_companion(runtime, auth_token, TokenKind.INSTALLATION, call)
    api_urls = _allowed_urls(runtime, body, token_claims)
    registrations = _webhook_registrations(runtime, body, call)

    if installation is None or installation.status == "DELETED":
        # Nothing written before this install may reach it, even a write that raced the purge.
        await purge_workspace(session, runtime.addon_key, call.workspace_id)
    if installation is None:
        installation = Installation(addon_key=runtime.addon_key, workspace_id=call.workspace_id)
        session.add(installation)
    if installation.addon_id != addon_id or installation.status in (None, "DELETED"):
        # A new installation starts active, from the manifest's defaults; a redelivered
        # INSTALLED of the current one keeps the status and settings set since.
        installation.settings = []
        installation.status = "ACTIVE"
        installation.status_issued_at = installation.settings_issued_at = None
        installation.lifecycle_issued_at = None
    context = token_context(runtime.addon_key, call.workspace_id, INSTALLATION_PURPOSE)
    installation.addon_id = addon_id
    installation.auth_token = runtime.key_ring.encrypt(auth_token, context)
    installation.api_urls = api_urls
    installation.as_user = _optional_str(body, "asUser")
    installation.addon_user_id = _optional_str(body, "addonUserId")
    installation.owner_user_id = token_claims.user_id
    _advance(installation, "lifecycle_issued_at", call.issued_at)
    installation.installed_at = utcnow()
    installation.deleted_at = None
    await session.flush()
    await _replace_manifest_registrations(session, runtime, installation, registrations)
    await session.flush()
    for hook in runtime.on_installed:
        await hook(session, runtime, installation)
    return "applied", f"installed with {len(registrations)} webhook(s)"


async def _replace_manifest_registrations(
    session: AsyncSession,
    runtime: AddonRuntime,
    installation: Installation,
    registrations: dict[str, tuple[str, str]],
) -> None:
    """Store the webhook tokens of this INSTALLED in place of the previous install's."""
    await session.execute(
        delete(WebhookRegistration).where(
            WebhookRegistration.installation_id == installation.id,
            WebhookRegistration.source == "manifest",
        )
    )
    workspace_id = installation.workspace_id
    for path, (event_type, token) in registrations.items():
        session.add(
            WebhookRegistration(
                installation_id=installation.id,
                addon_key=runtime.addon_key,
                workspace_id=workspace_id,
                path=path,
                event_type=event_type,
                source="manifest",
                token_digest=hashlib.sha256(token.encode()).digest(),
                auth_token=runtime.key_ring.encrypt(
                    token, token_context(runtime.addon_key, workspace_id, webhook_purpose(path))
                ),
            )
        )


async def apply_status_changed(
    session: AsyncSession,
    runtime: AddonRuntime,
    call: LifecycleCall,
    installation: Installation | None,
) -> tuple[str, str]:
    status = call.body.get("status")
    if status not in ("ACTIVE", "INACTIVE"):
        raise UnprocessableError(f"status must be ACTIVE or INACTIVE, not {status!r}")
    installation = _require_installed(installation, call)
    if reason := _stale_reason(call, installation):
        return "stale", reason
    installation.status = status
    _advance(installation, "status_issued_at", call.issued_at)
    return "applied", f"status is {status}"


async def apply_settings_updated(
    session: AsyncSession,
    runtime: AddonRuntime,
    call: LifecycleCall,
    installation: Installation | None,
) -> tuple[str, str]:
    settings = call.body.get("settings")
    if not isinstance(settings, list) or not all(
        isinstance(s, dict) and isinstance(s.get("id"), str) for s in settings
    ):
        raise UnprocessableError(
            "settings must be a list of {id, name, value} objects, as Clockify sends them"
        )
    installation = _require_installed(installation, call)
    if reason := _stale_reason(call, installation):
        return "stale", reason
    installation.settings = [
        {"id": s["id"], "name": s.get("name"), "value": s.get("value")} for s in settings
    ]
    _advance(installation, "settings_issued_at", call.issued_at)
    return "applied", f"{len(settings)} setting(s) stored"


async def apply_deleted(
    session: AsyncSession,
    runtime: AddonRuntime,
    call: LifecycleCall,
    installation: Installation | None,
) -> tuple[str, str]:
    """Forget the tokens and purge the workspace's data, keeping a tombstone."""
    if installation is None:
        if call.addon_id:
            # Arrived before its INSTALLED: the tombstone keeps that INSTALLED out.
            session.add(
                Installation(
                    addon_key=runtime.addon_key,
                    workspace_id=call.workspace_id,
                    addon_id=call.addon_id,
                    status="DELETED",
                    lifecycle_issued_at=call.issued_at,
                    deleted_at=utcnow(),
                )
            )
        return "ignored", "the workspace was not installed"
    if reason := _stale_reason(call, installation):
        return "stale", reason
    if installation.status == "DELETED":
        return "ignored", "already deleted"
    # Hooks still see the token and the workspace's rows (to undo what install set up).
    for hook in runtime.on_deleted:
        await hook(session, runtime, installation)
    await purge_workspace(session, runtime.addon_key, call.workspace_id)
    installation.status = "DELETED"
    installation.auth_token = None
    installation.api_urls = {}
    installation.settings = []
    installation.as_user = installation.addon_user_id = installation.owner_user_id = None
    installation.deleted_at = utcnow()
    _advance(installation, "lifecycle_issued_at", call.issued_at)
    return "applied", "tokens deleted and workspace data purged"


async def purge_workspace(session: AsyncSession, addon_key: str, workspace_id: str) -> None:
    """Delete every row of the workspace except those `_KEPT_ON_PURGE` names."""
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in _KEPT_ON_PURGE or not {"addon_key", "workspace_id"} <= set(table.c.keys()):
            continue
        await session.execute(delete(table).where(*scoped(table.c, addon_key, workspace_id)))


def _require_installed(installation: Installation | None, call: LifecycleCall) -> Installation:
    if installation is None or installation.status == "DELETED":
        raise ConflictError(f"workspace {call.workspace_id} has no installation of this add-on")
    return installation


def _verify_companion(
    runtime: AddonRuntime, token: str, kind: TokenKind, call: LifecycleCall
) -> Claims:
    """Verify a token carried in the INSTALLED body and tie it to the same installation."""
    try:
        claims = runtime.verify_token(token, kind)
    except TokenError as exc:
        raise TokenError(
            exc.reason, f"the {kind} token in the body is not valid: {exc.detail}"
        ) from None
    if claims.workspace_id != call.workspace_id:
        raise ClaimMismatchError("workspace", f"the {kind} token is for another workspace")
    if claims.addon_id is not None and claims.addon_id != call.addon_id:
        raise ClaimMismatchError("addon_id", f"the {kind} token is for another installation")
    return claims


def _allowed_urls(runtime: AddonRuntime, body: dict[str, Any], claims: Claims) -> dict[str, str]:
    """Collect apiUrl and the token's URL claims; refuse the install if any host is not allowed."""
    urls = dict(claims.url_claims())
    api_url = body.get("apiUrl")
    if api_url is not None:
        if not isinstance(api_url, str):
            raise BadRequestError("apiUrl must be a string")
        urls["apiUrl"] = api_url
    for name, url in urls.items():
        runtime.allowlist.check_url(url, what=name)
    return urls


def _webhook_registrations(
    runtime: AddonRuntime, body: dict[str, Any], call: LifecycleCall
) -> dict[str, tuple[str, str]]:
    """Path → (event type, token) for each `webhooks[]` entry that matches a manifest path."""
    entries = body.get("webhooks") or []
    if not isinstance(entries, list):
        raise BadRequestError("webhooks must be a list of {path, webhookType, authToken}")
    declared = runtime.manifest.webhook_events
    found: dict[str, tuple[str, str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequestError("each webhooks[] entry must be an object")
        raw_path, token = entry.get("path"), entry.get("authToken")
        if not isinstance(raw_path, str) or not isinstance(token, str) or not token:
            raise BadRequestError("each webhooks[] entry needs a path and an authToken")
        path = normalize_webhook_path(raw_path, runtime.settings.base_url)
        event_type = declared.get(path)
        if event_type is None:
            log.warning("INSTALLED lists webhook path %s, not declared in the manifest", path)
            continue
        _verify_companion(runtime, token, TokenKind.WEBHOOK, call)
        found[path] = (event_type, token)
    return found


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None
