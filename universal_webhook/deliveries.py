"""A custom endpoint's recent deliveries, and a signed test delivery sent through its intake.

The test delivery is signed with the endpoint's current secret and posted to the app
itself in-process, so it passes exactly the checks a real sender's delivery passes
(signature, timestamp, event type, intake) and lands in the Events list like one.
"""

from __future__ import annotations

import secrets as random
import time
from typing import Any

import httpx
import msgspec
from litestar import Request, get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from sqlalchemy import select

from addon_core.errors import ServiceUnavailableError
from addon_core.flows.records import render_event
from addon_core.intake.standard_webhooks import signature_headers
from addon_core.runtime import Runtime, Sessions
from addon_core.storage.models import Event
from addon_core.storage.scope import scoped
from addon_core.web.caller import CallerDep, page_limit
from universal_webhook.endpoints import _endpoint
from universal_webhook.receiver import CUSTOM_PATH_PREFIX, _find_receiver

#: The event type a test delivery carries (header or body field, as the endpoint reads it).
TEST_EVENT_TYPE = "test.delivery"


@post("/api/endpoints/{endpoint_id:str}/test", status_code=200, name="test-endpoint")
async def send_test_delivery(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
) -> dict[str, Any]:
    """Send the endpoint a signed test delivery; answer what its intake answered."""
    caller.require_writer("sending a test delivery")
    async with sessions() as session:
        await _endpoint(session, runtime, caller.workspace_id, endpoint_id)
    receiver = await _find_receiver(request.app.state, runtime, endpoint_id)
    payload: dict[str, Any] = {
        "id": f"test_{random.token_hex(8)}",
        "type": TEST_EVENT_TYPE,
        "sentAt": int(time.time()),
        "note": "a test delivery sent from the add-on's Endpoints page",
    }
    if receiver.event_type_path:
        _place(payload, receiver.event_type_path.split("."), TEST_EVENT_TYPE)
    body = msgspec.json.encode(payload)
    headers = {"content-type": "application/json", **signature_headers(receiver.secret, body)}
    if receiver.event_type_header:
        headers[receiver.event_type_header] = TEST_EVENT_TYPE
    app: Any = request.app
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            answer = await client.post(
                f"{CUSTOM_PATH_PREFIX}{endpoint_id}", content=body, headers=headers
            )
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(f"the test delivery could not be sent: {exc}") from None
    return {"status": answer.status_code, "payload": payload, "answer": _decode(answer)}


def _place(payload: dict[str, Any], path: list[str], value: str) -> None:
    """Put `value` at a dotted path, creating objects on the way (list indexes are names)."""
    node = payload
    for name in path[:-1]:
        child = node.get(name)
        node[name] = child if isinstance(child, dict) else {}
        node = node[name]
    node[path[-1]] = value


def _decode(answer: httpx.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return answer.text[:500]


@get("/api/endpoints/{endpoint_id:str}/deliveries", name="endpoint-deliveries")
async def list_deliveries(
    endpoint_id: FromPath[str],
    caller: CallerDep,
    runtime: Runtime,
    sessions: Sessions,
    limit: FromQuery[int | None] = None,
) -> dict[str, Any]:
    """List the events the endpoint received, newest first (payloads redacted)."""
    size = page_limit(limit)
    async with sessions() as session:
        await _endpoint(session, runtime, caller.workspace_id, endpoint_id)
        rows = await session.scalars(
            select(Event)
            .where(
                *scoped(Event, runtime.addon_key, caller.workspace_id),
                Event.endpoint_id == endpoint_id,
            )
            .order_by(Event.id.desc())
            .limit(size)
        )
        return {"items": [render_event(row) for row in rows], "next": None}


DELIVERY_ROUTES: list[BaseRouteHandler] = [send_test_delivery, list_deliveries]
