"""Run flows: the `flow.dispatch` job turns a stored event into executions and their steps.

Effects happen once per (event, flow, run): the execution row is unique on them, each step
is committed as `sending` before it is sent and as its outcome after, and a re-run skips
what was recorded. Only a step left `sending` by a process that died may go out twice, and
only if idempotent (GET, PUT, DELETE); a POST or PATCH is then recorded as `unknown`.

A flow matches an event when its trigger names the event's source (`clockify`, or `custom`
with the endpoint the event came in on) and lists the event type, or `*` for any type.
Job payload: `{"event_id": int, "run_key": "event" | "replay-<n>", "flow_ids": [...]}`
(the last two optional).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from addon_core.clockify.client import InstallationContext
from addon_core.errors import AddonError, ServiceUnavailableError
from addon_core.flows.actions import (
    ALLOWED_HOSTS_SETTING,
    StepOutcome,
    parse_allowed_hosts,
    send_clockify,
    send_http,
)
from addon_core.flows.conditions import evaluate
from addon_core.flows.dispatch import ANY_EVENT, DISPATCH_JOB
from addon_core.flows.document import ClockifyAction, FlowDocument, HttpAction
from addon_core.flows.execution_store import ExecutionStore, FlowRow, NewExecution, StepRecord
from addon_core.flows.plan import (
    PlannedRequest,
    installation_settings,
    plan_action,
    template_limits,
)
from addon_core.flows.templates import make_context
from addon_core.http_semantics import IDEMPOTENT_METHODS
from addon_core.installations.context import installation_context
from addon_core.intake.standard_webhooks import generate_secret
from addon_core.jobs.queue import ClaimedJob, RetryJobError
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Event, Installation
from addon_core.storage.vault import flow_purpose, token_context
from addon_core.tracing import span

log = logging.getLogger(__name__)

_DOCUMENT_CACHE_SIZE: Final = 512
_IN_FLIGHT_AT_CRASH = (
    "{method} was in flight when the process sending it stopped; it may or may not have "
    "been applied, so it was not sent again: check the target and replay the event if needed"
)


def setup_flows(runtime: AddonRuntime) -> None:
    """Handle `flow.dispatch` jobs."""
    runtime.add_job_handler(DISPATCH_JOB, FlowEngine(runtime).dispatch)


def signing_secret_context(addon_key: str, workspace_id: str, flow_id: str) -> str:
    """The associated data a flow's signing secret is encrypted under."""
    return token_context(addon_key, workspace_id, flow_purpose(flow_id))


