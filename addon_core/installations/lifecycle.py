"""The routes of the four lifecycle calls (INSTALLED, STATUS_CHANGED, SETTINGS_UPDATED,
DELETED): verification of `X-Addon-Lifecycle-Token` and the body, then one transaction
that applies the call (`installations.apply`) and writes the audit tables.

Each call is idempotent. Ordering: a call is stale, and changes nothing, when its token
was issued before the one that set the current state, or when it speaks for an
installation (`addonId`) that is no longer the workspace's current one. A
DELETED workspace keeps a token-less tombstone so that a late INSTALLED for the
same installation cannot bring it back.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core import audit
from addon_core.clockify.tokens import ClaimMismatchError, TokenError, TokenKind
from addon_core.errors import BadRequestError
from addon_core.installations.apply import (
    LifecycleCall,
    apply_deleted,
    apply_installed,
    apply_settings_updated,
    apply_status_changed,
)
from addon_core.redaction import MASK, is_secret_name
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.database import translate_errors
from addon_core.storage.models import (
    Installation,
    LifecycleAudit,
    WebhookRegistration,
)
from addon_core.storage.scope import scoped
from addon_core.web.body import (
    header_map,
    parse_json_object,
    read_body,
    require_json_content_type,
)

log = logging.getLogger(__name__)

LIFECYCLE_HEADER = "x-addon-lifecycle-token"
#: Body fields holding Clockify ids (24 hex digits today), stored in 64-character columns.
_ID_FIELDS = ("addonId", "asUser", "addonUserId")
_ID_MAX_LENGTH = 64


def build_lifecycle_handlers(runtime: AddonRuntime) -> list[HTTPRouteHandler]:
    """One POST handler per lifecycle path the manifest declares."""
    handlers: dict[str, Apply] = {
        "INSTALLED": apply_installed,
        "STATUS_CHANGED": apply_status_changed,
        "SETTINGS_UPDATED": apply_settings_updated,
        "DELETED": apply_deleted,
    }
    routes = []
    for lifecycle_type, path in runtime.manifest.lifecycle_paths.items():
        routes.append(_make_handler(lifecycle_type, path, handlers[lifecycle_type]))
    return routes


Apply = Callable[
    [AsyncSession, AddonRuntime, "LifecycleCall", Installation | None], Awaitable[tuple[str, str]]
]


def _make_handler(lifecycle_type: str, path: str, apply: Apply) -> HTTPRouteHandler:
    async def handle_lifecycle(
        request: Request[Any, Any, Any], runtime: Runtime, sessions: Sessions
    ) -> dict[str, str]:
        call = await verify_lifecycle_call(request, runtime, lifecycle_type)
        async with translate_errors(f"applying {lifecycle_type}"), sessions.begin() as session:
            installation = await _lock_installation(session, runtime, call.workspace_id)
            if installation is not None:
                await _refuse_webhook_token(session, runtime, installation, call)
            settings_before = None if installation is None else list(installation.settings or [])
            outcome, detail = await apply(session, runtime, call, installation)
            _audit(session, runtime, call, lifecycle_type, outcome, settings_before)
            session.add(
                LifecycleAudit(
                    addon_key=runtime.addon_key,
                    workspace_id=call.workspace_id,
                    addon_id=call.addon_id,
                    lifecycle_type=lifecycle_type,
                    outcome=outcome,
                    detail=detail,
                )
            )
        runtime.intake.recent.forget(call.workspace_id)  # its redeliveries ask the database
        runtime.jobs.wake()  # what the hooks enqueued (bootstrap, coverage) starts now
        log.info("lifecycle %s on workspace %s: %s", lifecycle_type, call.workspace_id, outcome)
        return {"status": outcome, "detail": detail}

    return post(path, status_code=200, name=f"lifecycle-{lifecycle_type.lower()}")(handle_lifecycle)


def _masked_settings(settings: Any) -> Any:
    """Settings as the audit keeps them: the value of a secret-named setting masked."""
    if not isinstance(settings, list):
        return settings
    return [
        {**item, "value": MASK}
        if isinstance(item, dict)
        and item.get("value") is not None
        and any(is_secret_name(str(item.get(key) or "")) for key in ("id", "name"))
        else item
        for item in settings
    ]


def _audit(
    session: AsyncSession,
    runtime: AddonRuntime,
    call: LifecycleCall,
    lifecycle_type: str,
    outcome: str,
    settings_before: list[Any] | None,
) -> None:
    """Record an applied call in the workspace's audit trail (DELETED has just erased it)."""
    if outcome != "applied" or lifecycle_type == "DELETED":
        return
    before: Any = None
    after: Any = {"status": call.body.get("status")} if lifecycle_type == "STATUS_CHANGED" else None
    if lifecycle_type == "SETTINGS_UPDATED":
        before = {"settings": _masked_settings(settings_before)}
        after = {"settings": _masked_settings(call.body.get("settings"))}
    audit.add(
        session,
        runtime.addon_key,
        call.workspace_id,
        audit.CLOCKIFY,
        f"lifecycle.{lifecycle_type.lower()}",
        before=before,
        after=after,
    )


