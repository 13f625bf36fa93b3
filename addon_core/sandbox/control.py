"""The sandbox's control endpoints under `/_sandbox/`, for people trying an app from a shell.

Faults, the request log, webhook deliveries, SETTINGS_UPDATED and fresh user tokens. No auth:
the sandbox listens on loopback only, and these requests are never recorded.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency

from addon_core.errors import BadRequestError
from addon_core.sandbox.routes import read_json
from addon_core.sandbox.server import Sandbox
from addon_core.sandbox.shell import SHELL_HANDLERS


def provide_sandbox(state: State) -> Sandbox:
    sandbox: Sandbox = state.sandbox
    return sandbox


SandboxDependency = NamedDependency[Sandbox]


@post("/_sandbox/faults", status_code=201)
async def add_fault(request: Request[Any, Any, Any], sandbox: SandboxDependency) -> dict[str, Any]:
    """Inject a fault: `{"status", "times", "pathContains", "method", "retryAfter",
    "latency", "drop"}`."""
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        raise BadRequestError("send a JSON object describing the fault")
    try:
        fault = sandbox.inject(
            body.get("status", 503),
            times=body.get("times", 1),
            path_contains=str(body.get("pathContains", "")),
            method=body.get("method"),
            retry_after=body.get("retryAfter"),
            latency=float(body.get("latency", 0.0)),
            drop=bool(body.get("drop", False)),
        )
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"not a fault: {exc}") from None
    return fault.describe()


@get("/_sandbox/faults")
async def list_faults(sandbox: SandboxDependency) -> list[dict[str, Any]]:
    return [fault.describe() for fault in sandbox.gate.faults]


@delete("/_sandbox/faults")
async def clear_faults(sandbox: SandboxDependency) -> None:
    sandbox.clear_faults()


@get("/_sandbox/requests")
async def list_requests(sandbox: SandboxDependency) -> dict[str, Any]:
    return {
        "throttled": sandbox.throttled,
        "requests": [
            {"method": r.method, "path": r.path, "status": r.status, "at": r.at, "body": r.body}
            for r in sandbox.requests
        ],
    }


@post("/_sandbox/reset", status_code=200)
async def reset(sandbox: SandboxDependency) -> dict[str, str]:
    sandbox.reset()
    return {"status": "reset"}


@post("/_sandbox/fire", status_code=200)
async def fire(
    request: Request[Any, Any, Any], sandbox: SandboxDependency
) -> Response[dict[str, Any] | None]:
    """Deliver `{"eventType": ..., "payload": {...}?}` to the installed app.

    Answers with the app's own status (the highest of several deliveries), its body, and
    each delivery when the app registered more than one webhook for the event.
    """
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("eventType"), str):
        raise BadRequestError('send {"eventType": "NEW_PROJECT"} and optionally "payload"')
    responses = await sandbox.fire_at_target(body["eventType"], body.get("payload"))
    deliveries = [{"status": r.status_code, "body": r.text[:2000]} for r in responses]
    status = max(r.status_code for r in responses)
    return _relay(
        status, {"status": status, "body": deliveries[0]["body"], "deliveries": deliveries}
    )


@post("/_sandbox/settings", status_code=200)
async def update_settings(
    request: Request[Any, Any, Any], sandbox: SandboxDependency
) -> Response[dict[str, Any] | None]:
    """Send SETTINGS_UPDATED: `{"settingId": value, ...}` over the current settings.

    Answers with the app's own status and body.
    """
    body = await read_json(request)
    if not isinstance(body, dict) or not body:
        raise BadRequestError('send the settings to change, such as {"explorerAllowWrites": true}')
    response = await sandbox.update_settings(body)
    return _relay(
        response.status_code, {"status": response.status_code, "body": response.text[:2000]}
    )


def _relay(status: int, content: dict[str, Any]) -> Response[dict[str, Any] | None]:
    # A 204 or 304 carries no body.
    return Response(None if status in (204, 304) else content, status_code=status)


@post("/_sandbox/user-token", status_code=200)
async def user_token(request: Request[Any, Any, Any], sandbox: SandboxDependency) -> dict[str, str]:
    """Mint a fresh 30-minute user token: `{"role": "OWNER", "theme": "DEFAULT"}` by default."""
    _, workspace = sandbox.installed
    body = await read_json(request) or {}
    if not isinstance(body, dict):
        body = {}
    role = str(body.get("role", "OWNER"))
    theme = str(body.get("theme", "DEFAULT"))
    try:
        expires_in = float(body.get("expiresIn", 1800))
    except (TypeError, ValueError):
        raise BadRequestError("expiresIn must be a number of seconds") from None
    if not 1 <= expires_in <= 1800:
        raise BadRequestError("expiresIn must be between 1 and 1800 seconds")
    return {"token": workspace.user_token(role, theme=theme, expires_in=expires_in)}


HANDLERS = [
    add_fault,
    list_faults,
    clear_faults,
    list_requests,
    reset,
    fire,
    update_settings,
    user_token,
    *SHELL_HANDLERS,
]
