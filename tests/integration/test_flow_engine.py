"""The flow engine end to end: signed webhooks in, Clockify calls out to the sandbox over HTTP.

Each test installs Universal Webhook in a sandbox workspace, stores flows as rows, fires
webhooks and runs the job queue until it is idle, then reads what the sandbox received and
what the executions recorded.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import and_, func, or_, select, update

from addon_core.flows.dispatch import DISPATCH_JOB
from addon_core.flows.engine import signing_secret_context
from addon_core.flows.example import tag_meetings
from addon_core.intake.standard_webhooks import verify
from addon_core.logs import configure_logging
from addon_core.redaction import MASK
from addon_core.runtime import AddonRuntime
from addon_core.sandbox import Sandbox, Sizes
from addon_core.sandbox.gate import RecordedRequest
from addon_core.sandbox.loopback import serving
from addon_core.sandbox.workspace import Workspace
from addon_core.storage.models import (
    AuditEntry,
    Event,
    Execution,
    ExecutionStep,
    Flow,
    FlowVersion,
    Job,
)
from addon_core.tracing import use_tracer_provider
from tests.harness import Receiver, sandbox_settings

ADDON_KEY = "universal-webhook"
SMALL = Sizes(
    projects=4, clients=2, tags=4, user_groups=1, users=3, expense_categories=1, expenses=2,
    invoices=1, time_entries=10, in_progress=1, policies=1, approval_requests=1, webhooks=0,
)  # fmt: skip

# The contract's example, its tags taken from the workspace's setting (given a value at install).
TAG_MEETINGS = tag_meetings(tag_ids="{{ settings.meetingTagIds }}")
RETAG_ONLY: dict[str, Any] = {
    **TAG_MEETINGS,
    "actions": [
        {
            "id": "retag",
            "type": "clockify",
            "operation": "updateTimeEntry",
            "params": {"id": "{{ event.id }}"},
            "body": {"start": "{{ event.timeInterval.start }}", "description": "retagged"},
        }
    ],
}
CREATE_TAG: dict[str, Any] = {
    "name": "Tag per entry",
    "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRY"]},
    "actions": [
        {
            "id": "tag",
            "type": "clockify",
            "operation": "createNewTag",
            "body": {"name": "entry {{ event.id }}"},
        }
    ],
}


@dataclass
class Harness:
    """A running app installed in a sandbox workspace."""

    sandbox: Sandbox
    workspace: Workspace
    app_url: str
    manifest: dict[str, Any]
    runtime: AddonRuntime

    @property
    def workspace_id(self) -> str:
        return self.workspace.workspace_id

    async def add_flow(self, document: dict[str, Any]) -> str:
        """Store a flow and its version 1 as the flows API does."""
        flow_id = uuid.uuid4().hex
        sessions = self.runtime.sessions
        async with sessions.begin() as session:
            session.add(
                Flow(
                    id=flow_id,
                    addon_key=ADDON_KEY,
                    workspace_id=self.workspace_id,
                    name=document["name"],
                    enabled=document.get("enabled", True),
                    version=1,
                    document=document,
                    created_at=datetime.now(UTC),
                )
            )
            await session.flush()
            session.add(FlowVersion(flow_id=flow_id, version=1, document=document))
        return flow_id

    async def update_settings(self, values: dict[str, Any]) -> None:
        """Send SETTINGS_UPDATED as Clockify does."""
        body = {
            "workspaceId": self.workspace_id,
            "addonId": self.workspace.addon_id,
            "settings": [{"id": key, "name": key, "value": value} for key, value in values.items()],
        }
        response = await self.sandbox.lifecycle(
            self.app_url, self.manifest, self.workspace, "SETTINGS_UPDATED", body
        )
        assert response.status_code == 200, response.text

    async def fire(self, event_type: str, payload: dict[str, Any]) -> httpx.Response:
        response = await self.sandbox.fire(self.app_url, self.workspace, event_type, payload)
        assert response.is_success, response.text
        return response

    async def settle(self) -> None:
        """Run jobs until none is running or ready (background workers run too)."""
        sessions = self.runtime.sessions
        for _ in range(500):
            await self.runtime.jobs.run_until_idle()
            now = datetime.now(UTC)
            async with sessions() as session:
                busy = await session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(
                        Job.addon_key == ADDON_KEY,
                        or_(
                            Job.status == "running",
                            and_(Job.status == "queued", Job.run_at <= now),
                        ),
                    )
                )
            if not busy:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("jobs are still running")

    async def executions(self, flow_id: str) -> list[tuple[Execution, list[ExecutionStep]]]:
        sessions = self.runtime.sessions
        async with sessions() as session:
            executions = (
                await session.scalars(
                    select(Execution).where(Execution.flow_id == flow_id).order_by(Execution.id)
                )
            ).all()
            found = []
            for execution in executions:
                steps = (
                    await session.scalars(
                        select(ExecutionStep)
                        .where(ExecutionStep.execution_id == execution.id)
                        .order_by(ExecutionStep.position)
                    )
                ).all()
                found.append((execution, list(steps)))
        return found

    async def flow(self, flow_id: str) -> Flow:
        sessions = self.runtime.sessions
        async with sessions() as session:
            flow = await session.get(Flow, flow_id)
        assert flow is not None
        return flow

    async def event_ids(self) -> list[int]:
        sessions = self.runtime.sessions
        async with sessions() as session:
            return list((await session.scalars(select(Event.id).order_by(Event.id))).all())

    async def dispatch_again(self, event_id: int) -> None:
        """Queue the event's dispatch once more, as a retried or duplicated job would (with the
        intake's ordering key: jobs of one entity run one at a time)."""
        sessions = self.runtime.sessions
        async with sessions() as session:
            event = await session.get(Event, event_id)
        assert event is not None
        entity = json.loads(event.payload).get("id") or f"event-{event_id}"
        await self.runtime.jobs.enqueue(
            DISPATCH_JOB,
            self.workspace_id,
            {"event_id": event_id},
            ordering_key=f"{self.workspace_id}:{entity}",
        )

    def calls(self, method: str, fragment: str) -> list[RecordedRequest]:
        return [r for r in self.sandbox.requests if r.method == method and fragment in r.route]

    def entry(self, *, with_project: bool = True) -> dict[str, Any]:
        """A time entry of the workspace, as its NEW_TIME_ENTRY payload."""
        entries = self.sandbox.store.entities(self.workspace_id, "time_entries")
        chosen = next(e for e in entries if bool(e["projectId"]) == with_project)
        return copy.deepcopy(chosen)

    def tag_ids(self) -> list[str]:
        return [tag["id"] for tag in self.sandbox.store.entities(self.workspace_id, "tags")[:2]]


