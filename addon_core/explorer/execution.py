"""An explorer execute: one operation checked, run for the caller's workspace, and recorded.

It runs with the installation token of the caller's workspace; a 4xx from Clockify is the
answer being explored, so it comes back as 200 with Clockify's status and message, while a
Clockify outage (503) and our own refusals stay errors. Every execute of a known operation
in a workspace where the add-on is installed is kept in `api_calls`, whatever its outcome.
An operation that writes runs only while the workspace's `explorerAllowWrites` setting
(API Studio's manifest) is on; a manifest without that setting allows writes.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, post
from litestar.params import FromPath

from addon_core.clockify.catalogue import Operation, build_url
from addon_core.clockify.client import ClockifyAPIError
from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import AddonError, BadRequestError, ForbiddenError, UnprocessableError
from addon_core.flows.plan import installation_settings
from addon_core.installations.context import installation_context, live_installation
from addon_core.redaction import redact, redact_text
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import ApiCall, Installation
from addon_core.web.body import check_json_depth, decode_json, read_api_body
from addon_core.web.caller import Caller, CallerDep

#: The most of a response body returned and stored (JSON bytes); beyond it `truncated` is set.
MAX_BODY_BYTES = 256 * 1024
#: The workspace setting that lets the explorer run operations that write.
ALLOW_WRITES_SETTING = "explorerAllowWrites"

_REQUEST_KEYS = ("params", "body")
_REQUEST_SHAPE = '{"params": {...}, "body": ...}'


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
