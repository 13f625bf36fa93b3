"""Retention: old events, executions, explorer calls and finished jobs deleted in batches.

Each batch is its own short transaction, so no lock is held for long; the scheduler
(`retention_schedule`) runs it every interval under a named lease, so one replica at a
time does the work.
The operator's windows are the default and the ceiling; a workspace's
`eventRetentionDays` setting (1..3650) shortens its own events, executions and calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, cast, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from addon_core.metrics import Metrics
from addon_core.settings import AddonSettings
from addon_core.storage.database import for_writing, translate_errors
from addon_core.storage.models import (
    ApiCall,
    AuditEntry,
    Event,
    EventDayCount,
    EventDedupe,
    Execution,
    ExecutionStep,
    IdempotencyRecord,
    Installation,
    Job,
)

#: Done jobs carry nothing their executions do not, and they are the busiest table of
#: the job queue: they are kept one day (for debugging), unless jobs are kept forever.
DONE_JOBS_DAYS = 1
#: Dedupe keys are kept at least this long, whatever the (shorter) dedupe window.
DEDUPE_MIN_KEEP = timedelta(days=1)
#: How long the answer to an Idempotency-Key is kept for retries.
IDEMPOTENCY_KEPT_FOR = timedelta(hours=24)
#: Job statuses after which a job no longer reads its event.
FINISHED_JOB_STATUSES = ("done", "dead")
#: Ids bound in one DELETE, under the drivers' limit on parameters.
_IDS_PER_STATEMENT = 10_000
#: The workspace setting (both manifests) that shortens its own retention, and its bounds.
WORKSPACE_SETTING = "eventRetentionDays"
WORKSPACE_DAYS_MIN, WORKSPACE_DAYS_MAX = 1, 3650
#: Workspaces named in one per-workspace pass.
_WORKSPACES_PER_PASS = 1000
#: The keys of `run_retention`'s answer, and the `table` label of its metric.
COUNTED = (
    "events",
    "event_dedupe",
    "executions",
    "execution_steps",
    "api_calls",
    "dead_jobs",
    "done_jobs",
    "idempotency_keys",
    "event_day_counts",
    "audit_log",
)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each table keeps its rows, in days; 0 keeps them forever."""

    events_days: int = 30
    executions_days: int = 30
    calls_days: int = 30
    dead_jobs_days: int = 30
    done_jobs_days: int = DONE_JOBS_DAYS
    audit_days: int = 365
    #: the intake's dedupe window: `event_dedupe` rows older than it (and a day) go
    dedupe_window_seconds: int = 600
    batch_size: int = 1000

    @classmethod
    def from_settings(cls, settings: AddonSettings) -> RetentionPolicy:
        """Read the policy from an app's settings."""
        return cls(
            events_days=settings.retention_events_days,
            executions_days=settings.retention_executions_days,
            calls_days=settings.retention_calls_days,
            audit_days=settings.retention_audit_days,
            dead_jobs_days=settings.retention_dead_jobs_days,
            # RETENTION_DEAD_JOBS_DAYS=0 keeps the jobs table whole, done jobs included.
            done_jobs_days=min(DONE_JOBS_DAYS, settings.retention_dead_jobs_days),
            dedupe_window_seconds=settings.dedupe_window_seconds,
            batch_size=settings.retention_batch_size,
        )


async def run_retention(
    engine: AsyncEngine,
    addon_key: str,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    metrics: Metrics | None = None,
) -> dict[str, int]:
    """Delete this add-on's rows older than the policy allows; return the count per table."""
    if policy.batch_size < 1:
        raise ValueError(f"the retention batch size must be >= 1 (got {policy.batch_size})")
    at = datetime.now(UTC) if now is None else now.astimezone(UTC)
    run = _Run(engine, addon_key, policy, at, metrics, await _workspace_days(engine, addon_key))
    for step in (
        run.events,
        run.dedupe_keys,
        run.executions,
        run.api_calls,
        run.jobs,
        run.idempotency_keys,
        run.event_day_counts,
        run.audit,
    ):
        await step()
    return run.deleted


