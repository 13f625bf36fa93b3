"""The flows, executions and events JSON API of CONTRACT.md.

Any workspace role reads; OWNER or ADMIN writes. A flow is shown as its document's
fields at the top level plus read-only fields (`id`, `version`, `paused`, ...), so a
GET's output can be edited and PUT back as is: the read-only fields are ignored on PUT,
except that a `version` other than the current one is a 409 (the flow changed since it
was read). Secrets in http actions' URLs and headers are shown masked, and a masked
value PUT back unchanged keeps the stored one. The per-flow signing secret of http
actions (Universal Webhook) is returned once, by create and by rotate-secret.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, delete, get, post, put
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from addon_core import audit
from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import BadRequestError, UnprocessableError
from addon_core.flows import records, service
from addon_core.flows.document import FlowDocument
from addon_core.flows.dry_run import dry_run
from addon_core.flows.masking import mask_document
from addon_core.flows.review import dry_run_warnings, save_warnings
from addon_core.installations.context import live_installation
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import Flow, FlowVersion
from addon_core.web.body import decode_json, read_api_body
from addon_core.web.caller import (
    Caller,
    CallerDep,
    RowId,
    decode_cursor,
    decode_int_cursor,
    page_limit,
    page_of,
)

_TEST_KEYS = ("eventType", "event")
_REPLAY_KEYS = ("flowIds",)


async def read_json(
    request: Request[Any, Any, Any], runtime: AddonRuntime, *, empty: Any = None
) -> Any:
    """Decode a JSON request body; an empty body is `empty`, bad or too deep JSON a 400."""
    raw = await read_api_body(request, runtime.settings)
    if not raw.strip():
        if empty is None:
            raise BadRequestError("the request has no body; send a JSON object")
        return empty
    return decode_json(raw, max_depth=runtime.settings.max_json_depth, what="the request")


def render_flow(flow: Flow) -> dict[str, Any]:
    """Render a flow: its document's fields (secrets masked) and its state."""
    return {
        "id": flow.id,
        **mask_document(flow.document),
        "name": flow.name,
        "enabled": flow.enabled,
        "version": flow.version,
        "paused": flow.paused_reason is not None,
        "pausedReason": flow.paused_reason,
        "consecutiveFailures": flow.consecutive_failures,
        "createdAt": flow.created_at.isoformat(),
        "updatedAt": flow.updated_at.isoformat(),
        "createdBy": flow.created_by,
    }


def render_version(row: FlowVersion, *, document: bool = False) -> dict[str, Any]:
    """Render a saved version; with its (masked) document when asked."""
    shown: dict[str, Any] = {
        "version": row.version,
        "name": row.document.get("name"),
        "savedAt": row.saved_at.isoformat(),
        "savedBy": row.saved_by,
    }
    if document:
        shown["document"] = mask_document(row.document)
    return shown


# --- flows -------------------------------------------------------------------------------------


@post("/api/flows", name="flows:create", status_code=201)
async def create_flow(
    request: Request[Any, Any, Any], runtime: Runtime, caller: CallerDep
) -> dict[str, Any]:
    """Validate and store a flow; Universal Webhook returns its signing secret this once."""
    caller.require_writer("creating a flow")
    document = service.strip_read_only(await read_json(request, runtime))
    saved = await service.create_flow(
        runtime, caller.workspace_id, caller.user_id, document, actor=audit.by(caller)
    )
    return await render_created(runtime, caller, saved)


async def render_created(
    runtime: AddonRuntime, caller: Caller, saved: service.Saved
) -> dict[str, Any]:
    """Show a new flow with its signing secret (this once) and its warnings."""
    shown = render_flow(saved.flow)
    if saved.signing_secret is not None:
        shown["signingSecret"] = saved.signing_secret
    shown["warnings"] = await save_warnings(runtime, caller.workspace_id, saved.flow.document)
    return shown


