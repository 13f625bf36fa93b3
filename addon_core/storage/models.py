"""The database tables. Every row is scoped by add-on key and workspace, so both apps
can share one database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from addon_core.storage.types import UtcDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Installation(Base):
    """One add-on installed on one workspace; kept as a token-less tombstone after DELETED."""

    __tablename__ = "installations"
    __table_args__ = (UniqueConstraint("addon_key", "workspace_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    #: Clockify's id of this installation (`addonId`); a reinstall may bring a new one.
    addon_id: Mapped[str] = mapped_column(String(64))
    #: ACTIVE, INACTIVE or DELETED
    status: Mapped[str] = mapped_column(String(16))
    #: the installation token, encrypted; NULL once DELETED
    auth_token: Mapped[str | None] = mapped_column(Text)
    #: apiUrl from the payload and the base-URL claims of the installation token
    api_urls: Mapped[dict[str, Any]] = mapped_column(default=dict)
    as_user: Mapped[str | None] = mapped_column(String(64))
    addon_user_id: Mapped[str | None] = mapped_column(String(64))
    owner_user_id: Mapped[str | None] = mapped_column(String(64))
    #: the latest SETTINGS_UPDATED list of {id, name, value}
    settings: Mapped[list[Any]] = mapped_column(default=list)
    #: issue times (`iat`) of the newest INSTALLED/DELETED, STATUS_CHANGED and
    #: SETTINGS_UPDATED applied: a call older than what it would change is stale
    lifecycle_issued_at: Mapped[float | None] = mapped_column(Float)
    status_issued_at: Mapped[float | None] = mapped_column(Float)
    settings_issued_at: Mapped[float | None] = mapped_column(Float)
    installed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebhookRegistration(Base):
    """A webhook Clockify will call for an installation, with the token it will sign with."""

    __tablename__ = "webhook_registrations"
    __table_args__ = (UniqueConstraint("addon_key", "workspace_id", "path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    installation_id: Mapped[int] = mapped_column(
        ForeignKey("installations.id", ondelete="CASCADE"), index=True
    )
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    #: the path relative to baseUrl, as the manifest declares it
    path: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(64))
    #: `manifest`, or `api` for webhooks registered through the workspace webhooks API
    source: Mapped[str] = mapped_column(String(16), default="manifest")
    #: Clockify's id of an API-registered webhook, to delete it at uninstall
    clockify_webhook_id: Mapped[str | None] = mapped_column(String(64))
    #: SHA-256 of the token: deliveries are compared against it in constant time
    token_digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: the token itself, encrypted
    auth_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CoverageGap(Base):
    """An event type the add-on could not register through Clockify's webhooks API, and
    the reason Clockify gave, shown by `GET /api/coverage`."""

    __tablename__ = "coverage_gaps"

    installation_id: Mapped[int] = mapped_column(
        ForeignKey("installations.id", ondelete="CASCADE"), primary_key=True
    )
    event_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Event(Base):
    """One accepted webhook delivery, stored before it is acknowledged."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_scope", "addon_key", "workspace_id", "id"),
        Index("ix_events_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    #: `clockify` (manifest or API-registered webhook) or `custom`
    source: Mapped[str] = mapped_column(String(16))
    #: the custom endpoint that received it (source `custom` only)
    endpoint_id: Mapped[str | None] = mapped_column(String(32))
    #: SHA-256 over workspace, event type and the exact body (Clockify sends no event id)
    dedupe_key: Mapped[str] = mapped_column(String(64))
    #: the body exactly as received
    payload: Mapped[str] = mapped_column(Text)
    #: the request headers minus credentials, as a JSON object
    headers: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    #: stored past the workspace's daily quota of events: it runs no flow
    over_quota: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class EventDayCount(Base):
    """How many events a workspace stored on one UTC day, for its daily quota."""

    __tablename__ = "event_day_counts"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the UTC day, `YYYY-MM-DD`
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    events: Mapped[int] = mapped_column(Integer)


class EventDedupe(Base):
    """The dedupe keys of accepted deliveries, with when each was last accepted.

    A delivery whose key was accepted within the dedupe window is a redelivery.
    """

    __tablename__ = "event_dedupe"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LifecycleAudit(Base):
    """Every lifecycle call that passed verification, and what it did."""

    __tablename__ = "lifecycle_audit"
    __table_args__ = (Index("ix_lifecycle_audit_scope", "addon_key", "workspace_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    addon_id: Mapped[str | None] = mapped_column(String(64))
    lifecycle_type: Mapped[str] = mapped_column(String(32))
    #: applied, stale (older than the state it would change) or ignored
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Job(Base):
    """A unit of background work: claimed under a lease, retried, then dead with its error.

    Jobs sharing an `ordering_key` (workspace and entity) run one at a time, in id order.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_ready", "status", "run_at"),
        Index("ix_jobs_ordering", "ordering_key", "id"),
        Index("ix_jobs_scope", "addon_key", "workspace_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    #: what runs it: `flow.dispatch`, `bootstrap`, ...
    kind: Mapped[str] = mapped_column(String(32))
    ordering_key: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: queued, running, done or dead
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    worker: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Worker(Base):
    """A process that runs jobs, and when it last beat: a silent one's jobs are taken over."""

    __tablename__ = "workers"
    __table_args__ = (Index("ix_workers_addon", "addon_key", "heartbeat_at"),)

    #: the id its job leases record in `jobs.worker`
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    #: host name and pid namespace: where `pid` names a process
    machine: Mapped[str] = mapped_column(String(120))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BudgetSlot(Base):
    """The start times of a workspace's latest Clockify calls, one row per call allowed per
    second: a call may start when the oldest is more than a second old (shared pacing)."""

    __tablename__ = "budget_slots"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Lease(Base):
    """A named lease, so that one process at a time runs a schedule (retention)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CachedEntity(Base):
    """One Clockify entity fetched by bootstrap, as Clockify returned it."""

    __tablename__ = "entity_cache"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the list operation it came from, e.g. `getProjects`
    entity_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class BootstrapProgress(Base):
    """How far bootstrap got through one list operation of one workspace."""

    __tablename__ = "bootstrap_progress"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: the bootstrap run this row belongs to; a re-run starts the row over
    run: Mapped[int] = mapped_column(Integer, default=1)
    #: pending, running, done or failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    next_page: Mapped[int] = mapped_column(Integer, default=1)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    items: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ApiCall(Base):
    """One explorer call: what was asked, and Clockify's (redacted) answer."""

    __tablename__ = "api_calls"
    __table_args__ = (
        Index("ix_api_calls_scope", "addon_key", "workspace_id", "id"),
        Index("ix_api_calls_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    operation_id: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[Any | None] = mapped_column(JSON)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    response: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Flow(Base):
    """A user's flow; `document` is its current version (CONTRACT.md, "Flow document")."""

    __tablename__ = "flows"
    __table_args__ = (Index("ix_flows_scope", "addon_key", "workspace_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the secret outbound http actions are signed with, encrypted
    signing_secret: Mapped[str | None] = mapped_column(Text)
    #: set when the flow was paused after failing too often in a row
    paused_reason: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class FlowVersion(Base):
    """Every saved version of a flow, so an execution can name the one it ran."""

    __tablename__ = "flow_versions"

    flow_id: Mapped[str] = mapped_column(
        ForeignKey("flows.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(default=dict)
    saved_by: Mapped[str | None] = mapped_column(String(64))
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Execution(Base):
    """One run of one flow on one event; (flow, event, run_key) is unique, so a redelivered
    event or a retried job never starts a second run (a replay gets its own run_key)."""

    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("flow_id", "event_id", "run_key"),
        Index("ix_executions_flow", "flow_id", "id"),
        Index("ix_executions_scope", "addon_key", "workspace_id", "id"),
        Index("ix_executions_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    flow_id: Mapped[str] = mapped_column(ForeignKey("flows.id", ondelete="CASCADE"))
    flow_version: Mapped[int] = mapped_column(Integer)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    #: `event` for the first run of an event, `replay-<n>` for each replay
    run_key: Mapped[str] = mapped_column(String(40), default="event")
    #: pending, running, succeeded, failed or skipped
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ExecutionStep(Base):
    """One action of an execution: recorded before it is sent and after it answers."""

    __tablename__ = "execution_steps"

    execution_id: Mapped[int] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    step_id: Mapped[str] = mapped_column(String(64))
    #: sending (in flight), succeeded, failed, skipped or unknown
    status: Mapped[str] = mapped_column(String(16))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: the full response body, for later templates (`actions.<id>.body`); not listed
    result: Mapped[Any | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Endpoint(Base):
    """A custom inbound webhook endpoint (Universal Webhook)."""

    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_scope", "addon_key", "workspace_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    #: where the event type is read: a dotted JSON path in the body, or a header
    event_type_path: Mapped[str | None] = mapped_column(String(200))
    event_type_header: Mapped[str | None] = mapped_column(String(100))
    #: the signing secret (`whsec_...`), encrypted
    secret: Mapped[str] = mapped_column(Text)
    #: the secret before the latest rotation, valid until `previous_secret_expires_at`
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer, default=600)
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class IdempotencyRecord(Base):
    """The claim on an `Idempotency-Key` of an /api/ write, then the answer it got."""

    __tablename__ = "idempotency_keys"

    addon_key: Mapped[str] = mapped_column(String(50), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    #: SHA-256 of the method, path, query and body of the first request
    request_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    #: NULL while the first request runs
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    content_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class AuditEntry(Base):
    """One change of a workspace's configuration: who, when, what, and from which request."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_scope", "addon_key", "workspace_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    addon_key: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    #: the user id from the verified token, or "clockify" / "operator"
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    #: what changed, as `<object>.<verb>`: `flow.created`, `endpoint.rotated`, ...
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(100))
    request_id: Mapped[str | None] = mapped_column(String(100))
    #: the redacted fields that changed: {"before": {...}, "after": {...}}
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
