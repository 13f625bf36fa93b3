"""The shapes the `/api/` handlers take and answer, as pydantic models for the OpenAPI document.

The handlers read and render plain JSON themselves (so a bad body gets every problem with its
field); these models only describe it, for `addon_core.web.api_docs`. A field with a default may be
absent from an answer; `X | None` fields are always present and may be null. The flow family
(flows, executions, dry runs, portable flows) is in `flow_shapes`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

Instant = str  # an ISO 8601 date-time with its offset, as the API renders every time


class Shape(BaseModel):
    """A JSON object the API answers; keys beyond those listed may be added later."""


class ErrorBody(Shape):
    """Every refusal: the status again, what was wrong and how to fix it; details in `extra`."""

    status_code: int = Field(examples=[422])
    detail: str = Field(examples=["invalid flow: trigger.events[0]: unknown Clockify event type"])
    extra: Any = Field(
        default=None,
        description="More detail when there is some: for validation errors "
        '`{"errors": [{"field": ..., "message": ...}]}`.',
    )


def page(item: type[BaseModel]) -> type[BaseModel]:
    """A list page: its items, newest first, and the cursor of the next page (or null)."""
    return create_model(
        f"{item.__name__}Page",
        __base__=Shape,
        __doc__=f"A page of {item.__name__} items; pass `next` as `cursor` for the following one.",
        items=(list[item], ...),  # type: ignore[valid-type]
        next=(str | None, Field(description="the cursor of the next page; null on the last")),
    )


# --- explorer ----------------------------------------------------------------------------------


class OperationSummary(Shape):
    """One operation of Clockify's OpenAPI document."""

    operationId: str
    method: str
    path: str
    summary: str | None
    tag: str | None
    serverKind: str
    writes: bool
    scope: str | None
    paginated: bool
    deprecated: bool


class OperationDetail(OperationSummary):
    """An operation with its parameters, JSON body schema and pagination."""

    parameters: list[dict[str, Any]]
    body: dict[str, Any] | None
    pagination: dict[str, Any] | None


class ExecuteRequest(BaseModel):
    """What to send: path and query parameters by name, and the JSON body (if any)."""

    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict)
    body: Any = None


class ExecuteResult(Shape):
    """Clockify's answer (4xx included): status, latency, redacted body, the stored call."""

    status: int
    latencyMs: float
    body: Any
    truncated: bool
    attempts: int
    callId: int


class Call(Shape):
    """One explorer call kept in the history."""

    id: int
    operationId: str
    method: str
    url: str
    status: int | None
    latencyMs: float | None
    error: str | None
    userId: str | None
    at: Instant


class CallDetail(Call):
    """A call with what was sent and Clockify's (redacted) answer."""

    params: Any
    body: Any
    response: Any


class CallAction(Shape):
    """A tried call as a flow action, ready to paste into a flow's `actions`."""

    id: str
    type: Literal["clockify"]
    operation: str
    params: dict[str, Any]
    body: Any = None


# --- events and jobs ---------------------------------------------------------------------------


class Event(Shape):
    """A received event; its payload redacted."""

    id: int
    eventType: str
    source: str
    endpointId: str | None
    receivedAt: Instant
    payload: Any
    #: why no flow ran on it (stored past the workspace's daily quota), else null
    flowsSkipped: str | None


class ReplayRequest(BaseModel):
    """Which flows to run again; no body (or `{}`) runs every flow the event triggers."""

    model_config = ConfigDict(extra="forbid")
    flowIds: list[str] | None = Field(default=None, min_length=1)


class Replay(Shape):
    """A replay enqueued: the run key its executions get and the job that runs them."""

    eventId: int
    runKey: str
    jobId: int
    flowIds: list[str] | None = None


class ListProgress(Shape):
    """How far the bootstrap got with one list."""

    operation: str
    status: str
    pages: int
    items: int
    errors: int
    lastError: str | None
    updatedAt: Instant


class Bootstrap(Shape):
    """The latest bootstrap run of the workspace, list by list."""

    items: list[ListProgress]
    next: None
    run: int


class Job(Shape):
    """A background job; secrets in its payload and error masked."""

    id: int
    kind: str
    status: str
    attempts: int
    lastError: str | None
    createdAt: Instant
    updatedAt: Instant
    payload: Any


# --- Universal Webhook -------------------------------------------------------------------------


class EndpointRequest(BaseModel):
    """A custom inbound webhook endpoint; at most one of the event type's sources."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    eventTypePath: str | None = Field(default=None, description="a dotted JSON path: data.kind")
    eventTypeHeader: str | None = Field(default=None, description="a header naming the type")
    rateLimitPerMinute: int | None = Field(default=None, ge=1)


class Endpoint(Shape):
    """A custom inbound webhook endpoint; `secret` only from create and rotate-secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "p0bWq1vS8x3kYd2mRt7uZa4c",
                    "name": "Billing system",
                    "url": "https://addons.example.com/uw/webhooks/custom/p0bWq1vS8x3kYd2mRt7uZa4c",
                    "eventTypePath": "type",
                    "eventTypeHeader": None,
                    "rateLimitPerMinute": 600,
                    "previousSecretExpiresAt": None,
                    "createdBy": "5a0ab5acb07987125438b60f",
                    "createdAt": "2024-05-01T09:00:00+00:00",
                }
            ]
        }
    )

    id: str
    name: str
    url: str
    eventTypePath: str | None
    eventTypeHeader: str | None
    rateLimitPerMinute: int
    previousSecretExpiresAt: Instant | None
    createdBy: str | None
    createdAt: Instant
    secret: str | None = None


class CoverageItem(Shape):
    """How one Clockify event type reaches the workspace: manifest, api or none (and why)."""

    eventType: str
    path: str
    delivery: Literal["manifest", "api", "none"]
    reason: str | None = None


class Coverage(Shape):
    """Every Clockify event type, with counts by delivery."""

    items: list[CoverageItem]
    next: None
    summary: dict[str, int]


# --- the audit trail ----------------------------------------------------------------------------


class AuditEntry(Shape):
    """One change of configuration: who (user id and role, or clockify / operator), what, when."""

    id: int
    at: Instant
    actor: str
    actorRole: str | None
    kind: str = Field(examples=["flow.version"])
    target: str | None
    requestId: str | None
    changes: dict[str, Any]


# --- what the pages read ------------------------------------------------------------------------


class Overview(Shape):
    """One read for the Overview page: installation, bootstrap, queue, events, flow health."""

    installation: dict[str, Any]
    bootstrap: Bootstrap
    jobs: dict[str, Any]
    events: dict[str, Any]
    flows: dict[str, Any]
    role: str
    canWrite: bool
    deadJobs: list[Job]


class EventType(Shape):
    eventType: str
    declared: bool


class EventSample(Shape):
    """The newest received event of a type (redacted), or null with the reason."""

    eventType: str
    event: Event | None
    detail: str | None


class TestDelivery(Shape):
    """A signed delivery sent through an endpoint's own intake, and what it answered."""

    status: int
    payload: dict[str, Any]
    answer: Any
