"""The shapes of the flow half of `/api/`: flows, versions, executions, dry runs, portable flows.

Split from `api_shapes` (the shared base, explorer, events, jobs and the pages) to keep each
family readable; like it, these models only describe the JSON for `addon_core.web.api_docs`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from addon_core.flows.conditions import Conditions
from addon_core.flows.document import Action, FlowDocument, Trigger
from addon_core.web.api_shapes import Instant, Shape

# --- flows -------------------------------------------------------------------------------------


class Flow(Shape):
    """A stored flow: its document's fields (secrets masked) and read-only state."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "kq3v0c2s1n8d",
                    "name": "Tag meetings",
                    "enabled": True,
                    "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRY"]},
                    "conditions": {
                        "mode": "all",
                        "rules": [
                            {"path": "event.description", "op": "contains", "value": "meeting"}
                        ],
                    },
                    "actions": [
                        {
                            "id": "project",
                            "type": "clockify",
                            "operation": "getProject",
                            "params": {"projectId": "{{ event.projectId }}"},
                            "body": None,
                        }
                    ],
                    "version": 1,
                    "paused": False,
                    "pausedReason": None,
                    "consecutiveFailures": 0,
                    "createdAt": "2024-05-01T09:00:00+00:00",
                    "updatedAt": "2024-05-01T09:00:00+00:00",
                    "createdBy": "5a0ab5acb07987125438b60f",
                }
            ]
        }
    )

    id: str
    name: str
    enabled: bool
    trigger: Trigger
    conditions: Conditions
    actions: list[Action]
    version: int
    paused: bool
    pausedReason: str | None
    consecutiveFailures: int
    createdAt: Instant
    updatedAt: Instant
    createdBy: str | None
    signingSecret: str | None = Field(
        default=None,
        description="Universal Webhook: the secret http actions are signed with; "
        "returned by create and rotate-secret only",
    )


class SigningSecret(Shape):
    """A flow's new signing secret, shown this once."""

    id: str
    signingSecret: str


class FlowVersion(Shape):
    """A saved version of a flow; `document` when one version is asked for."""

    version: int
    name: str | None
    savedAt: Instant
    savedBy: str | None
    document: dict[str, Any] | None = None


class Step(Shape):
    """One action of an execution."""

    id: str
    status: str = Field(description="succeeded, failed, skipped, unknown (or pending, running)")
    request: Any = Field(description="method, url and body sent; secrets masked")
    response: Any = Field(description="status and a body excerpt")
    error: str | None
    durationMs: float | None


class Execution(Shape):
    """One run of a flow on one event."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 42,
                    "flowId": "kq3v0c2s1n8d",
                    "flowVersion": 1,
                    "eventId": 1207,
                    "runKey": "event",
                    "status": "succeeded",
                    "error": None,
                    "createdAt": "2024-05-01T09:00:01+00:00",
                    "finishedAt": "2024-05-01T09:00:02+00:00",
                    "steps": [
                        {
                            "id": "project",
                            "status": "succeeded",
                            "request": {
                                "method": "GET",
                                "url": "https://api.clockify.me/api/v1/workspaces/"
                                "5a0ab5acb07987125438b60f/projects/5f11849d4e759e12c40733d5",
                                "body": None,
                            },
                            "response": {"status": 200, "body": '{"name": "Meetings"}'},
                            "error": None,
                            "durationMs": 84.2,
                        }
                    ],
                }
            ]
        }
    )

    id: int
    flowId: str
    flowVersion: int
    eventId: int | None
    runKey: str
    status: str = Field(description="pending, running, succeeded, failed or skipped")
    error: str | None
    createdAt: Instant
    finishedAt: Instant | None
    steps: list[Step]


class DryRunRequest(BaseModel):
    """The event to rehearse on; `eventType` defaults to the trigger's first event."""

    model_config = ConfigDict(extra="forbid")
    eventType: str | None = None
    event: Any


class DryRun(Shape):
    """A dry run: the trigger and every condition judged, every action rendered."""

    matched: bool
    triggerMatched: bool
    conditionsMatched: bool
    mode: str
    conditions: list[dict[str, Any]]
    steps: list[dict[str, Any]]


# --- portable flows and the gallery -------------------------------------------------------------


class Need(Shape):
    """A value an export left behind (a secret, a custom endpoint): bind it at import."""

    field: str = Field(examples=["flow.actions[0].url"])
    message: str


class ExportedFlow(Shape):
    """A flow without secrets or ids of its workspace, to import elsewhere."""

    format: Literal["clockify-addons/flow"]
    formatVersion: Literal[1]
    flow: dict[str, Any]
    needs: list[Need]


class ImportRequest(BaseModel):
    """An export document, with `bind` giving a value for each field its `needs` lists."""

    format: str
    formatVersion: int
    flow: dict[str, Any]
    needs: list[Need] = Field(default_factory=list)
    bind: dict[str, Any] = Field(default_factory=dict)


class GalleryBind(BaseModel):
    bind: dict[str, Any] = Field(default_factory=dict)


class GalleryItem(Shape):
    id: str
    name: str
    description: str
    needs: list[Need]


class Gallery(Shape):
    items: list[GalleryItem]


#: The request body of `POST /api/flows` and `PUT /api/flows/{id}`.
FLOW_DOCUMENT = FlowDocument
