"""Custom inbound webhooks, managing: the JSON API of a workspace's endpoints.

An endpoint has a Standard Webhooks secret, shown at creation and at rotation only
(the previous one stays valid for a grace period), an optional way to read the event
type (a header or a dotted JSON path) and its own rate limit. Receiving deliveries is
`universal_webhook.receiver`.
"""

from __future__ import annotations

import logging
import re
import secrets as random
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, delete, get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core import audit
from addon_core.errors import (
    BadRequestError,
    UnprocessableError,
)
from addon_core.intake.standard_webhooks import generate_secret
from addon_core.redaction import SECRET_HEADERS
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import Endpoint
from addon_core.storage.scope import scoped
from addon_core.web.body import parse_json_object, read_api_body
from addon_core.web.caller import CallerDep, decode_cursor, find_in_workspace, page_limit, page_of
from universal_webhook.receiver import (
    CUSTOM_PATH_PREFIX,
    receive_custom_webhook,
    receiver_cache,
    secret_context,
)

log = logging.getLogger(__name__)

#: 18 random bytes (144 bits) as 24 url-safe characters: unguessable, fits `endpoints.id`.
ENDPOINT_ID_BYTES = 18
MAX_RATE_LIMIT_PER_MINUTE = 60_000
_FIELDS = {"name", "eventTypePath", "eventTypeHeader", "rateLimitPerMinute"}
_PATH = re.compile(r"[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*")
_HEADER = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")


# --- the JSON API ------------------------------------------------------------------------------


@post("/api/endpoints", status_code=201, name="create-endpoint")
async def create_endpoint(
    request: Request[Any, Any, Any],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
) -> dict[str, Any]:
    """Create an endpoint; its secret is shown here and at rotation only."""
    caller.require_writer("creating a custom webhook endpoint")
    raw = await read_api_body(request, runtime.settings)
    fields = _endpoint_fields(
        parse_json_object(raw, max_depth=runtime.settings.max_json_depth), runtime
    )
    secret = generate_secret()
    async with sessions.begin() as session:
        await runtime.quotas.lock_workspace(session, runtime.addon_key, caller.workspace_id)
        existing = await session.scalar(
            select(func.count())
            .select_from(Endpoint)
            .where(*scoped(Endpoint, runtime.addon_key, caller.workspace_id))
        )
        runtime.quotas.check_count("endpoints", existing or 0, what="custom webhook endpoints")
        endpoint = Endpoint(
            id=random.token_urlsafe(ENDPOINT_ID_BYTES),
            addon_key=runtime.addon_key,
            workspace_id=caller.workspace_id,
            created_by=caller.user_id,
            created_at=datetime.now(UTC),
            **fields,
        )
        endpoint.secret = runtime.key_ring.encrypt(secret, secret_context(runtime, endpoint))
        session.add(endpoint)
        audit.add(
            session,
            runtime.addon_key,
            caller.workspace_id,
            audit.by(caller),
            "endpoint.created",
            target=endpoint.id,
            after=fields,
        )
    return {**_render(runtime, endpoint), "secret": secret}


