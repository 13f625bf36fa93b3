"""What the Events page and the flow editor read about received events, beyond the list.

A live feed (`GET /api/events/stream`, Server-Sent Events) of the workspace's new events,
the executions one event caused, the event types a flow can trigger on and a sample
payload of one type (the newest received) for template hints. The feed polls the
database rather than listening in-process, so it sees events that any process of the
add-on stored; it ends when the caller's token expires, and the page reconnects with a
fresh token and `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from sqlalchemy import select

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES
from addon_core.clockify.tokens import TokenKind
from addon_core.errors import BadRequestError
from addon_core.flows import records
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import Event, Execution, ExecutionStep
from addon_core.storage.scope import scoped
from addon_core.web.caller import CallerDep, bearer_token

#: How often the feed looks for new events, and how many it sends per look.
POLL_SECONDS = 0.5
BATCH = 100
#: A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0


@get("/api/events/stream", name="events:stream", include_in_schema=False)
async def stream_events(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    caller: CallerDep,
    event_type: Annotated[str | None, QueryParameter(name="eventType")] = None,
    after: Annotated[int | None, QueryParameter(name="after", ge=0)] = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id")] = None,
) -> ServerSentEvent:
    """Send each new event of the workspace as an SSE `event` message until the token expires.

    Starts after `Last-Event-ID` (a reconnect), else after `after`, else with what
    arrives from now on.
    """
    claims = runtime.verify_token(bearer_token(request), TokenKind.USER)
    expires_at = claims.expires_at or time.time()
    start = _start_after(last_event_id, after)
    if start is None:
        start = await _newest_id(runtime, caller.workspace_id)
    feed = _feed(runtime, caller.workspace_id, event_type, start, expires_at)
    return ServerSentEvent(feed, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _start_after(last_event_id: str | None, after: int | None) -> int | None:
    if last_event_id is None:
        return after
    if not last_event_id.isdigit():
        raise BadRequestError("Last-Event-ID must be the id of an event this stream sent")
    return int(last_event_id)


async def _newest_id(runtime: AddonRuntime, workspace_id: str) -> int:
    async with runtime.sessions() as session:
        newest = await session.scalar(
            select(Event.id)
            .where(*scoped(Event, runtime.addon_key, workspace_id))
            .order_by(Event.id.desc())
            .limit(1)
        )
    return newest or 0


async def _feed(
    runtime: AddonRuntime,
    workspace_id: str,
    event_type: str | None,
    last_id: int,
    expires_at: float,
) -> AsyncIterator[ServerSentEventMessage]:
    yield ServerSentEventMessage(event="ready", data=str(last_id), retry=2000)
    idle_since = time.monotonic()
    while time.time() < expires_at:
        rows = await _events_after(runtime, workspace_id, event_type, last_id)
        for row in rows:
            last_id = row.id
            data = records.render_event(row)
            yield ServerSentEventMessage(event="received", id=str(row.id), data=_json(data))
        if rows:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > KEEPALIVE_SECONDS:
            idle_since = time.monotonic()
            yield ServerSentEventMessage(comment="keep-alive")
        if len(rows) < BATCH:
            await asyncio.sleep(min(POLL_SECONDS, max(expires_at - time.time(), 0)))
    yield ServerSentEventMessage(event="expired", data="the token expired; reconnect")


async def _events_after(
    runtime: AddonRuntime, workspace_id: str, event_type: str | None, last_id: int
) -> list[Event]:
    query = (
        select(Event)
        .where(
            *scoped(Event, runtime.addon_key, workspace_id),
            Event.id > last_id,
        )
        .order_by(Event.id)
        .limit(BATCH)
    )
    if event_type:
        query = query.where(Event.event_type == event_type)
    async with runtime.sessions() as session:
        return list((await session.scalars(query)).all())


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


@get("/api/events/{event_id:int}/executions", name="events:executions")
async def list_event_executions(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, event_id: FromPath[int]
) -> dict[str, Any]:
    """List the executions one event caused (replays included), newest first, with steps."""
    async with sessions() as session:
        await records.find_event(session, runtime, caller.workspace_id, event_id)
        executions = list(
            await session.scalars(
                select(Execution)
                .where(
                    *scoped(Execution, runtime.addon_key, caller.workspace_id),
                    Execution.event_id == event_id,
                )
                .order_by(Execution.id.desc())
                .limit(200)
            )
        )
        steps: dict[int, list[ExecutionStep]] = {}
        if executions:
            for step in await session.scalars(
                select(ExecutionStep)
                .where(ExecutionStep.execution_id.in_([row.id for row in executions]))
                .order_by(ExecutionStep.execution_id, ExecutionStep.position)
            ):
                steps.setdefault(step.execution_id, []).append(step)
    items = [records.render_execution(row, steps.get(row.id, [])) for row in executions]
    return {"items": items, "next": None}


@get("/api/event-types", name="events:types")
async def list_event_types(runtime: Runtime, caller: CallerDep) -> dict[str, Any]:
    """Every Clockify event type a flow may trigger on; `declared` if the manifest lists it."""
    declared = set(runtime.manifest.webhook_events.values())
    items = [
        {"eventType": name, "declared": name in declared} for name in sorted(CLOCKIFY_EVENT_TYPES)
    ]
    items.sort(key=lambda item: not item["declared"])
    return {"items": items, "next": None}


@get("/api/event-types/{event_type:str}/sample", name="events:sample")
async def show_sample_event(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, event_type: FromPath[str]
) -> dict[str, Any]:
    """The newest received event of this type (redacted) for template hints, or `null`."""
    async with sessions() as session:
        row = await session.scalar(
            select(Event)
            .where(
                *scoped(Event, runtime.addon_key, caller.workspace_id),
                Event.event_type == event_type,
            )
            .order_by(Event.id.desc())
            .limit(1)
        )
    if row is None:
        # Not an error for the editor: it says so and offers the generic hints.
        return {
            "eventType": event_type,
            "event": None,
            "detail": f"no {event_type} event has been received in this workspace yet",
        }
    return {"eventType": event_type, "event": records.render_event(row), "detail": None}


EVENT_FEED_ROUTES: list[BaseRouteHandler] = [
    stream_events,
    list_event_executions,
    list_event_types,
    show_sample_event,
]
