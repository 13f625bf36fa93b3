"""The API explorer: Clockify's operations listed, described and run for the caller's workspace.

Operations list in the OpenAPI document's order, not newest first: they have no time,
and a stable order keeps `next` cursors (offsets) valid. An execute runs with the
installation token of the caller's workspace; a 4xx from Clockify is the answer being
explored, so it comes back as 200 with Clockify's status and message, while a Clockify
outage (503) and our own refusals stay errors. Every execute of a known operation in a
workspace where the add-on is installed is kept in `api_calls`, whatever its outcome.
An operation that writes runs only while the workspace's `explorerAllowWrites` setting
(API Studio's manifest) is on; a manifest without that setting allows writes.
"""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery
from sqlalchemy import select

from addon_core.clockify.catalogue import WORKSPACE_PARAM, Operation, Parameter, build_url
from addon_core.clockify.client import ClockifyAPIError
from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import AddonError, BadRequestError, ForbiddenError, UnprocessableError
from addon_core.flows.plan import installation_settings
from addon_core.installations.context import installation_context, live_installation
from addon_core.redaction import redact, redact_text
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import ApiCall, Installation
from addon_core.storage.scope import scoped
from addon_core.web.body import check_json_depth, decode_json, read_api_body
from addon_core.web.caller import (
    Caller,
    CallerDep,
    RowId,
    decode_int_cursor,
    find_in_workspace,
    page_limit,
    page_of,
)

#: The most of a response body returned and stored (JSON bytes); beyond it `truncated` is set.
MAX_BODY_BYTES = 256 * 1024

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_REQUEST_KEYS = ("params", "body")
_REQUEST_SHAPE = '{"params": {...}, "body": ...}'
_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_ACTION_ID_LENGTH = 64
#: The workspace setting that lets the explorer run operations that write.
ALLOW_WRITES_SETTING = "explorerAllowWrites"


# --- operations --------------------------------------------------------------------------------