@dataclass
class _Run:
    """One retention run: each table family deleted in batches, the rows counted."""

    engine: AsyncEngine
    addon_key: str
    policy: RetentionPolicy
    at: datetime
    metrics: Metrics | None
    overrides: dict[int, list[str]]
    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))

    def count(self, table: str, rows: int) -> None:
        self.deleted[table] += rows
        if self.metrics is not None and rows:
            self.metrics.retention_deletions.labels(self.addon_key, table).inc(rows)

    async def _batches(self, ids: Select[Any], columns: list[Any], table: str, **kw: Any) -> None:
        await _delete_batches(
            self.engine, self.policy.batch_size, ids, columns, table, self.count, **kw
        )

    async def events(self) -> None:
        for days, workspaces in _passes(self.policy.events_days, self.overrides):
            ids = select(Event.id).where(
                Event.addon_key == self.addon_key,
                Event.received_at < self.at - timedelta(days=days),
                Event.id.not_in(_events_still_needed(self.addon_key)),
                *_in_workspaces(Event.workspace_id, workspaces),
            )
            await self._batches(ids, [Event.id], "events")

    async def dedupe_keys(self) -> None:
        keep = max(timedelta(seconds=self.policy.dedupe_window_seconds), DEDUPE_MIN_KEEP)
        keys = select(EventDedupe.dedupe_key).where(
            EventDedupe.addon_key == self.addon_key, EventDedupe.seen_at < self.at - keep
        )
        # The key is (addon_key, dedupe_key): pin the add-on key beside the ids.
        scope = EventDedupe.addon_key == self.addon_key
        await self._batches(keys, [EventDedupe.dedupe_key], "event_dedupe", scope=scope)

    async def executions(self) -> None:
        for days, workspaces in _passes(self.policy.executions_days, self.overrides):
            # An execution row is what stops a retried dispatch job from running the flow
            # a second time: it stays while a job may still run for its event.
            ids = select(Execution.id).where(
                Execution.addon_key == self.addon_key,
                Execution.created_at < self.at - timedelta(days=days),
                Execution.event_id.is_(None)
                | Execution.event_id.not_in(_events_still_needed(self.addon_key)),
                *_in_workspaces(Execution.workspace_id, workspaces),
            )
            # Steps go first, explicitly: counted, and not left to ON DELETE CASCADE.
            columns = [ExecutionStep.execution_id, Execution.id]
            await self._batches(ids, columns, "executions", detail_table="execution_steps")

    async def api_calls(self) -> None:
        for days, workspaces in _passes(self.policy.calls_days, self.overrides):
            ids = select(ApiCall.id).where(
                ApiCall.addon_key == self.addon_key,
                ApiCall.at < self.at - timedelta(days=days),
                *_in_workspaces(ApiCall.workspace_id, workspaces),
            )
            await self._batches(ids, [ApiCall.id], "api_calls")

    async def jobs(self) -> None:
        policy = self.policy
        for status, days in (("dead", policy.dead_jobs_days), ("done", policy.done_jobs_days)):
            if not days:
                continue
            ids = select(Job.id).where(
                Job.addon_key == self.addon_key,
                Job.status == status,
                Job.updated_at < self.at - timedelta(days=days),
            )
            await self._batches(ids, [Job.id], f"{status}_jobs")

    async def idempotency_keys(self) -> None:
        # Idempotency keys answer retries for a day, whatever the other windows say.
        await self._delete_now(
            "idempotency_keys",
            delete(IdempotencyRecord).where(
                IdempotencyRecord.addon_key == self.addon_key,
                IdempotencyRecord.created_at < self.at - IDEMPOTENCY_KEPT_FOR,
            ),
        )

    async def event_day_counts(self) -> None:
        # The daily event counts are read for today only; two days are kept for a late
        # batch and for an operator looking at yesterday.
        await self._delete_now(
            "event_day_counts",
            delete(EventDayCount).where(
                EventDayCount.addon_key == self.addon_key,
                EventDayCount.day < (self.at - timedelta(days=2)).strftime("%Y-%m-%d"),
            ),
        )

    async def audit(self) -> None:
        if self.policy.audit_days:
            cutoff = self.at - timedelta(days=self.policy.audit_days)
            ids = select(AuditEntry.id).where(
                AuditEntry.addon_key == self.addon_key, AuditEntry.at < cutoff
            )
            await self._batches(ids, [AuditEntry.id], "audit_log")

    async def _delete_now(self, table: str, statement: Any) -> None:
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        self.count(table, result.rowcount or 0)