async def verify_lifecycle_call(
    request: Request[Any, Any, Any], runtime: AddonRuntime, lifecycle_type: str
) -> LifecycleCall:
    """Verify the lifecycle token, then parse the body and match it to the token."""
    headers = header_map(request)
    token = headers.get(LIFECYCLE_HEADER)
    claims = runtime.verify_token(token, TokenKind.LIFECYCLE)
    require_json_content_type(headers)
    settings = runtime.settings
    body = parse_json_object(
        await read_body(
            request, headers, settings.max_body_bytes, settings.client_body_timeout_seconds
        ),
        max_depth=settings.max_json_depth,
    )
    workspace_id = body.get("workspaceId")
    if not isinstance(workspace_id, str) or not workspace_id:
        raise BadRequestError("the body has no workspaceId")
    for key in _ID_FIELDS:
        value = body.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > _ID_MAX_LENGTH):
            raise BadRequestError(f"{key} must be an id of at most {_ID_MAX_LENGTH} characters")
    if workspace_id != claims.workspace_id:
        raise ClaimMismatchError(
            "workspace", "the body's workspaceId is not the workspace the token was issued for"
        )
    addon_id = body.get("addonId")
    if addon_id is not None and claims.addon_id is not None and addon_id != claims.addon_id:
        raise ClaimMismatchError(
            "addon_id", "the body's addonId is not the installation the token was issued for"
        )
    assert token is not None
    _refuse_tokens_of_the_body(runtime, token, body)
    runtime.metrics.lifecycle_events.labels(runtime.addon_key, lifecycle_type).inc()
    return LifecycleCall(lifecycle_type, claims, body, hashlib.sha256(token.encode()).digest())


def _refuse_tokens_of_the_body(runtime: AddonRuntime, token: str, body: dict[str, Any]) -> None:
    """Refuse an INSTALLED whose lifecycle token is one of the tokens its body hands over."""
    if token == body.get("authToken"):
        _refuse_kind(runtime, "the installation token cannot be used as the lifecycle token")
    webhooks = body.get("webhooks")
    for webhook in webhooks if isinstance(webhooks, list) else []:
        if isinstance(webhook, dict) and token == webhook.get("authToken"):
            _refuse_kind(runtime, "a webhook token cannot be used as the lifecycle token")


async def _lock_installation(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str
) -> Installation | None:
    query = (
        select(Installation)
        .where(*scoped(Installation, runtime.addon_key, workspace_id))
        .with_for_update()
    )
    return (await session.execute(query)).scalar_one_or_none()


async def _refuse_webhook_token(
    session: AsyncSession, runtime: AddonRuntime, installation: Installation, call: LifecycleCall
) -> None:
    """Refuse a webhook token presented as the lifecycle token (counted as a verification
    failure). Both carry the same claims, so only the tokens stored at install tell them apart.
    """
    query = select(WebhookRegistration.id).where(
        WebhookRegistration.installation_id == installation.id,
        WebhookRegistration.token_digest == call.token_digest,
    )
    if (await session.execute(query)).first() is not None:
        _refuse_kind(runtime, "a webhook token cannot be used as the lifecycle token")


def _refuse_kind(runtime: AddonRuntime, detail: str) -> None:
    runtime.metrics.verification_failures.labels(
        runtime.addon_key, TokenKind.LIFECYCLE.value, "kind"
    ).inc()
    raise TokenError("kind", detail)
