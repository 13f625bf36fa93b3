"""Send one planned flow step, to Clockify or (Universal Webhook) to any allowed host.

Each runner answers a `StepOutcome` and never raises for what the endpoint did: the engine
records it. `retry` means nothing was applied for sure (or sending again is harmless) and
the job should try later; `unknown` means a POST or PATCH may or may not have been applied.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final, Literal

from addon_core.clockify.client import (
    ClockifyAPIError,
    ClockifyUnavailableError,
    InstallationContext,
)
from addon_core.errors import AddonError
from addon_core.flows.outbound import OutboundError, OutboundResult
from addon_core.flows.outbound_target import OutboundRefusedError
from addon_core.flows.plan import PlannedRequest
from addon_core.quotas import RateQuotaExceededError
from addon_core.redaction import redact, redact_text, redact_url
from addon_core.runtime import AddonRuntime

#: The response excerpt kept on a step (CONTRACT: "response (status, body excerpt)").
EXCERPT_CHARS: Final = 2048
#: The most of a response body kept for later templates (`actions.<id>.body`).
RESULT_LIMIT_BYTES: Final = 256 * 1024
#: The setting admins list outbound hosts in; `none` (its default) turns http actions off.
ALLOWED_HOSTS_SETTING: Final = "outboundAllowedHosts"

StepStatus = Literal["succeeded", "failed", "unknown", "retry"]


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """What became of one sent step."""

    status: StepStatus
    #: `{"status": HTTP status, "body": excerpt}` when an answer came
    response: dict[str, Any] | None = None
    #: the answer's body, for later templates (redacted, capped)
    result: Any = None
    error: str | None = None
    duration_ms: float | None = None


def parse_allowed_hosts(value: Any) -> list[str]:
    """Read the `outboundAllowedHosts` setting: comma-separated entries, `none` for none."""
    if isinstance(value, list):
        entries = [str(item) for item in value]
    elif isinstance(value, str):
        entries = value.replace("\n", ",").split(",")
    else:
        return []
    hosts = [entry.strip().lower() for entry in entries]
    return [host for host in hosts if host and host != "none"]


async def send_clockify(
    runtime: AddonRuntime, context: InstallationContext, planned: PlannedRequest
) -> StepOutcome:
    """Call Clockify for a planned `clockify` step (paced on the flow lane)."""
    assert planned.operation is not None
    started = time.perf_counter()
    try:
        response = await runtime.clockify.call(
            context,
            planned.method,
            planned.url,
            operation=planned.operation,
            lane="flow",
            json=planned.body,
        )
    except ClockifyAPIError as exc:
        return StepOutcome(
            "failed",
            response={"status": exc.status, "body": excerpt(exc.message)},
            error=exc.detail,
            duration_ms=_since(started),
        )
    except ClockifyUnavailableError as exc:
        return _unavailable(planned, exc.detail, exc.maybe_delivered, started)
    except AddonError as exc:  # refused before sending: a host outside the allowlist
        return StepOutcome("failed", error=redact_text(exc.detail), duration_ms=_since(started))
    return StepOutcome(
        "succeeded",
        response={"status": response.status, "body": excerpt(response.body)},
        result=kept_result(response.body),
        duration_ms=response.elapsed * 1000,
    )


async def send_http(
    runtime: AddonRuntime,
    planned: PlannedRequest,
    *,
    secret: str,
    allowed_hosts: list[str],
    workspace_id: str,
) -> StepOutcome:
    """Send a planned `http` step, signed with the flow's Standard Webhooks secret.

    Past the workspace's outbound quota the step is not sent and is tried again later.
    """
    started = time.perf_counter()
    count = runtime.metrics.outbound_requests
    try:
        runtime.quotas.charge(workspace_id, "outbound_per_minute")
    except RateQuotaExceededError as exc:
        return StepOutcome("retry", error=exc.detail, duration_ms=_since(started))
    try:
        result = await runtime.outbound.send(
            method=planned.method,
            url=planned.url,
            headers=planned.headers,
            body=planned.encoded_body(),
            secret=secret,
            allowed_hosts=allowed_hosts,
        )
    except OutboundRefusedError as exc:
        count.labels(runtime.addon_key, "refused").inc()
        return StepOutcome("failed", error=exc.detail, duration_ms=_since(started))
    except OutboundError as exc:
        outcome = "timeout" if exc.reason == "timeout" else "unreachable"
        count.labels(runtime.addon_key, outcome).inc()
        return _unavailable(planned, exc.detail, exc.maybe_delivered, started)
    count.labels(runtime.addon_key, result.status_class).inc()
    return _answered(planned, result)


def _answered(planned: PlannedRequest, result: OutboundResult) -> StepOutcome:
    response = {"status": result.status, "body": result.body_excerpt}
    duration = result.elapsed * 1000
    if result.ok:
        return StepOutcome(
            "succeeded", response=response, result=_parse(result.body_excerpt), duration_ms=duration
        )
    error = f"{planned.method} {redact_url(planned.url)} answered {result.status}"
    # A 429 or 5xx of an idempotent request is worth another try; a POST got its answer.
    status: StepStatus = "retry" if result.retryable and planned.idempotent else "failed"
    return StepOutcome(status, response=response, error=error, duration_ms=duration)


def _unavailable(
    planned: PlannedRequest, detail: str, maybe_delivered: bool, started: float
) -> StepOutcome:
    if planned.idempotent or not maybe_delivered:
        return StepOutcome("retry", error=detail, duration_ms=_since(started))
    return StepOutcome(
        "unknown",
        error=f"{detail}; it may or may not have been applied, so it was not sent again: "
        "check the target and replay the event if needed",
        duration_ms=_since(started),
    )


def excerpt(body: Any) -> str:
    """Return the start of a response body as text (at most 2 KiB), secrets masked."""
    if body is None:
        return ""
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    cut = text[:EXCERPT_CHARS]
    return redact_text(cut) + ("…" if len(text) > EXCERPT_CHARS else "")


def kept_result(body: Any) -> Any:
    """Return the body as kept for later templates: secrets masked, or a note if too big."""
    size = len(json.dumps(body, ensure_ascii=False).encode())
    if size > RESULT_LIMIT_BYTES:
        return f"[response body of {size} bytes not kept; the limit is {RESULT_LIMIT_BYTES}]"
    return redact(body)


def _parse(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
