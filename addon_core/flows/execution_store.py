"""The rows the flow engine reads and writes: events, flows, executions and their steps.

Every write is its own short transaction, committed before anything is sent (a step goes in
as `sending`) and after it answered (its outcome), so a crash leaves a state to resume from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Select, and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core import audit
from addon_core.flows.actions import StepOutcome
from addon_core.flows.dispatch import live_flow
from addon_core.flows.plan import PlannedRequest
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.database import is_sqlite
from addon_core.storage.models import (
    Event,
    Execution,
    ExecutionStep,
    Flow,
    FlowVersion,
    Installation,
)
from addon_core.storage.scope import scoped

FINISHED: Final = ("succeeded", "failed", "skipped")
_ERROR_LIMIT: Final = 2000


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What a step's row says, as far as resuming its execution needs."""

    status: str
    method: str | None
    response_status: int | None
    result: Any
    error: str | None
    #: inserted by this very run just now, so `sending` means "about to send", not "crashed"
    fresh: bool = False


@dataclass(frozen=True, slots=True)
class FlowRow:
    """A flow to consider for an event, with the document of the version to run."""

    flow_id: str
    live: bool
    version: int
    document: Any
    signing_secret: str | None
    #: this run's execution of the flow, unfinished, if one was started
    execution_id: int | None


@dataclass(frozen=True, slots=True)
class NewExecution:
    """Who and what an execution is for."""

    workspace_id: str
    flow_id: str
    flow_version: int
    event_id: int
    run_key: str