@get("/api/operations", name="explorer:operations")
async def list_operations(
    runtime: Runtime,
    caller: CallerDep,
    tag: FromQuery[str | None] = None,
    method: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List Clockify's operations by tag, method and text, in the document's order."""
    size = page_limit(limit)
    if method and method.upper() not in _METHODS:
        raise BadRequestError(
            f"method must be one of {', '.join(sorted(_METHODS))} (got {method!r})"
        )
    start = decode_int_cursor(cursor) or 0
    matching = runtime.catalogue.filter(tag=tag, method=method, text=q)
    rows = list(enumerate(matching))[start : start + size + 1]
    return page_of(rows, size, render=lambda row: summarise(row[1]), key=lambda row: row[0] + 1)


@get("/api/operations/{operation_id:str}", name="explorer:operation")
async def describe_operation(
    runtime: Runtime, caller: CallerDep, operation_id: FromPath[str]
) -> dict[str, Any]:
    """Describe one operation: parameters, body schema, pagination, scope."""
    catalogue = runtime.catalogue
    operation = catalogue.get(operation_id)
    return {
        **summarise(operation),
        "parameters": [describe_parameter(parameter) for parameter in operation.parameters],
        "body": None
        if operation.body_media_type is None
        else {
            "mediaType": operation.body_media_type,
            "required": operation.body_required,
            "schema": operation.body_schema,
        },
        "pagination": None
        if operation.pagination is None
        else {
            "in": operation.pagination.kind,
            "pageParam": operation.pagination.page_param,
            "sizeParam": operation.pagination.size_param,
            "maxSize": operation.pagination.max_size,
        },
    }


def summarise(operation: Operation) -> dict[str, Any]:
    """Render what a list of operations shows of one."""
    return {
        "operationId": operation.operation_id,
        "method": operation.method,
        "path": operation.path,
        "summary": operation.summary,
        "tag": operation.tag,
        "serverKind": operation.server_kind,
        "writes": operation.writes,
        "scope": operation.scope,
        "paginated": operation.pagination is not None,
        "deprecated": operation.deprecated,
    }


def describe_parameter(parameter: Parameter) -> dict[str, Any]:
    """Render a parameter; `workspaceId` in the path is filled from the installation."""
    schema = parameter.schema
    items = schema.get("items")
    item_enum = items.get("enum") if isinstance(items, dict) else None
    filled = parameter.name == WORKSPACE_PARAM and parameter.location == "path"
    return {
        "name": parameter.name,
        "in": parameter.location,
        "required": parameter.required and not filled,
        "filledByInstallation": filled,
        "description": parameter.description,
        "type": schema.get("type"),
        "enum": schema.get("enum") or item_enum,
        "schema": schema,
    }


# --- execute -----------------------------------------------------------------------------------


@post("/api/operations/{operation_id:str}/execute", name="explorer:execute", status_code=200)
async def execute_operation(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    sessions: Sessions,
    caller: CallerDep,
    operation_id: FromPath[str],
) -> dict[str, Any]:
    """Run one operation for the caller's workspace and keep the call in the history.

    Answers `{status, latencyMs, body, truncated, attempts, callId}`; Clockify's 4xx
    included (see the module docstring).
    """
    operation = runtime.catalogue.get(operation_id)
    runtime.quotas.charge(caller.workspace_id, "explorer_calls_per_minute")
    async with sessions() as session:
        installation = await live_installation(session, runtime, caller.workspace_id)
    raw = await read_api_body(request, runtime.settings)
    # Too deep to even record: refused before a history row is made.
    check_json_depth(raw, runtime.settings.max_json_depth)
    call = ApiCall(
        addon_key=runtime.addon_key,
        workspace_id=caller.workspace_id,
        user_id=caller.user_id,
        operation_id=operation.operation_id,
        method=operation.method,
        url="",
        params={},
    )
    try:
        answer = await _run(runtime, caller, operation, raw, call, installation)
    except AddonError as exc:
        call.error = redact_text(exc.detail)
        await _store(runtime, call)
        exc.extra = {**(exc.extra or {}), "callId": call.id}
        raise
    await _store(runtime, call)
    return {**answer, "callId": call.id}


async def _run(
    runtime: AddonRuntime,
    caller: Caller,
    operation: Operation,
    raw: bytes,
    call: ApiCall,
    installation: Installation,
) -> dict[str, Any]:
    """Check, send and record one call on `call`; raise what refuses it."""
    params, body = read_execute_request(raw, max_depth=runtime.settings.max_json_depth)
    call.params, call.body = redact(params), redact(body)
    if operation.writes:
        caller.require_writer(f"running {operation.operation_id}, which writes to Clockify,")
        require_writes_allowed(runtime, installation, operation)
    catalogue = runtime.catalogue
    issues = catalogue.validate(
        operation.operation_id, params, body, workspace_id=caller.workspace_id
    )
    if issues:
        raise _invalid(f"{operation.operation_id} was not sent", issues)
    bound = catalogue.bind(operation.operation_id, params, caller.workspace_id)
    context = installation_context(runtime, installation)
    url = build_url(operation, bound, context.base_urls)
    call.url = redact_text(url)  # the token travels in a header, never in the URL
    started = time.perf_counter()
    try:
        response = await runtime.clockify.call(
            context,
            operation.method,
            url,
            operation=operation.operation_id,
            lane="interactive",
            json=body,
        )
    except ClockifyAPIError as exc:
        # A refusal is what the user is exploring: answered, not raised.
        status, answer, attempts = exc.status, {"message": exc.message}, 1
        call.error = redact_text(f"Clockify answered {exc.status}: {exc.message}")
    except AddonError:
        call.latency_ms = _milliseconds(time.perf_counter() - started)
        raise
    else:
        status, answer, attempts = response.status, response.body, response.attempts
    latency = _milliseconds(time.perf_counter() - started)
    shown, truncated = cap_body(redact(answer))
    call.status, call.latency_ms = status, latency
    call.response = {"body": shown, "truncated": truncated, "attempts": attempts}
    return {
        "status": status,
        "latencyMs": latency,
        "body": shown,
        "truncated": truncated,
        "attempts": attempts,
    }


def require_writes_allowed(
    runtime: AddonRuntime, installation: Installation, operation: Operation
) -> None:
    """Refuse (403) an operation that writes while the workspace turned explorer writes off."""
    if ALLOW_WRITES_SETTING not in runtime.manifest.setting_defaults():
        return
    value = installation_settings(runtime.manifest, installation).get(ALLOW_WRITES_SETTING)
    if value is False or (isinstance(value, str) and value.strip().lower() in ("false", "off")):
        raise ForbiddenError(
            f"{operation.operation_id} writes to Clockify, and this workspace's setting "
            f'{ALLOW_WRITES_SETTING} ("Allow the explorer to run operations that write") '
            "is off; an owner or admin can turn it on in the add-on's settings in Clockify",
            reason="setting",
        )


def read_execute_request(raw: bytes, *, max_depth: int) -> tuple[dict[str, Any], Any]:
    """Read `{"params": {...}, "body": ...}`; an empty request means no params and no body."""
    if not raw.strip():
        return {}, None
    try:
        document = decode_json(raw, max_depth=max_depth, what="the request")
    except BadRequestError as exc:
        raise BadRequestError(f"{exc.detail}; send {_REQUEST_SHAPE}", reason=exc.reason) from None
    if not isinstance(document, dict):
        raise _invalid(
            "the request was not sent",
            [ValidationIssue("request", f"expected a JSON object {_REQUEST_SHAPE}")],
        )
    issues = [
        ValidationIssue(key, f"unknown key; expected {' and '.join(_REQUEST_KEYS)}")
        for key in document
        if key not in _REQUEST_KEYS
    ]
    params = document.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        issues.append(ValidationIssue("params", f"expected an object, got {params!r:.80}"))
    if issues:
        raise _invalid("the request was not sent", issues)
    return params, document.get("body")


def cap_body(body: Any, limit: int = MAX_BODY_BYTES) -> tuple[Any, bool]:
    """Keep a body within `limit` JSON bytes: a list's leading items, else a text excerpt."""
    encoded = msgspec.json.encode(body)
    if len(encoded) <= limit:
        return body, False
    if isinstance(body, list):
        kept: list[Any] = []
        used = 2  # the brackets
        for item in body:
            used += len(msgspec.json.encode(item)) + 1
            if used > limit:
                break
            kept.append(item)
        return kept, True
    return encoded[:limit].decode(errors="ignore"), True


def _invalid(what: str, issues: list[ValidationIssue]) -> UnprocessableError:
    first, more = issues[0], len(issues) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return UnprocessableError(
        f"{what}: {first.field}: {first.message}{tail}",
        extra={"errors": [{"field": i.field, "message": i.message} for i in issues]},
    )


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def _store(runtime: AddonRuntime, call: ApiCall) -> None:
    async with runtime.sessions.begin() as session:
        session.add(call)


# --- history -----------------------------------------------------------------------------------


@get("/api/calls", name="explorer:calls")
async def list_calls(
    runtime: Runtime,
    sessions: Sessions,
    caller: CallerDep,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
    operation: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List the workspace's explorer calls, newest first, optionally of one operation."""
    size = page_limit(limit)
    before = decode_int_cursor(cursor)
    query = (
        select(ApiCall)
        .where(*scoped(ApiCall, runtime.addon_key, caller.workspace_id))
        .order_by(ApiCall.id.desc())
        .limit(size + 1)
    )
    if before is not None:
        query = query.where(ApiCall.id < before)
    if operation:
        query = query.where(ApiCall.operation_id == operation)
    async with sessions() as session:
        rows = list((await session.scalars(query)).all())
    return page_of(rows, size, render=render_call, key=lambda row: row.id)


@get("/api/calls/{call_id:int}", name="explorer:call")
async def get_call(runtime: Runtime, caller: CallerDep, call_id: RowId) -> dict[str, Any]:
    """Show one call in full: what was sent and Clockify's (redacted) answer."""
    call = await _find_call(runtime, caller.workspace_id, call_id)
    return {
        **render_call(call),
        "params": call.params,
        "body": call.body,
        "response": call.response,
    }


@get("/api/calls/{call_id:int}/action", name="explorer:call-action")
async def get_call_action(runtime: Runtime, caller: CallerDep, call_id: RowId) -> dict[str, Any]:
    """Turn a tried call into a flow action (CONTRACT.md, "Flow document") to paste in a flow."""
    call = await _find_call(runtime, caller.workspace_id, call_id)
    params = {k: v for k, v in (call.params or {}).items() if k != WORKSPACE_PARAM}
    action: dict[str, Any] = {
        "id": action_id(call.operation_id),
        "type": "clockify",
        "operation": call.operation_id,
        "params": params,
    }
    if call.body is not None:
        action["body"] = call.body
    return action


def render_call(call: ApiCall) -> dict[str, Any]:
    """Render what a list of calls shows of one."""
    return {
        "id": call.id,
        "operationId": call.operation_id,
        "method": call.method,
        "url": call.url,
        "status": call.status,
        "latencyMs": call.latency_ms,
        "error": call.error,
        "userId": call.user_id,
        "at": call.at.isoformat(),
    }


def action_id(operation_id: str) -> str:
    """Name an action after its operation in snake case: `getProjects` -> `get_projects`."""
    snake = _WORD_START.sub("_", operation_id).lower()
    snake = re.sub(r"[^a-z0-9_-]", "_", snake)
    if not snake or not (snake[0].isalpha() or snake[0] == "_"):
        snake = f"call_{snake}"
    return snake[:_ACTION_ID_LENGTH]


async def _find_call(runtime: AddonRuntime, workspace_id: str, call_id: int) -> ApiCall:
    async with runtime.sessions() as session:
        return await find_in_workspace(
            session,
            ApiCall,
            call_id,
            addon_key=runtime.addon_key,
            workspace_id=workspace_id,
            missing=f"no explorer call {call_id} in this workspace; GET /api/calls lists them",
        )


EXPLORER_ROUTES: list[BaseRouteHandler] = [
    list_operations,
    describe_operation,
    execute_operation,
    list_calls,
    get_call,
    get_call_action,
]