pytestmark = pytest.mark.sandbox(seed=11, sizes=SMALL)


HarnessFactory = Callable[..., Any]


@pytest.fixture
def running(
    sandbox: Sandbox, make_app: Callable[..., Litestar], tmp_path: Path, reference_dir: Path
) -> HarnessFactory:
    """Start the app with setting overrides, install it and give its tags setting a value."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Harness]:
        settings: dict[str, Any] = {
            **sandbox_settings(sandbox, tmp_path, reference_dir),
            "clockify_retry_attempts": 1,
            "clockify_backoff_seconds": 0,
            "job_backoff_seconds": 0,
            "job_poll_seconds": 0.05,
            **overrides,
        }
        app = make_app(ADDON_KEY, **settings)
        workspace = sandbox.create_workspace(ADDON_KEY)
        async with serving(app) as app_url:
            manifest = await sandbox.fetch_manifest(app_url)
            installed = await sandbox.install(app_url, manifest, workspace)
            assert installed.status_code == 200, installed.text
            harness = Harness(sandbox, workspace, app_url, manifest, app.state.runtime)
            await harness.update_settings({"meetingTagIds": harness.tag_ids()})
            await harness.settle()  # whatever INSTALLED queued (bootstrap)
            sandbox.reset()
            yield harness

    return start


def outbound_count(harness: Harness, outcome: str) -> float:
    """How many outbound http actions the app counted with `outcome`."""
    registry = harness.runtime.metrics.registry
    value = registry.get_sample_value(
        "addon_outbound_requests_total", {"addon": ADDON_KEY, "outcome": outcome}
    )
    return value or 0.0


def metric(text: str, status: str) -> float:
    line = f'addon_flow_executions_total{{addon="{ADDON_KEY}",status="{status}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


# --- end to end ------------------------------------------------------------------------------


async def test_a_webhook_runs_the_contract_flow_against_clockify(
    running: HarnessFactory,
) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        entry = harness.entry()
        entry["description"] = "Weekly meeting"
        await harness.fire("NEW_TIME_ENTRY", entry)
        await harness.settle()

        [get_project] = harness.calls("GET", f"/projects/{entry['projectId']}")
        [put_entry] = harness.calls("PUT", f"/time-entries/{entry['id']}")
        assert (get_project.status, put_entry.status) == (200, 200)
        project = harness.sandbox.store.get(harness.workspace_id, "projects", entry["projectId"])
        assert put_entry.body == {
            "start": entry["timeInterval"]["start"],
            "description": f"Weekly meeting / {project['name']}",
            "tagIds": harness.tag_ids(),
        }
        stored = harness.sandbox.store.get(harness.workspace_id, "time_entries", entry["id"])
        assert stored["tagIds"] == harness.tag_ids()

        [(execution, steps)] = await harness.executions(flow_id)
        assert execution.status == "succeeded"
        assert execution.flow_version == 1
        assert execution.finished_at is not None
        assert [(s.step_id, s.status) for s in steps] == [
            ("project", "succeeded"),
            ("retag", "succeeded"),
        ]
        assert steps[0].request["method"] == "GET"
        assert steps[0].request["operation"] == "getProject"
        assert steps[0].request["url"].endswith(f"/projects/{entry['projectId']}")
        assert steps[1].request["body"] == put_entry.body
        assert steps[1].response is not None
        assert steps[1].response["status"] == 200
        assert json.loads(steps[1].response["body"])["tagIds"] == harness.tag_ids()
        assert steps[0].result["name"] == project["name"]

        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"{harness.app_url}/metrics")).text
        assert metric(metrics, "succeeded") == 1


async def test_events_the_flow_does_not_match_send_nothing(running: HarnessFactory) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        entry = harness.entry()
        entry["description"] = "Coding"
        await harness.fire("NEW_TIME_ENTRY", entry)  # conditions fail
        meeting = {**harness.entry(), "description": "a meeting"}
        await harness.fire("TIME_ENTRY_DELETED", meeting)  # another event type
        await harness.settle()

        assert harness.sandbox.requests == []
        [(execution, steps)] = await harness.executions(flow_id)
        assert (execution.status, steps) == ("skipped", [])


# --- once per event --------------------------------------------------------------------------


async def test_the_same_webhook_three_times_has_one_effect(running: HarnessFactory) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        entry = {**harness.entry(), "description": "meeting"}
        for _ in range(3):
            await harness.fire("NEW_TIME_ENTRY", entry)
        [event_id] = await harness.event_ids()
        await harness.dispatch_again(event_id)  # a second job for the same event
        await harness.settle()

        assert len(harness.calls("PUT", "/time-entries/")) == 1
        assert len(harness.calls("GET", "/projects/")) == 1
        [(execution, _steps)] = await harness.executions(flow_id)
        assert execution.status == "succeeded"


async def crash_before_recording(harness: Harness, flow_id: str) -> None:
    """Put the last step back as a process that died right after sending would leave it."""
    [(execution, steps)] = await harness.executions(flow_id)
    sessions = harness.runtime.sessions
    async with sessions.begin() as session:
        await session.execute(
            update(ExecutionStep)
            .where(
                ExecutionStep.execution_id == execution.id,
                ExecutionStep.position == steps[-1].position,
            )
            .values(status="sending", response=None, result=None, duration_ms=None)
        )
        await session.execute(
            update(Execution)
            .where(Execution.id == execution.id)
            .values(status="running", finished_at=None)
        )


async def test_a_put_in_flight_at_a_crash_is_sent_again_once(running: HarnessFactory) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        await harness.fire("NEW_TIME_ENTRY", {**harness.entry(), "description": "meeting"})
        await harness.settle()
        await crash_before_recording(harness, flow_id)
        [event_id] = await harness.event_ids()
        await harness.dispatch_again(event_id)
        await harness.dispatch_again(event_id)
        await harness.settle()

        assert len(harness.calls("GET", "/projects/")) == 1  # recorded: never sent again
        assert len(harness.calls("PUT", "/time-entries/")) == 2  # the one in flight, once more
        [(execution, steps)] = await harness.executions(flow_id)
        assert execution.status == "succeeded"
        assert [s.status for s in steps] == ["succeeded", "succeeded"]


async def test_a_post_in_flight_at_a_crash_is_unknown_and_not_sent_again(
    running: HarnessFactory,
) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(CREATE_TAG)
        await harness.fire("NEW_TIME_ENTRY", harness.entry())
        await harness.settle()
        assert len(harness.calls("POST", "/tags")) == 1
        await crash_before_recording(harness, flow_id)
        [event_id] = await harness.event_ids()
        await harness.dispatch_again(event_id)
        await harness.settle()

        assert len(harness.calls("POST", "/tags")) == 1
        [(execution, [step])] = await harness.executions(flow_id)
        assert step.status == "unknown"
        assert step.error is not None
        assert "may or may not have been applied" in step.error
        assert execution.status == "failed"


async def test_a_retried_job_does_not_resend_a_succeeded_step(running: HarnessFactory) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        harness.sandbox.inject(503, times=1, path_contains="/time-entries/", method="PUT")
        await harness.fire("NEW_TIME_ENTRY", {**harness.entry(), "description": "meeting"})
        await harness.settle()

        assert len(harness.calls("GET", "/projects/")) == 1
        assert [r.status for r in harness.calls("PUT", "/time-entries/")] == [503, 200]
        [(execution, steps)] = await harness.executions(flow_id)
        assert execution.status == "succeeded"
        assert [s.status for s in steps] == ["succeeded", "succeeded"]


async def test_a_step_still_unavailable_at_the_last_attempt_fails_the_execution(
    running: HarnessFactory,
) -> None:
    async with running(job_max_attempts=2) as harness:
        flow_id = await harness.add_flow(RETAG_ONLY)
        harness.sandbox.inject(503, times=None, path_contains="/time-entries/", method="PUT")
        await harness.fire("NEW_TIME_ENTRY", {**harness.entry(), "description": "meeting"})
        await harness.settle()

        assert len(harness.calls("PUT", "/time-entries/")) == 2
        [(execution, [step])] = await harness.executions(flow_id)
        assert (execution.status, step.status) == ("failed", "failed")
        assert step.error is not None
        assert "no attempts left" in step.error


# --- failures --------------------------------------------------------------------------------


async def test_a_clockify_4xx_fails_the_step_with_clockifys_message(
    running: HarnessFactory,
) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        harness.sandbox.inject(400, times=1, path_contains="/time-entries/", method="PUT")
        await harness.fire("NEW_TIME_ENTRY", {**harness.entry(), "description": "meeting"})
        await harness.settle()

        assert len(harness.calls("PUT", "/time-entries/")) == 1  # not retried
        [(execution, steps)] = await harness.executions(flow_id)
        assert [s.status for s in steps] == ["succeeded", "failed"]
        assert steps[1].response == {"status": 400, "body": "Injected fault: 400"}
        assert steps[1].error is not None
        assert "Injected fault: 400" in steps[1].error
        assert execution.status == "failed"
        assert execution.error is not None
        assert "retag" in execution.error


async def test_a_missing_template_path_fails_the_step_before_sending(
    running: HarnessFactory,
) -> None:
    async with running() as harness:
        flow_id = await harness.add_flow(TAG_MEETINGS)
        entry = {**harness.entry(), "description": "meeting"}
        del entry["projectId"]
        await harness.fire("NEW_TIME_ENTRY", entry)
        await harness.settle()

        assert harness.sandbox.requests == []
        [(execution, [step])] = await harness.executions(flow_id)
        assert step.status == "failed"
        assert step.error is not None
        assert "actions[0].params.projectId" in step.error
        assert execution.status == "failed"


async def test_a_template_rendering_past_the_size_limit_fails_the_step_before_sending(
    running: HarnessFactory,
) -> None:
    # 1,000 placeholders of a 100 KB description would render 100 MB.
    document = copy.deepcopy(TAG_MEETINGS)
    document["actions"][0]["params"]["projectId"] = "{{ event.description }}" * 1000
    async with running() as harness:
        flow_id = await harness.add_flow(document)
        entry = {**harness.entry(), "description": "meeting " + "x" * 100_000}
        await harness.fire("NEW_TIME_ENTRY", entry)
        await harness.settle()

        assert harness.sandbox.requests == []
        [(execution, [step])] = await harness.executions(flow_id)
        assert step.status == "failed"
        assert step.error is not None
        assert "actions[0].params.projectId" in step.error
        assert "the limit of one value" in step.error
        assert execution.status == "failed"


async def test_a_flow_pauses_after_failures_in_a_row(running: HarnessFactory) -> None:
    async with running(flow_pause_after_failures=2) as harness:
        flow_id = await harness.add_flow(RETAG_ONLY)
        entries = list(harness.sandbox.store.entities(harness.workspace_id, "time_entries"))

        async def fire(index: int, *, fail: bool) -> None:
            if fail:
                harness.sandbox.inject(400, times=1, path_contains="/time-entries/", method="PUT")
            await harness.fire("NEW_TIME_ENTRY", {**entries[index], "description": "meeting"})
            await harness.settle()

        await fire(0, fail=True)
        await fire(1, fail=False)  # a success resets the streak
        assert (await harness.flow(flow_id)).consecutive_failures == 0
        await fire(2, fail=True)
        await fire(3, fail=True)
        flow = await harness.flow(flow_id)
        assert flow.consecutive_failures == 2
        assert flow.paused_reason is not None
        assert flow.paused_reason.startswith("paused after 2 failures in a row; last: ")
        # The pause is a change of configuration by the add-on itself: it is audited once.
        sessions = harness.runtime.sessions
        async with sessions() as session:
            audited = (
                await session.scalars(select(AuditEntry).where(AuditEntry.kind.like("flow.%")))
            ).all()
        assert [(e.kind, e.actor, e.target) for e in audited] == [("flow.paused", "addon", flow_id)]
        assert audited[0].changes["after"] == {"pausedReason": flow.paused_reason}

        await fire(4, fail=False)
        for event_id in await harness.event_ids():
            await harness.dispatch_again(event_id)
        await harness.settle()
        statuses = [execution.status for execution, _ in await harness.executions(flow_id)]
        assert statuses == ["failed", "succeeded", "failed", "failed"]
        assert len(harness.calls("PUT", "/time-entries/")) == 4


# --- http actions ----------------------------------------------------------------------------


def notify(url: str) -> dict[str, Any]:
    return {
        "name": "Notify",
        "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRY"]},
        "actions": [
            {
                "id": "notify",
                "type": "http",
                "method": "POST",
                "url": url + "/hook?entry={{ event.id }}",
                "headers": {"X-Workspace": "{{ workspace.id }}"},
                "body": {"entry": "{{ event.id }}", "text": "{{ event.description }}"},
            }
        ],
    }


async def test_an_http_action_sends_a_signed_request(running: HarnessFactory) -> None:
    receiver = Receiver()
    async with serving(receiver, lifespan="off") as receiver_url:
        port = httpx.URL(receiver_url).port
        async with running(outbound_allow_private_networks=True) as harness:
            await harness.update_settings(
                {"meetingTagIds": [], "outboundAllowedHosts": f"127.0.0.1:{port}"}
            )
            flow_id = await harness.add_flow(notify(receiver_url))
            entry = harness.entry()
            await harness.fire("NEW_TIME_ENTRY", entry)
            await harness.settle()

            [(target, headers, body)] = receiver.calls
            assert target == f"/hook?entry={entry['id']}"
            assert headers["x-workspace"] == harness.workspace_id
            assert json.loads(body) == {"entry": entry["id"], "text": entry["description"]}
            flow = await harness.flow(flow_id)
            assert flow.signing_secret is not None
            secret = harness.runtime.key_ring.decrypt(
                flow.signing_secret,
                signing_secret_context(ADDON_KEY, harness.workspace_id, flow_id),
            )
            assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(headers)
            verify(headers, body, [secret])
            [(execution, [step])] = await harness.executions(flow_id)
            assert (execution.status, step.status) == ("succeeded", "succeeded")
            assert step.response == {"status": 200, "body": '{"received": true}'}
            assert step.request["headers"] == {"X-Workspace": harness.workspace_id}
            assert outbound_count(harness, "2xx") == 1


async def test_an_http_action_sends_its_secrets_and_its_records_mask_them(
    running: HarnessFactory,
) -> None:
    receiver = Receiver()
    async with serving(receiver, lifespan="off") as receiver_url:
        port = httpx.URL(receiver_url).port
        async with running(outbound_allow_private_networks=True) as harness:
            await harness.update_settings(
                {"meetingTagIds": [], "outboundAllowedHosts": f"127.0.0.1:{port}"}
            )
            document = notify(receiver_url)
            action = document["actions"][0]
            action["url"] += "&token=tok-123"
            action["headers"]["X-Custom-Auth"] = "custom-789"
            action["body"]["password"] = "pw-000"
            flow_id = await harness.add_flow(document)
            entry = harness.entry()
            await harness.fire("NEW_TIME_ENTRY", entry)
            await harness.settle()

            [(target, headers, body)] = receiver.calls
            assert target.endswith("&token=tok-123")
            assert headers["x-custom-auth"] == "custom-789"
            assert json.loads(body)["password"] == "pw-000"
            [(execution, [step])] = await harness.executions(flow_id)
            assert step.status == "succeeded"
            recorded = json.dumps([step.request, step.response, step.error, execution.error])
            for secret in ("tok-123", "custom-789", "pw-000"):
                assert secret not in recorded
            assert step.request["headers"]["X-Custom-Auth"] == MASK
            assert step.request["body"]["password"] == MASK


async def test_an_http_action_to_a_private_address_is_refused(running: HarnessFactory) -> None:
    receiver = Receiver()
    async with serving(receiver, lifespan="off") as receiver_url:
        port = httpx.URL(receiver_url).port
        async with running() as harness:
            await harness.update_settings(
                {"meetingTagIds": [], "outboundAllowedHosts": f"127.0.0.1:{port}"}
            )
            flow_id = await harness.add_flow(notify(f"https://127.0.0.1:{port}"))
            await harness.fire("NEW_TIME_ENTRY", harness.entry())
            await harness.settle()

            assert receiver.calls == []
            [(execution, [step])] = await harness.executions(flow_id)
            assert (execution.status, step.status) == ("failed", "failed")
            assert step.error is not None
            assert "loopback" in step.error
            assert outbound_count(harness, "refused") == 1
            assert outbound_count(harness, "2xx") == 0


# --- traceable logs --------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Route every log line, as the JSON lines operators read, into a buffer (DEBUG and up)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging(logging.DEBUG, "json", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


async def test_one_webhook_is_followed_by_request_id_to_its_clockify_call(
    running: HarnessFactory, json_log: io.StringIO
) -> None:
    async with running() as harness:
        await harness.add_flow(RETAG_ONLY)
        entry = harness.entry()
        entry["description"] = "Weekly meeting"
        json_log.seek(0)
        json_log.truncate()
        response = await harness.fire("NEW_TIME_ENTRY", entry)
        await harness.settle()
        [put_entry] = harness.calls("PUT", f"/time-entries/{entry['id']}")
        assert put_entry.status == 200

    request_id = response.headers["x-request-id"]
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    ours = [line for line in lines if line["logger"].startswith("addon_core.")]
    path = [line for line in ours if line.get("request_id") == request_id]
    assert [line["logger"] for line in path if "webhook" in line["message"]] == [
        "addon_core.intake.routes"
    ]
    assert any(line["message"].startswith("jobs: flow.dispatch") for line in path)
    assert any(
        line["logger"] == "addon_core.clockify.client"
        and line["message"].startswith("Clockify PUT")
        for line in path
    ), ours
    for line in path:
        assert (line["workspace_id"], line["addon"]) == (harness.workspace_id, ADDON_KEY), line
    # Nothing else happened in the app meanwhile: every line it wrote belongs to the webhook.
    assert [line for line in ours if line.get("request_id") != request_id] == []


# --- tracing (the optional OpenTelemetry spans) ---------------------------------------------


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Record spans in memory for the test, then turn tracing off again."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        use_tracer_provider(None)
        provider.shutdown()


async def test_a_webhook_trace_continues_through_its_job_flow_step_and_clockify_call(
    running: HarnessFactory, spans: InMemorySpanExporter
) -> None:
    async with running() as harness:
        await harness.add_flow(RETAG_ONLY)
        entry = harness.entry()
        entry["description"] = "Weekly meeting"
        spans.clear()
        await harness.fire("NEW_TIME_ENTRY", entry)
        await harness.settle()

    by_name = {span.name: span for span in spans.get_finished_spans()}
    intake = by_name["webhook intake"]
    job = by_name["job flow.dispatch"]
    step = by_name["flow step retag"]
    call = by_name["clockify updateTimeEntry"]
    assert intake.attributes is not None
    assert intake.attributes["event_type"] == "NEW_TIME_ENTRY"
    assert {s.context.trace_id for s in (intake, job, step, call)} == {intake.context.trace_id}
    assert job.parent is not None
    assert job.parent.span_id == intake.context.span_id
    assert step.parent is not None
    assert step.parent.span_id == job.context.span_id
    assert call.parent is not None
    assert call.parent.span_id == step.context.span_id
