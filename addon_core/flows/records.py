"""What flows ran and what they ran on: executions with their steps, and received events,
read and replayed. Scoped like the flows: another workspace's row is a 404."""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import UnprocessableError
from addon_core.flows.dispatch import DISPATCH_JOB, OVER_QUOTA_REASON, ordering_key
from addon_core.flows.masking import mask_request
from addon_core.flows.service import find_flow
from addon_core.redaction import redact, redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Event, Execution, ExecutionStep, Flow
from addon_core.storage.scope import scoped
from addon_core.web.caller import find_in_workspace

#: How steps stored by the engine read in the API (CONTRACT.md: succeeded, failed, skipped,
#: unknown): a step still `sending` has no known outcome yet.
_STEP_STATUS: Final = {"sending": "unknown"}


# --- executions --------------------------------------------------------------------------------


async def list_executions(
    runtime: AddonRuntime, workspace_id: str, flow_id: str, limit: int, before: int | None
) -> tuple[list[Execution], dict[int, list[ExecutionStep]]]:
    """Return up to `limit + 1` executions of a flow newest first, with their steps (one query)."""
    async with runtime.sessions() as session:
        await find_flow(session, runtime, workspace_id, flow_id)
        query = (
            select(Execution)
            .where(
                *scoped(Execution, runtime.addon_key, workspace_id),
                Execution.flow_id == flow_id,
            )
            .order_by(Execution.id.desc())
            .limit(limit + 1)
        )
        if before is not None:
            query = query.where(Execution.id < before)
        executions = list((await session.scalars(query)).all())
        steps = await _steps_of(session, [execution.id for execution in executions[:limit]])
    return executions, steps


async def find_execution(
    runtime: AddonRuntime, workspace_id: str, execution_id: int
) -> tuple[Execution, list[ExecutionStep]]:
    """Return one execution of the workspace with its steps, or 404."""
    async with runtime.sessions() as session:
        execution = await find_in_workspace(
            session,
            Execution,
            execution_id,
            addon_key=runtime.addon_key,
            workspace_id=workspace_id,
            missing=f"no execution {execution_id} in this workspace; "
            "GET /api/flows/{id}/executions lists a flow's",
        )
        steps = await _steps_of(session, [execution.id])
    return execution, steps.get(execution.id, [])


async def _steps_of(
    session: AsyncSession, execution_ids: Sequence[int]
) -> dict[int, list[ExecutionStep]]:
    found: dict[int, list[ExecutionStep]] = {}
    if not execution_ids:
        return found
    rows = await session.scalars(
        select(ExecutionStep)
        .where(ExecutionStep.execution_id.in_(execution_ids))
        .order_by(ExecutionStep.execution_id, ExecutionStep.position)
    )
    for step in rows:
        found.setdefault(step.execution_id, []).append(step)
    return found


def render_execution(execution: Execution, steps: Sequence[ExecutionStep]) -> dict[str, Any]:
    """Render an execution with its steps as the API shows them."""
    return {
        "id": execution.id,
        "flowId": execution.flow_id,
        "flowVersion": execution.flow_version,
        "eventId": execution.event_id,
        "runKey": execution.run_key,
        "status": execution.status,
        "error": redact_text(execution.error) if execution.error else execution.error,
        "createdAt": execution.created_at.isoformat(),
        "finishedAt": execution.finished_at.isoformat() if execution.finished_at else None,
        "steps": [render_step(step) for step in steps],
    }


def render_step(step: ExecutionStep) -> dict[str, Any]:
    """Render one step: its masked request, the answer's status and body excerpt."""
    return {
        "id": step.step_id,
        "status": _STEP_STATUS.get(step.status, step.status),
        "request": mask_request(step.request),
        "response": step.response,
        "error": redact_text(step.error) if step.error else step.error,
        "durationMs": step.duration_ms,
    }


# --- events ------------------------------------------------------------------------------------


