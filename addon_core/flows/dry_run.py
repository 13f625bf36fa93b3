"""The dry run of a flow on an event the user supplies: nothing that writes is ever sent.

Conditions are judged rule by rule and every action is rendered and checked as the
engine would. A clockify GET is sent (read only, on the interactive lane) so that later
templates see its answer as in a real run; a clockify write and every http action are
never sent, and a later template that reads their answer is reported as not available
in a dry run. Nothing is stored: no execution, no call record.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

from addon_core.clockify.client import (
    ClockifyAPIError,
    ClockifyUnavailableError,
    InstallationContext,
)
from addon_core.errors import AddonError
from addon_core.flows.actions import excerpt, kept_result
from addon_core.flows.conditions import explain
from addon_core.flows.dispatch import ANY_EVENT
from addon_core.flows.document import ClockifyAction, FlowDocument, HttpAction
from addon_core.flows.plan import (
    PlannedRequest,
    installation_settings,
    plan_action,
    template_limits,
)
from addon_core.flows.templates import TemplateError, TemplateSizeError, make_context
from addon_core.installations.context import installation_context
from addon_core.redaction import redact, redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Installation

NOT_SENT_WRITE: Final = "not sent: a dry run never sends a request that writes"
NOT_SENT_HTTP: Final = "not sent: a dry run never sends http actions"
_ACTION_REFERENCE = re.compile(r"actions\.([A-Za-z_][A-Za-z0-9_-]*)")


def trigger_matches(document: FlowDocument, event_type: str) -> bool:
    """Tell whether the flow's trigger lists the event type (or `*`)."""
    events = document.trigger.events
    return event_type in events or ANY_EVENT in events


async def dry_run(
    runtime: AddonRuntime,
    document: FlowDocument,
    installation: Installation,
    event_type: str,
    event: Any,
) -> dict[str, Any]:
    """Judge the conditions and plan every action for an event; send only clockify reads.

    Answers `{"matched", "triggerMatched", "conditionsMatched", "mode", "conditions",
    "steps"}`, each step `{"id", "type", "request", "sent"}` plus `response`, `error` or
    `note` as they apply. Every action is rendered, even when the event would not match.
    """
    workspace_id = installation.workspace_id
    settings = installation_settings(runtime.manifest, installation)
    explanation = explain(
        document.conditions,
        make_context(
            event=event, event_type=event_type, workspace_id=workspace_id, settings=settings
        ),
    )
    triggered = trigger_matches(document, event_type)
    rehearsal = _Rehearsal(runtime, installation, event_type, event, settings)
    steps = [
        await rehearsal.step(position, action) for position, action in enumerate(document.actions)
    ]
    answer = {
        "matched": triggered and explanation.outcome,
        "triggerMatched": triggered,
        "conditionsMatched": explanation.outcome,
        "mode": explanation.mode,
        "conditions": [rule.as_dict() for rule in explanation.rules],
        "steps": steps,
    }
    # The event and the answers of reads come back to the user: no secret among them.
    redacted: dict[str, Any] = redact(answer)
    return redacted


class _Rehearsal:
    """One dry run's state: the answers of the reads sent and why others are absent."""

    def __init__(
        self,
        runtime: AddonRuntime,
        installation: Installation,
        event_type: str,
        event: Any,
        settings: dict[str, Any],
    ) -> None:
        self.runtime = runtime
        self.installation = installation
        self.event_type = event_type
        self.event = event
        self.settings = settings
        self.results: dict[str, dict[str, Any]] = {}
        #: action id -> why its answer is not in the context
        self.absent: dict[str, str] = {}
        self._clockify: InstallationContext | None = None

    async def step(self, position: int, action: ClockifyAction | HttpAction) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": action.id, "type": action.type, "request": None}
        shown["sent"] = False
        if action.type not in self.runtime.flow_action_types:
            shown["error"] = f"actions[{position}]: {action.type} actions are not available here"
            self.absent[action.id] = "it is not available here"
            return shown
        context = make_context(
            event=self.event,
            event_type=self.event_type,
            workspace_id=self.installation.workspace_id,
            settings=self.settings,
            actions=self.results,
        )
        try:
            planned = plan_action(
                action,
                context,
                catalogue=self.runtime.catalogue,
                workspace_id=self.installation.workspace_id,
                base_urls=self.installation.api_urls,
                position=position,
                limits=template_limits(self.runtime.settings),
            )
        except TemplateSizeError:
            raise  # a 422 for the whole dry run: the event makes a request past the limit
        except TemplateError as exc:
            shown["error"] = self._template_problem(exc)
            self.absent[action.id] = "it could not be rendered"
            return shown
        except AddonError as exc:
            shown["error"] = redact_text(exc.detail)
            self.absent[action.id] = "it could not be rendered"
            return shown
        shown["request"] = planned.masked()
        if planned.type == "http":
            shown["note"] = NOT_SENT_HTTP
            self.absent[action.id] = "http actions are not sent in a dry run"
        elif planned.method != "GET":
            shown["note"] = NOT_SENT_WRITE
            self.absent[action.id] = f"it is a {planned.method}, which a dry run does not send"
        else:
            await self._read(planned, shown)
        return shown

    def _template_problem(self, exc: TemplateError) -> str:
        """Say why a placeholder failed; one reading an unsent action's answer says so."""
        match = _ACTION_REFERENCE.match(exc.placeholder or "")
        if match and match[1] in self.absent:
            return (
                f"{exc.field}: {{{{ {exc.placeholder} }}}} is not available in a dry run: "
                f"action {match[1]} has no answer because {self.absent[match[1]]}"
            )
        return exc.detail

    async def _read(self, planned: PlannedRequest, shown: dict[str, Any]) -> None:
        """Send a clockify GET and keep its answer for later templates."""
        assert planned.operation is not None
        started = time.perf_counter()
        try:
            if self._clockify is None:
                self._clockify = installation_context(self.runtime, self.installation)
            response = await self.runtime.clockify.call(
                self._clockify,
                planned.method,
                planned.url,
                operation=planned.operation,
                lane="interactive",
            )
        except ClockifyAPIError as exc:
            shown["sent"] = True
            shown["response"] = {"status": exc.status, "body": excerpt(exc.message)}
            shown["error"] = redact_text(exc.detail)
            self.absent[planned.step_id] = f"Clockify answered it {exc.status}"
        except ClockifyUnavailableError as exc:
            shown["sent"] = True
            shown["error"] = redact_text(exc.detail)
            self.absent[planned.step_id] = "Clockify did not answer it"
        except AddonError as exc:  # refused before sending (a host outside the allowlist)
            shown["error"] = redact_text(exc.detail)
            self.absent[planned.step_id] = "it was refused before sending"
        else:
            shown["sent"] = True
            shown["response"] = {"status": response.status, "body": excerpt(response.body)}
            self.results[planned.step_id] = {
                "status": response.status,
                "body": kept_result(response.body),
            }
        shown["durationMs"] = round((time.perf_counter() - started) * 1000, 1)
