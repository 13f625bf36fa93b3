"""The dispatch rule: which stored event becomes a `flow.dispatch` job, and in which order.

Intake enqueues the job in the transaction that stores the event (in SQL, below the ORM),
replays enqueue it through the ORM, and the engine reads the live flows when it runs: all
three follow this module, so the rule is written once. It is pure (names, SQL fragments,
a SQLAlchemy clause); nothing here touches a database.

- The job kind is `flow.dispatch`; its payload names the event (and, from intake, the
  request id and trace context the event came with).
- Jobs of one workspace and entity (the payload's `id`, else the event itself) share an
  ordering key, so they run one at a time, in the order the events were stored.
- A flow is live when it is enabled and not paused. An event gets a job only when its
  workspace has a live flow and it is within the workspace's daily quota of stored
  events (`addon_core.quotas`): an event past that quota is stored, marked, and runs
  no flow.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, and_

from addon_core.storage.models import Flow

DISPATCH_JOB: Final = "flow.dispatch"
#: A trigger event name that matches every event type of its source.
ANY_EVENT: Final = "*"

Dialect = Literal["sqlite", "postgresql"]

#: Why an event past its workspace's daily quota ran no flow (shown with the event).
OVER_QUOTA_REASON: Final = (
    "stored past this workspace's daily quota of events (quota events_per_day), so no "
    "flow ran on it; the count starts again at 00:00 UTC, and an admin may replay it"
)


def ordering_key(workspace_id: str, payload: Any, event_id: int) -> str:
    """The ordering key of an event's dispatch job: its workspace and entity id."""
    entity = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(entity, bool) or not isinstance(entity, str | int | float):
        entity = f"event-{event_id}"
    return f"{workspace_id}:{entity}"


def live_flow() -> ColumnElement[bool]:
    """The ORM clause of a live flow."""
    return and_(Flow.enabled.is_(True), Flow.paused_reason.is_(None))


#: The same rule in SQL, over the events aliased `e` and flows aliased `f`.
LIVE_FLOW_SQL: Final = "f.enabled AND f.paused_reason IS NULL"
_DISPATCHED = (
    "NOT e.over_quota AND EXISTS (SELECT 1 FROM flows AS f WHERE f.addon_key = e.addon_key "
    f"AND f.workspace_id = e.workspace_id AND {LIVE_FLOW_SQL})"
)
_JOB_INSERT = (
    "INSERT INTO jobs (addon_key, workspace_id, kind, ordering_key, payload, status, "
    "attempts, max_attempts, run_at, created_at, updated_at) "
)


def enqueue_sql(dialect: Dialect, *, source: str, max_attempts: str, now: str) -> str:
    """`INSERT ... SELECT` of a dispatch job for every dispatched event in `source`.

    `source` is a FROM item aliased `e` with the events' columns; `max_attempts` and
    `now` are the dialect's parameter markers for those values.
    """
    if dialect == "sqlite":
        entity = "json_extract(e.payload, '$.id')"
        header = "json_extract(e.headers, '$.\"{}\"')"
        payload = "json_object('event_id', e.id, 'request_id', {}, 'traceparent', {})"
    else:
        entity = "e.payload::json ->> 'id'"
        header = "e.headers::json ->> '{}'"
        payload = "json_build_object('event_id', e.id, 'request_id', {}, 'traceparent', {})"
    return (
        _JOB_INSERT + f"SELECT e.addon_key, e.workspace_id, '{DISPATCH_JOB}', "
        f"e.workspace_id || ':' || COALESCE({entity}, 'event-' || e.id), "
        + payload.format(header.format("x-request-id"), header.format("traceparent"))
        + f", 'queued', 0, {max_attempts}, {now}, {now}, {now} "
        f"FROM {source} WHERE {_DISPATCHED}"
    )