@dataclass
class _Run:
    """What one job knows of its event and installation, shared by every flow it runs."""

    job: ClaimedJob
    event: Event
    payload: Any
    run_key: str
    installation: Installation
    settings: dict[str, Any]
    #: the Clockify call context (token decrypted), built for the first clockify step
    clockify: InstallationContext | None = field(default=None, repr=False)

    @property
    def workspace_id(self) -> str:
        return self.event.workspace_id

    def context(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return make_context(
            event=self.payload,
            event_type=self.event.event_type,
            workspace_id=self.workspace_id,
            settings=self.settings,
            actions=results,
        )

    def execution_of(self, flow: _Flow) -> NewExecution:
        return NewExecution(
            self.workspace_id, flow.row.flow_id, flow.row.version, self.event.id, self.run_key
        )


@dataclass
class _Flow:
    row: FlowRow
    document: FlowDocument
    signing_secret: str | None

    @property
    def id(self) -> str:
        return self.row.flow_id


class FlowEngine:
    """Runs the flows of each dispatched event; parsed documents are cached by version."""

    def __init__(self, runtime: AddonRuntime) -> None:
        self.runtime = runtime
        self.store = ExecutionStore(runtime)
        self.limits = template_limits(runtime.settings)
        self._documents: OrderedDict[tuple[str, int], FlowDocument] = OrderedDict()

    async def dispatch(self, job: ClaimedJob) -> None:
        """Run every matching flow of the job's event, in flow creation order."""
        event_id = job.payload.get("event_id")
        flow_ids = job.payload.get("flow_ids")
        run_key = str(job.payload.get("run_key") or "event")
        found = await self.store.flows(
            event_id, run_key, [str(i) for i in flow_ids] if isinstance(flow_ids, list) else None
        )
        if found is None:
            # Gone (retention, purge), not installed or inactive, or no live flow left.
            log.debug("flow dispatch: nothing to run for event %s", event_id)
            return
        event, installation, rows = found
        try:
            payload = json.loads(event.payload)
        except (ValueError, RecursionError):  # RecursionError: stored before depth was bounded
            payload = event.payload
        settings = installation_settings(self.runtime.manifest, installation)
        run = _Run(job, event, payload, run_key, installation, settings)
        waiting: list[str] = []
        crashed: Exception | None = None
        for flow in self._flows(run, rows):
            try:
                if await self._run_flow(run, flow):
                    waiting.append(flow.id)
            except Exception as exc:
                # One flow's trouble (the database, a bug) does not keep the others from running.
                log.exception("flow %s on event %d failed", flow.id, run.event.id)
                crashed = crashed or exc
        if crashed is not None:
            raise crashed
        if waiting:
            raise RetryJobError(f"flows {', '.join(waiting)} wait to retry a step")

    def _flows(self, run: _Run, rows: list[FlowRow]) -> list[_Flow]:
        flows = []
        for row in rows:
            document = self._document(row)
            # A started execution matched when it started (same version): it resumes.
            if document is not None and (row.execution_id or _matches(document, run.event)):
                flows.append(_Flow(row, document, row.signing_secret))
        return flows

    def _document(self, row: FlowRow) -> FlowDocument | None:
        key = (row.flow_id, row.version)
        cached = self._documents.get(key)
        if cached is not None:
            self._documents.move_to_end(key)
            return cached
        if row.document is None:
            log.error("flow %s has no document for version %d; not run", *key)
            return None
        try:
            document = FlowDocument.model_validate(row.document)
        except ValidationError as exc:
            log.error("flow %s version %d is not a valid flow (%d problems); not run", *key,
                      exc.error_count())  # fmt: skip
            return None
        self._documents[key] = document
        if len(self._documents) > _DOCUMENT_CACHE_SIZE:
            self._documents.popitem(last=False)
        return document

    # --- one flow ----------------------------------------------------------------------------

    async def _run_flow(self, run: _Run, flow: _Flow) -> bool:
        """Run or resume one flow's execution; return True when a step waits for a retry."""
        execution_id = flow.row.execution_id
        if execution_id is not None:
            if not flow.row.live:
                reason = "the flow was disabled or paused before this execution finished"
                await self._finish(flow, execution_id, "failed", reason, count=False)
                return False
            return await self._run_steps(
                run, flow, execution_id, await self.store.steps(execution_id)
            )
        new = run.execution_of(flow)
        context = run.context({})
        if not evaluate(flow.document.conditions, context):
            if await self.store.create_execution(new, "skipped") is not None:
                self._count("skipped")
            return False
        # The first step is planned now so that it is committed with the execution.
        actions = flow.document.actions
        first = self._plan(run, actions[0], 0, context) if actions else None
        planned = first if isinstance(first, PlannedRequest) else None
        execution_id = await self.store.create_execution(new, "running", planned)
        if execution_id is None:
            # Another job started this run first and may be sending right now: let it finish,
            # and look again on a retry (resuming then, if it died).
            if await self.store.unfinished_execution(new) is None:
                return False
            log.warning("flow %s on event %d runs in another job; retrying", flow.id, new.event_id)
            return True
        steps = {}
        if planned is not None:
            steps[0] = StepRecord("sending", planned.method, None, None, None, fresh=True)
        return await self._run_steps(run, flow, execution_id, steps, planned)

    async def _run_steps(
        self,
        run: _Run,
        flow: _Flow,
        execution_id: int,
        steps: dict[int, StepRecord],
        first: PlannedRequest | None = None,
    ) -> bool:
        actions = flow.document.actions
        results: dict[str, dict[str, Any]] = {}
        for position, action in enumerate(actions):
            step = steps.get(position)
            if step is not None and step.status == "succeeded":
                results[action.id] = {"status": step.response_status, "body": step.result}
                continue
            if step is not None and step.status != "sending":
                error = step.error or f"step {action.id} ended {step.status}"
                await self._finish(flow, execution_id, "failed", error)
                return False
            if step is not None and not step.fresh and step.method not in IDEMPOTENT_METHODS:
                unknown = StepOutcome(
                    "unknown", error=_IN_FLIGHT_AT_CRASH.format(method=step.method)
                )
                await self._record(flow, execution_id, position, action.id, unknown, last=False)
                return False
            planned: PlannedRequest | str
            if step is not None and step.fresh and first is not None:
                planned = first  # planned a moment ago and committed with the execution
            else:
                planned = self._plan(run, action, position, run.context(results))
            if not isinstance(planned, PlannedRequest):
                failed = StepOutcome("failed", error=planned)
                await self._record(
                    flow, execution_id, position, action.id, failed, exists=step is not None
                )
                return False
            if step is None:
                await self.store.start_step(execution_id, position, planned)
            outcome = await self._send(run, flow, planned)
            if outcome.status == "retry":
                if not run.job.last_attempt:
                    await self.store.forget_step(execution_id, position)
                    return True
                outcome = StepOutcome(
                    "failed",
                    response=outcome.response,
                    error=f"{outcome.error} (no attempts left)",
                    duration_ms=outcome.duration_ms,
                )
            last = position == len(actions) - 1
            await self._record(flow, execution_id, position, action.id, outcome, last=last)
            if outcome.status != "succeeded" or last:
                return False
            status = outcome.response["status"] if outcome.response else None
            results[action.id] = {"status": status, "body": outcome.result}
        # No actions, or the last one's result was recorded by an earlier run.
        await self._finish(flow, execution_id, "succeeded", None)
        return False

    def _plan(
        self,
        run: _Run,
        action: ClockifyAction | HttpAction,
        position: int,
        context: dict[str, Any],
    ) -> PlannedRequest | str:
        """Plan an action, or say why it cannot be sent."""
        if action.type == "http" and "http" not in self.runtime.flow_action_types:
            return f"actions[{position}]: http actions are not available in this add-on"
        try:
            return plan_action(
                action,
                context,
                catalogue=self.runtime.catalogue,
                workspace_id=run.workspace_id,
                base_urls=run.installation.api_urls,
                position=position,
                limits=self.limits,
            )
        except ServiceUnavailableError:
            raise  # the OpenAPI document is missing: not the flow's fault; the job retries
        except AddonError as exc:
            return exc.detail

    async def _send(self, run: _Run, flow: _Flow, planned: PlannedRequest) -> StepOutcome:
        attributes = {"flow.id": flow.id, "step.id": planned.step_id, "step.type": planned.type}
        with span(f"flow step {planned.step_id}", attributes=attributes):
            return await self._send_step(run, flow, planned)

    async def _send_step(self, run: _Run, flow: _Flow, planned: PlannedRequest) -> StepOutcome:
        if planned.type == "http":
            secret = await self._signing_secret(run, flow)
            hosts = parse_allowed_hosts(run.settings.get(ALLOWED_HOSTS_SETTING))
            return await send_http(
                self.runtime,
                planned,
                secret=secret,
                allowed_hosts=hosts,
                workspace_id=run.workspace_id,
            )
        if run.clockify is None:
            run.clockify = installation_context(self.runtime, run.installation)
        return await send_clockify(self.runtime, run.clockify, planned)

    async def _signing_secret(self, run: _Run, flow: _Flow) -> str:
        """The flow's outbound signing secret; made and stored now if the flow has none."""
        key_ring = self.runtime.key_ring
        context = signing_secret_context(self.runtime.addon_key, run.workspace_id, flow.id)
        if not flow.signing_secret:
            encrypted = key_ring.encrypt(generate_secret(), context)
            flow.signing_secret = await self.store.keep_signing_secret(flow.id, encrypted)
        return key_ring.decrypt(flow.signing_secret, context)

    async def _record(
        self,
        flow: _Flow,
        execution_id: int,
        position: int,
        step_id: str,
        outcome: StepOutcome,
        *,
        last: bool = False,
        exists: bool = True,
    ) -> None:
        """Store a step's outcome; end the execution with it when it failed or was the last."""
        finish: tuple[str, str | None] | None = None
        if outcome.status != "succeeded":
            finish = ("failed", f"step {step_id}: {outcome.error or outcome.status}")
        elif last:
            finish = ("succeeded", None)
        ended = await self.store.record_step(
            flow.id, execution_id, position, step_id, outcome, exists=exists, finish=finish
        )
        if ended and finish is not None:
            self._count(finish[0])

    async def _finish(
        self, flow: _Flow, execution_id: int, status: str, error: str | None, *, count: bool = True
    ) -> None:
        if await self.store.finish(flow.id, execution_id, status, error, count=count):
            self._count(status)

    def _count(self, status: str) -> None:
        self.runtime.metrics.flow_executions.labels(self.runtime.addon_key, status).inc()


def _matches(document: FlowDocument, event: Event) -> bool:
    trigger = document.trigger
    if trigger.source != event.source:
        return False
    if trigger.source == "custom" and trigger.endpoint != event.endpoint_id:
        return False
    return event.event_type in trigger.events or ANY_EVENT in trigger.events