@get("/api/flows", name="flows:list")
async def list_flows(
    runtime: Runtime,
    caller: CallerDep,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List the workspace's flows, newest first."""
    size = page_limit(limit)
    rows = await service.list_flows(runtime, caller.workspace_id, size, decode_cursor(cursor))
    return page_of(rows, size, render=render_flow, key=service.flow_cursor)


@get("/api/flows/{flow_id:str}", name="flows:get")
async def get_flow(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, flow_id: FromPath[str]
) -> dict[str, Any]:
    """Show one flow."""
    async with sessions() as session:
        flow = await service.find_flow(session, runtime, caller.workspace_id, flow_id)
    return render_flow(flow)


@put("/api/flows/{flow_id:str}", name="flows:update")
async def update_flow(
    request: Request[Any, Any, Any], runtime: Runtime, caller: CallerDep, flow_id: FromPath[str]
) -> dict[str, Any]:
    """Replace a flow's document with a new version; a paused flow resumes."""
    caller.require_writer("changing a flow")
    document = await read_json(request, runtime)
    flow = await service.update_flow(
        runtime, caller.workspace_id, caller.user_id, flow_id, document, actor=audit.by(caller)
    )
    warnings = await save_warnings(runtime, caller.workspace_id, flow.document)
    return {**render_flow(flow), "warnings": warnings}


@delete("/api/flows/{flow_id:str}", name="flows:delete", status_code=204)
async def delete_flow(runtime: Runtime, caller: CallerDep, flow_id: FromPath[str]) -> None:
    """Delete a flow with its versions and executions."""
    caller.require_writer("deleting a flow")
    await service.delete_flow(runtime, caller.workspace_id, flow_id, actor=audit.by(caller))


@post("/api/flows/{flow_id:str}/resume", name="flows:resume", status_code=200)
async def resume_flow(
    runtime: Runtime, caller: CallerDep, flow_id: FromPath[str]
) -> dict[str, Any]:
    """Resume a flow paused after failing too often in a row."""
    caller.require_writer("resuming a flow")
    flow = await service.resume_flow(runtime, caller.workspace_id, flow_id)
    await audit.record(
        runtime, caller.workspace_id, audit.by(caller), "flow.resumed", target=flow_id
    )
    return render_flow(flow)


@post("/api/flows/{flow_id:str}/rotate-secret", name="flows:rotate-secret", status_code=200)
async def rotate_secret(
    runtime: Runtime, caller: CallerDep, flow_id: FromPath[str]
) -> dict[str, Any]:
    """Replace the secret a flow's http actions are signed with; return it this once."""
    caller.require_writer("rotating a flow's signing secret")
    secret = await service.rotate_signing_secret(runtime, caller.workspace_id, flow_id)
    await audit.record(
        runtime, caller.workspace_id, audit.by(caller), "flow.secret_rotated", target=flow_id
    )
    return {"id": flow_id, "signingSecret": secret}


# --- versions ----------------------------------------------------------------------------------


@get("/api/flows/{flow_id:str}/versions", name="flows:versions")
async def list_versions(
    runtime: Runtime,
    caller: CallerDep,
    flow_id: FromPath[str],
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List a flow's saved versions, newest first."""
    size = page_limit(limit)
    rows = await service.list_versions(
        runtime, caller.workspace_id, flow_id, size, decode_int_cursor(cursor)
    )
    return page_of(rows, size, render=render_version, key=lambda row: row.version)


@get("/api/flows/{flow_id:str}/versions/{version:int}", name="flows:version")
async def get_version(
    runtime: Runtime, caller: CallerDep, flow_id: FromPath[str], version: RowId
) -> dict[str, Any]:
    """Show one saved version with its document."""
    row = await service.find_version(runtime, caller.workspace_id, flow_id, version)
    return render_version(row, document=True)


# --- executions --------------------------------------------------------------------------------


@get("/api/flows/{flow_id:str}/executions", name="flows:executions")
async def list_executions(
    runtime: Runtime,
    caller: CallerDep,
    flow_id: FromPath[str],
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List a flow's executions newest first, each with its steps."""
    size = page_limit(limit)
    executions, steps = await records.list_executions(
        runtime, caller.workspace_id, flow_id, size, decode_int_cursor(cursor)
    )
    return page_of(
        executions,
        size,
        render=lambda row: records.render_execution(row, steps.get(row.id, [])),
        key=lambda row: row.id,
    )


@get("/api/executions/{execution_id:int}", name="flows:execution")
async def get_execution(runtime: Runtime, caller: CallerDep, execution_id: RowId) -> dict[str, Any]:
    """Show one execution with its steps."""
    execution, steps = await records.find_execution(runtime, caller.workspace_id, execution_id)
    return records.render_execution(execution, steps)


# --- dry run -----------------------------------------------------------------------------------


@post("/api/flows/{flow_id:str}/test", name="flows:test", status_code=200)
async def dry_run_flow(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    sessions: Sessions,
    caller: CallerDep,
    flow_id: FromPath[str],
) -> dict[str, Any]:
    """Dry-run a flow on `{"eventType", "event"}`: conditions judged, actions rendered.

    Only clockify GETs are sent (see `addon_core.flows.dry_run`); nothing is stored.
    `eventType` defaults to the first event the trigger lists.
    """
    runtime.quotas.charge(caller.workspace_id, "dry_runs_per_minute")
    body = await read_json(request, runtime)
    async with sessions() as session:
        flow = await service.find_flow(session, runtime, caller.workspace_id, flow_id)
        installation = await live_installation(session, runtime, caller.workspace_id)
    document = FlowDocument.model_validate(flow.document)
    event_type, event = _read_test_request(body, document)
    answer = await dry_run(runtime, document, installation, event_type, event)
    return {**answer, "warnings": dry_run_warnings(runtime, installation, flow.document)}


def _read_test_request(body: Any, document: FlowDocument) -> tuple[str, Any]:
    shape = '{"eventType": "NEW_TIME_ENTRY", "event": {...}}'
    if not isinstance(body, dict):
        raise _invalid("the dry run did not start", [ValidationIssue("request", f"send {shape}")])
    issues = [
        ValidationIssue(key, f"unknown key; expected {' and '.join(_TEST_KEYS)}")
        for key in body
        if key not in _TEST_KEYS
    ]
    event_type = body.get("eventType", document.trigger.events[0])
    if not isinstance(event_type, str) or not event_type:
        issues.append(ValidationIssue("eventType", "expected an event type such as NEW_TIME_ENTRY"))
    if "event" not in body:
        issues.append(ValidationIssue("event", f"required: the event's payload, as in {shape}"))
    if issues:
        raise _invalid("the dry run did not start", issues)
    return str(event_type), body["event"]


# --- events ------------------------------------------------------------------------------------


@get("/api/events", name="events:list")
async def list_events(
    runtime: Runtime,
    caller: CallerDep,
    event_type: Annotated[str | None, QueryParameter(name="eventType")] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
    since: FromQuery[datetime | None] = None,
) -> dict[str, Any]:
    """List the workspace's received events newest first, payloads redacted.

    `since` (ISO 8601, with an offset) keeps the events received at or after it.
    """
    size = page_limit(limit)
    if since is not None and since.tzinfo is None:
        raise BadRequestError("since needs a UTC offset, as in 2026-01-31T09:00:00Z")
    rows = await records.list_events(
        runtime, caller.workspace_id, size, decode_int_cursor(cursor), event_type, since
    )
    return page_of(rows, size, render=records.render_event, key=lambda row: row.id)


@get("/api/events/{event_id:int}", name="events:get")
async def get_event(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, event_id: RowId
) -> dict[str, Any]:
    """Show one received event, its payload redacted."""
    async with sessions() as session:
        event = await records.find_event(session, runtime, caller.workspace_id, event_id)
    return records.render_event(event)


@post("/api/events/{event_id:int}/replay", name="events:replay", status_code=202)
async def replay_event(
    request: Request[Any, Any, Any], runtime: Runtime, caller: CallerDep, event_id: RowId
) -> dict[str, Any]:
    """Run the flows on an event again, as a new run; `{"flowIds": [...]}` picks flows."""
    caller.require_writer("replaying an event")
    body = await read_json(request, runtime, empty={})
    flow_ids = _read_replay_request(body)
    replay = await records.replay_event(runtime, caller.workspace_id, event_id, flow_ids)
    await audit.record(
        runtime,
        caller.workspace_id,
        audit.by(caller),
        "event.replayed",
        target=str(event_id),
        after={"flowIds": flow_ids, "runKey": replay.run_key},
    )
    answer: dict[str, Any] = {
        "eventId": replay.event_id,
        "runKey": replay.run_key,
        "jobId": replay.job_id,
    }
    if replay.flow_ids is not None:
        answer["flowIds"] = replay.flow_ids
    return answer


def _read_replay_request(body: Any) -> list[str] | None:
    if not isinstance(body, dict):
        raise _invalid(
            "the replay was not enqueued",
            [ValidationIssue("request", 'send {} or {"flowIds": ["<flow id>", ...]}')],
        )
    issues = [
        ValidationIssue(key, "unknown key; expected flowIds")
        for key in body
        if key not in _REPLAY_KEYS
    ]
    flow_ids = body.get("flowIds")
    valid = isinstance(flow_ids, list) and flow_ids and all(isinstance(i, str) for i in flow_ids)
    if flow_ids is not None and not valid:
        issues.append(ValidationIssue("flowIds", "expected a non-empty list of flow ids"))
    if issues:
        raise _invalid("the replay was not enqueued", issues)
    return list(flow_ids) if flow_ids is not None else None


def _invalid(what: str, issues: list[ValidationIssue]) -> UnprocessableError:
    first, more = issues[0], len(issues) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return UnprocessableError(
        f"{what}: {first.field}: {first.message}{tail}",
        extra={"errors": [{"field": i.field, "message": i.message} for i in issues]},
    )


FLOW_ROUTES: list[BaseRouteHandler] = [
    create_flow,
    list_flows,
    get_flow,
    update_flow,
    delete_flow,
    resume_flow,
    rotate_secret,
    list_versions,
    get_version,
    list_executions,
    get_execution,
    dry_run_flow,
    list_events,
    get_event,
    replay_event,
]
