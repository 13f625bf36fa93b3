"""Clockify webhook endpoints: verify first, then parse, then hand to the intake writer.

Checks, in order (PLATFORM.md "Webhooks" and the marketplace docs'
"Authenticity"): the `clockify-signature` token is a valid webhook token of
this add-on; the `clockify-webhook-event-type` header names the event of the
path; the body is a JSON object within the size limit; its `workspaceId`, when
present, is the token's; and, at commit time, the workspace is installed and
active and the token is the one Clockify issued for this path at install.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from litestar import Request, post
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from addon_core.clockify.event_types import (
    CLOCKIFY_EVENT_TYPES,
    WEBHOOK_PATH_PREFIX,
    metric_label,
    webhook_path,
)
from addon_core.clockify.tokens import ClaimMismatchError, TokenKind
from addon_core.correlation import bind
from addon_core.errors import AddonError, NotFoundError
from addon_core.intake.writer import Delivery, Outcome
from addon_core.redaction import safe_headers
from addon_core.runtime import AddonRuntime
from addon_core.tracing import TRACEPARENT, current_traceparent, enabled, span
from addon_core.web.body import (
    header_map,
    parse_json_object,
    read_body,
    require_json_content_type,
)

SIGNATURE_HEADER = "clockify-signature"
EVENT_TYPE_HEADER = "clockify-webhook-event-type"

log = logging.getLogger(__name__)


def dedupe_key(workspace_id: str, event_type: str, body: bytes) -> str:
    """Identify a delivery by what Clockify sends: workspace, event type and the exact body."""
    digest = hashlib.sha256(f"{workspace_id}\n{event_type}\n".encode())
    digest.update(body)
    return digest.hexdigest()


#: Path → event type, for every event Clockify can send (static routes route fastest).
_EVENT_BY_PATH = {webhook_path(event): event for event in sorted(CLOCKIFY_EVENT_TYPES)}


@post(list(_EVENT_BY_PATH), status_code=200, name="clockify-webhook")
async def receive_clockify_webhook(request: Request[Any, Any, Any]) -> ASGIResponse:
    """Store one Clockify webhook delivery and acknowledge it once it is committed."""
    # The hot path takes the runtime from the app state, reads the raw headers once and
    # answers with a prebuilt ASGI response: no dependency resolution, no header object,
    # no response conversion per request (docs/performance.md).
    runtime: AddonRuntime = request.app.state.runtime
    event_type = _EVENT_BY_PATH[request.scope["path_template"]]
    if enabled():
        parent = header_map(request).get(TRACEPARENT)
        attributes = {"addon": runtime.addon_key, "event_type": event_type}
        with span("webhook intake", parent=parent, attributes=attributes):
            return await _receive(request, runtime, event_type)
    return await _receive(request, runtime, event_type)


async def _receive(
    request: Request[Any, Any, Any], runtime: AddonRuntime, event_type: str
) -> ASGIResponse:
    metrics = runtime.metrics
    try:
        delivery = await _verify_and_parse(request, runtime, event_type)
        assert runtime.intake is not None
        outcome = await runtime.intake.submit(delivery)
    except AddonError as exc:
        metrics.count_webhook(runtime.addon_key, metric_label(event_type), "rejected")
        metrics.count_rejection(runtime.addon_key, exc.reason)
        raise
    metrics.count_webhook(runtime.addon_key, event_type, outcome.value)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("webhook %s %s", event_type, outcome.value)
    return _RESPONSES[outcome]


@post(f"{WEBHOOK_PATH_PREFIX}{{slug:str}}", status_code=404, name="unknown-clockify-webhook")
async def refuse_unknown_event(slug: FromPath[str]) -> None:
    """Explain a webhook path that names no Clockify event type."""
    raise NotFoundError(
        f"{WEBHOOK_PATH_PREFIX}{slug} names no Clockify event type; webhooks are received on "
        f"{WEBHOOK_PATH_PREFIX}<event>, e.g. {webhook_path('NEW_TIME_ENTRY')}"
    )


#: One response per outcome, built once: an `ASGIResponse` keeps no state of a request.
_RESPONSES = {
    outcome: ASGIResponse(
        body=b'{"status":"%s"}' % outcome.value.encode(), media_type="application/json"
    )
    for outcome in Outcome
}


async def _verify_and_parse(
    request: Request[Any, Any, Any], runtime: AddonRuntime, event_type: str
) -> Delivery:
    headers = header_map(request)
    traceparent = current_traceparent()
    if traceparent is not None:
        headers[TRACEPARENT] = traceparent  # stored with the event: its job joins the trace
    token = headers.get(SIGNATURE_HEADER)
    claims = runtime.verify_token(token, TokenKind.WEBHOOK)
    bind(workspace_id=claims.workspace_id)
    header_event = headers.get(EVENT_TYPE_HEADER)
    if header_event != event_type:
        raise ClaimMismatchError(
            "event_type",
            f"header {EVENT_TYPE_HEADER} is {header_event!r}; this endpoint receives {event_type}",
        )
    require_json_content_type(headers)
    settings = runtime.settings
    body = await read_body(
        request, headers, settings.max_body_bytes, settings.client_body_timeout_seconds
    )
    payload = parse_json_object(body, max_depth=runtime.settings.max_json_depth)
    workspace_id = payload.get("workspaceId")
    if workspace_id is None:
        # 12 of Clockify's event payloads carry no workspaceId: the token's is the one.
        workspace_id = claims.workspace_id
    elif workspace_id != claims.workspace_id:
        raise ClaimMismatchError(
            "workspace", "the body's workspaceId is not the workspace the token was issued for"
        )
    assert token is not None
    return Delivery(
        workspace_id=workspace_id,
        event_type=event_type,
        path=webhook_path(event_type),
        addon_id=claims.addon_id,
        token_digest=hashlib.sha256(token.encode()).digest(),
        dedupe_key=dedupe_key(workspace_id, event_type, body),
        payload=body.decode(),  # valid UTF-8: it parsed as JSON
        headers=safe_headers(headers),
    )
