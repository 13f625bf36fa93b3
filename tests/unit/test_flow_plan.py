"""Planning a flow action: rendered, checked against the catalogue, URL built, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from addon_core.clockify.catalogue import Catalogue, load_catalogue
from addon_core.clockify.manifest import load_manifest
from addon_core.flows.document import ClockifyAction, HttpAction
from addon_core.flows.example import tag_meetings
from addon_core.flows.plan import (
    PlanError,
    installation_settings,
    plan_action,
)
from addon_core.flows.templates import TemplateError, make_context
from addon_core.redaction import MASK
from addon_core.storage.models import Installation

WORKSPACE = "64a687e29ae1f428e7ebe303"
BASE_URLS = {"backendUrl": "https://api.clockify.me/api"}
EVENT = {
    "id": "65b0000000000000000000e1",
    "projectId": "65b0000000000000000000p1",
    "description": "weekly meeting",
    "timeInterval": {"start": "2024-02-01T09:00:00Z"},
}


@pytest.fixture(scope="module")
def catalogue(reference_dir: Path) -> Catalogue:
    return load_catalogue(reference_dir / "openapi.json")


def context(**actions: dict[str, Any]) -> dict[str, Any]:
    return make_context(
        event=EVENT,
        event_type="NEW_TIME_ENTRY",
        workspace_id=WORKSPACE,
        settings={"meetingTagIds": ["t1", "t2"]},
        actions=actions,
    )


def plan(catalogue: Catalogue, action: dict[str, Any], ctx: dict[str, Any] | None = None) -> Any:
    model = (ClockifyAction if action["type"] == "clockify" else HttpAction).model_validate(action)
    return plan_action(
        model,
        ctx or context(),
        catalogue=catalogue,
        workspace_id=WORKSPACE,
        base_urls=BASE_URLS,
        position=1,
    )


def test_a_clockify_action_renders_typed_values_and_the_installations_workspace(
    catalogue: Catalogue,
) -> None:
    retag = tag_meetings(tag_ids="{{ settings.meetingTagIds }}")["actions"][1]
    planned = plan(catalogue, retag, context(project={"status": 200, "body": {"name": "Acme"}}))
    assert planned.method == "PUT"
    assert planned.operation == "updateTimeEntry"
    assert planned.url == (
        f"https://api.clockify.me/api/v1/workspaces/{WORKSPACE}/time-entries/{EVENT['id']}"
    )
    assert planned.params == {"id": EVENT["id"], "workspaceId": WORKSPACE}
    assert planned.body == {
        "start": "2024-02-01T09:00:00Z",
        "description": "weekly meeting / Acme",
        "tagIds": ["t1", "t2"],
    }
    assert planned.idempotent
    assert planned.masked() == {
        "method": "PUT",
        "url": planned.url,
        "body": planned.body,
        "operation": "updateTimeEntry",
    }


def test_query_params_go_into_the_url(catalogue: Catalogue) -> None:
    planned = plan(
        catalogue,
        {
            "id": "p",
            "type": "clockify",
            "operation": "getProject",
            "params": {"projectId": "{{ event.projectId }}", "hydrated": True},
        },
    )
    assert planned.method == "GET"
    assert planned.url.endswith(f"/projects/{EVENT['projectId']}?hydrated=true")
    assert planned.body is None


def test_a_missing_path_names_the_field(catalogue: Catalogue) -> None:
    with pytest.raises(TemplateError) as caught:
        plan(
            catalogue,
            {
                "id": "p",
                "type": "clockify",
                "operation": "getProject",
                "params": {"projectId": "{{ event.clientId }}"},
            },
        )
    assert caught.value.field == "actions[1].params.projectId"


def test_a_rendered_value_the_operation_refuses_names_the_field(catalogue: Catalogue) -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            catalogue,
            {
                "id": "retag",
                "type": "clockify",
                "operation": "updateTimeEntry",
                "params": {"id": "{{ event.id }}"},
                "body": {"start": "{{ event.timeInterval.start }}", "tagIds": "{{ event.id }}"},
            },
        )
    assert caught.value.detail.startswith("actions[1].body.tagIds")
    assert caught.value.extra is not None
    assert caught.value.extra["errors"][0]["field"] == "actions[1].body.tagIds"


def test_a_template_cannot_point_the_call_at_another_workspace(catalogue: Catalogue) -> None:
    with pytest.raises(PlanError) as caught:
        plan(
            catalogue,
            {
                "id": "p",
                "type": "clockify",
                "operation": "getProject",
                "params": {"projectId": "x", "workspaceId": "{{ event.projectId }}"},
            },
        )
    assert "workspaceId" in caught.value.detail


def test_an_http_action_renders_url_headers_and_body_and_masks_secrets(
    catalogue: Catalogue,
) -> None:
    planned = plan(
        catalogue,
        {
            "id": "notify",
            "type": "http",
            "method": "POST",
            "url": "https://hooks.example.com/in?api_key=abc123&entry={{ event.id }}",
            "headers": {"Authorization": "Bearer s3cr3t", "X-Count": "{{ event.timeInterval }}"},
            "body": {"entry": "{{ event }}", "password": "hunter2"},
        },
    )
    assert planned.method == "POST"
    assert planned.url.endswith(f"entry={EVENT['id']}")
    assert planned.headers["X-Count"] == json.dumps(EVENT["timeInterval"])
    assert json.loads(planned.encoded_body() or b"") == planned.body
    assert not planned.idempotent
    shown = planned.masked()
    assert "abc123" not in shown["url"]
    assert shown["headers"]["Authorization"] == MASK
    assert shown["body"]["password"] == MASK
    assert shown["body"]["entry"] == EVENT
    assert "operation" not in shown


def test_an_http_url_must_render_to_an_http_url(catalogue: Catalogue) -> None:
    with pytest.raises(PlanError):
        plan(
            catalogue,
            {"id": "n", "type": "http", "method": "GET", "url": "{{ event.description }}"},
        )


def test_settings_are_the_manifest_defaults_overlaid_by_the_latest_update() -> None:
    manifest = load_manifest("universal-webhook")
    installation = Installation(
        settings=[
            {"id": "outboundAllowedHosts", "name": "Hosts", "value": "hooks.example.com"},
            {"id": "meetingTagIds", "value": ["t1"]},
        ]
    )
    settings = installation_settings(manifest, installation)
    assert settings["outboundAllowedHosts"] == "hooks.example.com"
    assert settings["eventRetentionDays"] == 30
    assert settings["meetingTagIds"] == ["t1"]
    assert installation_settings(manifest, Installation(settings=[]))["outboundAllowedHosts"] == (
        "none"
    )