@get("/api/endpoints", name="list-endpoints")
async def list_endpoints(
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List the workspace's endpoints, newest first, without secrets."""
    size = page_limit(limit)
    query = select(Endpoint).where(*scoped(Endpoint, runtime.addon_key, caller.workspace_id))
    after = _decode_endpoint_cursor(cursor)
    if after is not None:
        at, endpoint_id = after
        query = query.where(
            or_(
                Endpoint.created_at < at, and_(Endpoint.created_at == at, Endpoint.id < endpoint_id)
            )
        )
    query = query.order_by(Endpoint.created_at.desc(), Endpoint.id.desc()).limit(size + 1)
    async with sessions() as session:
        rows = list((await session.scalars(query)).all())
    return page_of(
        rows,
        size,
        render=lambda endpoint: _render(runtime, endpoint),
        key=lambda endpoint: f"{endpoint.created_at.isoformat()}|{endpoint.id}",
    )


@get("/api/endpoints/{endpoint_id:str}", name="get-endpoint")
async def get_endpoint(
    endpoint_id: FromPath[str],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
) -> dict[str, Any]:
    """Show one endpoint, without its secret."""
    async with sessions() as session:
        endpoint = await _endpoint(session, runtime, caller.workspace_id, endpoint_id)
    return _render(runtime, endpoint)


@delete("/api/endpoints/{endpoint_id:str}", status_code=204, name="delete-endpoint")
async def delete_endpoint(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
) -> None:
    """Delete an endpoint; its deliveries are refused from now on (events already stored stay)."""
    caller.require_writer("deleting a custom webhook endpoint")
    async with sessions.begin() as session:
        endpoint = await _endpoint(session, runtime, caller.workspace_id, endpoint_id)
        await session.delete(endpoint)
        audit.add(
            session,
            runtime.addon_key,
            caller.workspace_id,
            audit.by(caller),
            "endpoint.deleted",
            target=endpoint_id,
            before={"name": endpoint.name},
        )
    receiver_cache(request.app.state).forget(endpoint_id)


@post("/api/endpoints/{endpoint_id:str}/rotate-secret", status_code=200, name="rotate-endpoint")
async def rotate_endpoint_secret(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
) -> dict[str, Any]:
    """Issue a new secret; the one it replaces stays valid for the grace period.

    Only the latest replaced secret is kept: rotating twice within the grace period ends
    the grace of the first.
    """
    caller.require_writer("rotating a custom webhook secret")
    grace = runtime.settings.secret_rotation_grace_seconds
    secret = generate_secret()
    async with sessions.begin() as session:
        endpoint = await _endpoint(
            session, runtime, caller.workspace_id, endpoint_id, for_update=True
        )
        if grace > 0:
            endpoint.previous_secret = endpoint.secret
            endpoint.previous_secret_expires_at = datetime.now(UTC) + timedelta(seconds=grace)
        else:
            endpoint.previous_secret = endpoint.previous_secret_expires_at = None
        endpoint.secret = runtime.key_ring.encrypt(secret, secret_context(runtime, endpoint))
        audit.add(
            session,
            runtime.addon_key,
            caller.workspace_id,
            audit.by(caller),
            "endpoint.rotated",
            target=endpoint_id,
            after={"graceSeconds": grace},
        )
    receiver_cache(request.app.state).forget(endpoint_id)
    return {**_render(runtime, endpoint), "secret": secret}


async def _endpoint(
    session: AsyncSession,
    runtime: AddonRuntime,
    workspace_id: str,
    endpoint_id: str,
    *,
    for_update: bool = False,
) -> Endpoint:
    """The workspace's endpoint, or 404 (also for another workspace's)."""
    return await find_in_workspace(
        session,
        Endpoint,
        endpoint_id,
        addon_key=runtime.addon_key,
        workspace_id=workspace_id,
        missing=f"no custom webhook endpoint {endpoint_id} in this workspace",
        for_update=for_update,
    )


def _endpoint_fields(body: dict[str, Any], runtime: AddonRuntime) -> dict[str, Any]:
    """Check a create body; report every problem at once (422 with `extra.errors`)."""
    errors: list[dict[str, str]] = [
        {"field": key, "message": f"unknown field; known: {', '.join(sorted(_FIELDS))}"}
        for key in sorted(set(body) - _FIELDS)
    ]
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        errors.append({"field": "name", "message": "a name of 1 to 200 characters is required"})
    path, header = body.get("eventTypePath"), body.get("eventTypeHeader")
    if path is not None and (
        not isinstance(path, str) or len(path) > 200 or not _PATH.fullmatch(path)
    ):
        errors.append(
            {
                "field": "eventTypePath",
                "message": "a dotted JSON path such as 'type' or 'data.kind'",
            }
        )
    if header is not None:
        header = header.lower() if isinstance(header, str) else header
        if not isinstance(header, str) or len(header) > 100 or not _HEADER.fullmatch(header):
            errors.append({"field": "eventTypeHeader", "message": "an HTTP header name"})
        elif header in SECRET_HEADERS or header.startswith(("webhook-", "svix-")):
            errors.append(
                {"field": "eventTypeHeader", "message": f"{header} cannot carry the event type"}
            )
    if path is not None and header is not None:
        errors.append(
            {
                "field": "eventTypeHeader",
                "message": "give eventTypePath or eventTypeHeader, not both",
            }
        )
    rate = body.get("rateLimitPerMinute", runtime.settings.custom_webhook_rate_limit_per_minute)
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int)
        or not 1 <= rate <= MAX_RATE_LIMIT_PER_MINUTE
    ):
        errors.append(
            {
                "field": "rateLimitPerMinute",
                "message": f"a whole number from 1 to {MAX_RATE_LIMIT_PER_MINUTE}",
            }
        )
    if errors:
        raise UnprocessableError(
            "the endpoint is not valid: "
            + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            extra={"errors": errors},
        )
    assert isinstance(name, str)
    return {
        "name": name.strip(),
        "event_type_path": path,
        "event_type_header": header,
        "rate_limit_per_minute": rate,
    }


def _render(runtime: AddonRuntime, endpoint: Endpoint) -> dict[str, Any]:
    expires = endpoint.previous_secret_expires_at
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "url": f"{runtime.settings.base_url}{CUSTOM_PATH_PREFIX}{endpoint.id}",
        "eventTypePath": endpoint.event_type_path,
        "eventTypeHeader": endpoint.event_type_header,
        "rateLimitPerMinute": endpoint.rate_limit_per_minute,
        "previousSecretExpiresAt": (
            expires.isoformat() if expires and expires > datetime.now(UTC) else None
        ),
        "createdBy": endpoint.created_by,
        "createdAt": endpoint.created_at.isoformat(),
    }


def _decode_endpoint_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    text = decode_cursor(cursor)
    if text is None:
        return None
    stamp, _, endpoint_id = text.partition("|")
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        at = None
    if at is None or not endpoint_id:
        raise BadRequestError(
            "the cursor is not one this API returned; pass the 'next' value of the previous page"
        )
    # Our cursors carry an offset; one without is read as UTC, like every stored time.
    return (at if at.tzinfo else at.replace(tzinfo=UTC)), endpoint_id


ENDPOINT_ROUTES: list[BaseRouteHandler] = [
    receive_custom_webhook,  # receiving, in universal_webhook.receiver
    create_endpoint,
    list_endpoints,
    get_endpoint,
    delete_endpoint,
    rotate_endpoint_secret,
]