def workspace_days(settings: Any) -> int | None:
    """The days a workspace's `eventRetentionDays` asks for (at most 3650), or None.

    None (the operator's window applies) when the setting is absent, not a number, or
    below 1: the manifest once said 0 kept events forever, and a short window must never
    come from a value that meant "keep".
    """
    for setting in settings if isinstance(settings, list) else []:
        if not isinstance(setting, dict) or setting.get("id") != WORKSPACE_SETTING:
            continue
        value: Any = setting.get("value")
        if isinstance(value, bool) or value is None:
            return None
        try:
            days = int(float(value))  # a NUMBER setting may arrive as text
        except (TypeError, ValueError, OverflowError):
            return None
        return min(days, WORKSPACE_DAYS_MAX) if days >= WORKSPACE_DAYS_MIN else None
    return None


async def _workspace_days(engine: AsyncEngine, addon_key: str) -> dict[int, list[str]]:
    """Group the installed workspaces that set their own retention by the days they set."""
    query = select(Installation.workspace_id, Installation.settings).where(
        Installation.addon_key == addon_key, Installation.status != "DELETED"
    )
    async with translate_errors("reading retention settings"), engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    grouped: dict[int, list[str]] = {}
    for workspace_id, settings in rows:
        days = workspace_days(settings)
        if days is not None:
            grouped.setdefault(days, []).append(workspace_id)
    return grouped


def _passes(
    operator_days: int, overrides: dict[int, list[str]]
) -> list[tuple[int, list[str] | None]]:
    """The (days, workspaces) deletions of one table: every workspace at the operator's
    window (0: none), then the workspaces that asked for less, in groups."""
    passes: list[tuple[int, list[str] | None]] = []
    if operator_days:
        passes.append((operator_days, None))
    for days, workspaces in sorted(overrides.items()):
        if operator_days and days >= operator_days:
            continue  # the operator's window is the ceiling
        for start in range(0, len(workspaces), _WORKSPACES_PER_PASS):
            passes.append((days, workspaces[start : start + _WORKSPACES_PER_PASS]))
    return passes


def _in_workspaces(
    column: InstrumentedAttribute[str], workspaces: list[str] | None
) -> list[ColumnElement[bool]]:
    return [] if workspaces is None else [column.in_(workspaces)]


def _events_still_needed(addon_key: str) -> Select[Any]:
    """Select the event ids an unfinished job may still read (`payload.event_id`)."""
    # Any kind, not only `flow.dispatch`: a replay or a later job kind reading an event
    # keeps it too. Compared as text cast to BIGINT, which both dialects extract alike.
    event_id = Job.payload["event_id"].as_string()
    return select(cast(event_id, BigInteger)).where(
        Job.addon_key == addon_key,
        Job.status.not_in(FINISHED_JOB_STATUSES),
        # NOT IN over a set holding NULL matches nothing: leave jobs without one out.
        event_id.is_not(None),
    )


async def _delete_batches(
    engine: AsyncEngine,
    batch_size: int,
    ids: Select[Any],
    targets: list[Any],
    table: str,
    count: Callable[[str, int], None],
    *,
    scope: ColumnElement[bool] | None = None,
    detail_table: str | None = None,
) -> None:
    """Delete the rows `ids` selects, `batch_size` per transaction, until none is left.

    `targets` are the columns holding those ids, child tables first; only the last
    one's deletions count as `table` (a child's count as `detail_table`).
    """
    while True:
        async with translate_errors(f"deleting old {table}"), for_writing(engine).begin() as conn:
            batch = list((await conn.execute(ids.limit(batch_size))).scalars())
            if not batch:
                return
            rows = 0
            for column in targets:
                rows = 0
                # Both drivers bind at most 32767 parameters; the batch size may be larger.
                for start in range(0, len(batch), _IDS_PER_STATEMENT):
                    chunk = batch[start : start + _IDS_PER_STATEMENT]
                    statement = delete(column.table).where(column.in_(chunk))
                    if scope is not None:
                        statement = statement.where(scope)
                    rows += (await conn.execute(statement)).rowcount
                if detail_table is not None and column is not targets[-1]:
                    count(detail_table, rows)
        count(table, rows)
        # A short batch was the last; an empty delete means another process got there
        # first, and the next interval finishes the work rather than this loop spin.
        if len(batch) < batch_size or not rows:
            return