async def list_events(
    runtime: AddonRuntime,
    workspace_id: str,
    limit: int,
    before: int | None,
    event_type: str | None,
    since: datetime | None = None,
) -> list[Event]:
    """Return up to `limit + 1` received events of the workspace, newest first."""
    query = (
        select(Event)
        .where(*scoped(Event, runtime.addon_key, workspace_id))
        .order_by(Event.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Event.id < before)
    if event_type:
        query = query.where(Event.event_type == event_type)
    if since is not None:
        query = query.where(Event.received_at >= since)
    async with runtime.sessions() as session:
        return list((await session.scalars(query)).all())


async def find_event(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str, event_id: int
) -> Event:
    """Return one received event of the workspace, or 404."""
    return await find_in_workspace(
        session,
        Event,
        event_id,
        addon_key=runtime.addon_key,
        workspace_id=workspace_id,
        missing=f"no event {event_id} in this workspace (events are kept for a limited time); "
        "GET /api/events lists them",
    )


def event_payload(event: Event) -> Any:
    """Return an event's body as JSON when it is JSON, else as text (also when it nests too
    deeply to parse: stored before the intake bounded depth)."""
    try:
        return json.loads(event.payload)
    except (ValueError, RecursionError):
        return event.payload


def render_event(event: Event) -> dict[str, Any]:
    """Render a received event; its payload redacted, its headers not shown."""
    return {
        "id": event.id,
        "eventType": event.event_type,
        "source": event.source,
        "endpointId": event.endpoint_id,
        "receivedAt": event.received_at.isoformat(),
        "payload": redact(event_payload(event)),
        "flowsSkipped": OVER_QUOTA_REASON if event.over_quota else None,
    }


@dataclass(frozen=True, slots=True)
class Replay:
    """A replay enqueued: the run key its executions get, and the job that runs them."""

    event_id: int
    run_key: str
    job_id: int
    flow_ids: list[str] | None


async def replay_event(
    runtime: AddonRuntime, workspace_id: str, event_id: int, flow_ids: Collection[str] | None
) -> Replay:
    """Enqueue a `flow.dispatch` job that runs the event again under a fresh run key."""
    queue = runtime.jobs
    async with runtime.sessions.begin() as session:
        event = await find_event(session, runtime, workspace_id, event_id)
        chosen = (
            None if flow_ids is None else await _own_flow_ids(session, runtime, event, flow_ids)
        )
        # A random suffix: two replays of one event never share a run (executions are
        # unique on flow, event and run key).
        run_key = f"replay-{secrets.token_hex(8)}"
        payload: dict[str, Any] = {"event_id": event.id, "run_key": run_key}
        if chosen is not None:
            payload["flow_ids"] = chosen
        job = queue.new(
            DISPATCH_JOB,
            workspace_id,
            payload,
            ordering_key=ordering_key(event.workspace_id, event_payload(event), event.id),
        )
        session.add(job)
        await session.flush()
        job_id = job.id
    queue.wake()
    return Replay(event_id, run_key, job_id, chosen)


async def _own_flow_ids(
    session: AsyncSession, runtime: AddonRuntime, event: Event, flow_ids: Collection[str]
) -> list[str]:
    wanted = list(dict.fromkeys(flow_ids))
    found = set(
        await session.scalars(
            select(Flow.id).where(
                *scoped(Flow, runtime.addon_key, event.workspace_id),
                Flow.id.in_(wanted),
            )
        )
    )
    issues = [
        ValidationIssue(f"flowIds[{index}]", f"no flow {flow_id!r} in this workspace")
        for index, flow_id in enumerate(wanted)
        if flow_id not in found
    ]
    if issues:
        raise UnprocessableError(
            f"the replay was not enqueued: {issues[0].field}: {issues[0].message}",
            extra={"errors": [{"field": i.field, "message": i.message} for i in issues]},
        )
    return wanted