class ExecutionStore:
    """Reads and writes the engine's rows through the runtime's sessions."""

    def __init__(self, runtime: AddonRuntime) -> None:
        self.runtime = runtime

    async def flows(
        self, event_id: Any, run_key: str, flow_ids: Sequence[str] | None
    ) -> tuple[Event, Installation, list[FlowRow]] | None:
        """Read an event, its active installation and the flows to run on it, in one query.

        The flows are the live ones without an execution of this run, and those whose
        execution of this run is unfinished (with the document of the version it started
        on, even if the flow was disabled or paused since), oldest flow first. None when
        the event is gone, its workspace is not active, or no flow is left to run.
        """
        query = _flows_query(self.runtime.addon_key, event_id, run_key, flow_ids)
        async with self.runtime.sessions() as session:
            rows = (await session.execute(query)).all()
        if not rows:
            return None
        return rows[0][0], rows[0][1], [_flow_row(tuple(row)[2:]) for row in rows]

    async def create_execution(
        self, new: NewExecution, status: str, first: PlannedRequest | None = None
    ) -> int | None:
        """Insert the execution (with its first step, `sending`); None if it already exists."""
        engine, sessions = self.runtime.engine, self.runtime.sessions
        now = datetime.now(UTC)
        dialect = sqlite if is_sqlite(engine) else postgresql
        insert = (
            dialect.insert(Execution)
            .values(
                addon_key=self.runtime.addon_key,
                workspace_id=new.workspace_id,
                flow_id=new.flow_id,
                flow_version=new.flow_version,
                event_id=new.event_id,
                run_key=new.run_key,
                status=status,
                created_at=now,
                finished_at=now if status in FINISHED else None,
            )
            # Two processes may race to start one run: one insert wins, the other resumes it.
            .on_conflict_do_nothing(index_elements=["flow_id", "event_id", "run_key"])
            .returning(Execution.id)
        )
        async with sessions.begin() as session:
            execution_id: int | None = await session.scalar(insert)
            if execution_id is not None and first is not None:
                session.add(_sending_row(execution_id, 0, first))
        return execution_id

    async def unfinished_execution(self, new: NewExecution) -> int | None:
        """Return the id of the run's execution if it exists and has not finished."""
        async with self.runtime.sessions() as session:
            row = (
                await session.execute(
                    select(Execution.id, Execution.status).where(
                        Execution.flow_id == new.flow_id,
                        Execution.event_id == new.event_id,
                        Execution.run_key == new.run_key,
                    )
                )
            ).first()
        if row is None or row.status in FINISHED:
            return None
        return int(row.id)

    async def steps(self, execution_id: int) -> dict[int, StepRecord]:
        """Read an execution's steps by position."""
        async with self.runtime.sessions() as session:
            rows = await session.scalars(
                select(ExecutionStep).where(ExecutionStep.execution_id == execution_id)
            )
            return {
                row.position: StepRecord(
                    row.status,
                    row.request.get("method") if isinstance(row.request, dict) else None,
                    row.response.get("status") if isinstance(row.response, dict) else None,
                    row.result,
                    row.error,
                )
                for row in rows
            }

    async def start_step(self, execution_id: int, position: int, planned: PlannedRequest) -> None:
        """Commit a step as `sending`, with its masked request, before it is sent."""
        async with self.runtime.sessions.begin() as session:
            session.add(_sending_row(execution_id, position, planned))

    async def forget_step(self, execution_id: int, position: int) -> None:
        """Drop a step that will be planned and sent afresh when the job retries."""
        async with self.runtime.sessions.begin() as session:
            await session.execute(
                delete(ExecutionStep).where(
                    ExecutionStep.execution_id == execution_id, ExecutionStep.position == position
                )
            )

    async def record_step(
        self,
        flow_id: str,
        execution_id: int,
        position: int,
        step_id: str,
        outcome: StepOutcome,
        *,
        exists: bool,
        finish: tuple[str, str | None] | None,
    ) -> bool:
        """Store a step's outcome, ending the execution in the same commit when `finish` says
        how; return True if this ended it."""
        values: dict[str, Any] = {
            "status": outcome.status,
            "response": outcome.response,
            "result": outcome.result,
            "error": clip(outcome.error),
            "duration_ms": outcome.duration_ms,
        }
        async with self.runtime.sessions.begin() as session:
            if exists:
                await session.execute(
                    update(ExecutionStep)
                    .where(
                        ExecutionStep.execution_id == execution_id,
                        ExecutionStep.position == position,
                    )
                    .values(**values)
                )
            else:
                session.add(
                    ExecutionStep(
                        execution_id=execution_id,
                        position=position,
                        step_id=step_id,
                        request={},
                        started_at=datetime.now(UTC),
                        **values,
                    )
                )
            if finish is None:
                return False
            return await self._finish(session, flow_id, execution_id, *finish)

    async def finish(
        self,
        flow_id: str,
        execution_id: int,
        status: str,
        error: str | None,
        *,
        count: bool = True,
    ) -> bool:
        """End an execution; return True if this call ended it (it was not already)."""
        async with self.runtime.sessions.begin() as session:
            return await self._finish(session, flow_id, execution_id, status, error, count=count)

    async def _finish(
        self,
        session: AsyncSession,
        flow_id: str,
        execution_id: int,
        status: str,
        error: str | None,
        *,
        count: bool = True,
    ) -> bool:
        """End the execution once; keep the flow's failure streak, pausing it at the limit."""
        ended = await session.execute(
            update(Execution)
            .where(Execution.id == execution_id, Execution.status.not_in(FINISHED))
            .values(status=status, error=clip(error), finished_at=datetime.now(UTC))
            .execution_options(synchronize_session=False)
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            return False
        if not count:
            return True
        flow = update(Flow).where(Flow.id == flow_id)
        if status == "succeeded":
            await session.execute(
                flow.where(Flow.consecutive_failures != 0).values(consecutive_failures=0)
            )
            return True
        limit = self.runtime.settings.flow_pause_after_failures
        streak = Flow.consecutive_failures + 1
        values: dict[str, Any] = {"consecutive_failures": streak}
        if limit <= 0:
            await session.execute(flow.values(**values))
            return True
        reason = clip(f"paused after {limit} failures in a row; last: {error or status}")
        values["paused_reason"] = case(
            (and_(Flow.paused_reason.is_(None), streak >= limit), reason),
            else_=Flow.paused_reason,
        )
        after = await session.execute(
            flow.values(**values).returning(
                Flow.addon_key, Flow.workspace_id, Flow.consecutive_failures, Flow.paused_reason
            )
        )
        row = after.one_or_none()
        if row is not None and row.consecutive_failures == limit and row.paused_reason == reason:
            # This failure paused it: the add-on changed the flow's configuration.
            audit.add(
                session,
                row.addon_key,
                row.workspace_id,
                audit.ADDON,
                "flow.paused",
                target=flow_id,
                after={"pausedReason": reason},
            )
        return True

    async def keep_signing_secret(self, flow_id: str, encrypted: str) -> str:
        """Store a new encrypted signing secret unless the flow has one; return the stored one."""
        async with self.runtime.sessions.begin() as session:
            await session.execute(
                update(Flow)
                .where(Flow.id == flow_id, Flow.signing_secret.is_(None))
                .values(signing_secret=encrypted)
            )
            # Another process may have stored one first: sign with whichever is stored.
            stored = await session.scalar(select(Flow.signing_secret).where(Flow.id == flow_id))
        return stored or encrypted


def _flows_query(
    addon_key: str, event_id: Any, run_key: str, flow_ids: Sequence[str] | None
) -> Select[Any]:
    """Select the event, its active installation and each flow to consider, one row per flow.

    A flow's row carries whether it is live, the version its run started on (else the
    current one) with that version's document, its signing secret and the run's execution.
    """
    live = live_flow()
    version = func.coalesce(Execution.flow_version, Flow.version)
    query = (
        select(
            Event,
            Installation,
            Flow.id,
            live.label("live"),
            version.label("run_version"),
            Flow.version,
            Flow.document,
            FlowVersion.document,
            Flow.signing_secret,
            Execution.id,
        )
        .join(Installation, and_(*scoped(Installation, Event.addon_key, Event.workspace_id)))
        .join(
            Flow,
            and_(*scoped(Flow, Event.addon_key, Event.workspace_id)),
        )
        .outerjoin(
            Execution,
            and_(
                Execution.flow_id == Flow.id,
                Execution.event_id == Event.id,
                Execution.run_key == run_key,
            ),
        )
        .outerjoin(
            FlowVersion, and_(FlowVersion.flow_id == Flow.id, FlowVersion.version == version)
        )
        .where(
            Event.id == event_id,
            Event.addon_key == addon_key,
            Installation.status == "ACTIVE",
            or_(and_(Execution.id.is_(None), live), Execution.status.not_in(FINISHED)),
        )
        .order_by(Flow.created_at, Flow.id)
    )
    if flow_ids is not None:
        query = query.where(Flow.id.in_(flow_ids))
    return query


def _flow_row(row: tuple[Any, ...]) -> FlowRow:
    flow_id, live, run_version, current, current_doc, version_doc, secret, execution_id = row
    document = version_doc
    if document is None and run_version == current:
        document = current_doc  # a flow saved without its version row
    return FlowRow(flow_id, bool(live), run_version, document, secret, execution_id)


def _sending_row(execution_id: int, position: int, planned: PlannedRequest) -> ExecutionStep:
    return ExecutionStep(
        execution_id=execution_id,
        position=position,
        step_id=planned.step_id,
        status="sending",
        request=planned.masked(),
        started_at=datetime.now(UTC),
    )


def clip(text: str | None) -> str | None:
    """Cut an error to the stored length, secrets masked."""
    return redact_text(text[:_ERROR_LIMIT]) if text else text
