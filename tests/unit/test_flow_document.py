"""The flow document: its schema, its canonical form and its validation against the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from addon_core.clockify.catalogue import Catalogue, load_catalogue
from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES
from addon_core.errors import UnprocessableError
from addon_core.flows.document import (
    MAX_ACTIONS,
    ClockifyAction,
    ClockifyTrigger,
    CustomTrigger,
    FlowDocument,
    FlowValidationError,
    HttpAction,
    validate_flow,
)
from addon_core.flows.example import tag_meetings
from addon_core.flows.render_budget import TemplateLimits

WORKSPACE = "64a687e29ae1f428e7ebe303"
ENDPOINT = "ep_01HZX"


@pytest.fixture(scope="module")
def catalogue(reference_dir: Path) -> Catalogue:
    return load_catalogue(reference_dir / "openapi.json")


def check(
    catalogue: Catalogue,
    document: Any,
    *,
    action_types: tuple[str, ...] = ("clockify",),
    workspace_id: str | None = WORKSPACE,
) -> FlowDocument:
    return validate_flow(
        document,
        catalogue=catalogue,
        event_types=CLOCKIFY_EVENT_TYPES,
        endpoints={ENDPOINT},
        action_types=action_types,
        workspace_id=workspace_id,
    )


def problems(catalogue: Catalogue, document: Any, **options: Any) -> dict[str, str]:
    with pytest.raises(FlowValidationError) as caught:
        check(catalogue, document, **options)
    errors = caught.value.extra["errors"] if caught.value.extra else []
    return {error["field"]: error["message"] for error in errors}


def minimal(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "Minimal",
        "trigger": {"source": "clockify", "events": ["NEW_TAG"]},
    }
    document.update(changes)
    return document


def clockify_action(action_id: str = "call", **fields: Any) -> dict[str, Any]:
    return {"id": action_id, "type": "clockify", **fields}


# --- the contract example and the canonical form ----------------------------------------


def test_the_contract_example_validates_against_the_real_catalogue(catalogue: Catalogue) -> None:
    flow = check(catalogue, tag_meetings())

    assert flow.name == "Tag meetings"
    assert isinstance(flow.trigger, ClockifyTrigger)
    assert [type(action) for action in flow.actions] == [ClockifyAction, ClockifyAction]
    assert flow.conditions.rules[0].op == "contains"


def test_the_canonical_document_fills_defaults_and_validates_again(catalogue: Catalogue) -> None:
    canonical = check(catalogue, tag_meetings()).model_dump(mode="json")

    assert canonical["actions"][0] == {
        "id": "project",
        "type": "clockify",
        "operation": "getProject",
        "params": {"projectId": "{{ event.projectId }}"},
        "body": None,
    }
    assert canonical["actions"][1]["body"] == tag_meetings()["actions"][1]["body"]
    assert canonical["trigger"] == {"source": "clockify", "events": ["NEW_TIME_ENTRY"]}
    assert check(catalogue, canonical).model_dump(mode="json") == canonical


def test_a_minimal_document_gets_the_defaults(catalogue: Catalogue) -> None:
    assert check(catalogue, minimal()).model_dump(mode="json") == {
        "name": "Minimal",
        "enabled": True,
        "trigger": {"source": "clockify", "events": ["NEW_TAG"]},
        "conditions": {"mode": "all", "rules": []},
        "actions": [],
    }


def test_a_custom_trigger_takes_any_event_name_and_a_known_endpoint(catalogue: Catalogue) -> None:
    document = minimal(trigger={"source": "custom", "events": ["order.paid"], "endpoint": ENDPOINT})

    flow = check(catalogue, document)

    assert isinstance(flow.trigger, CustomTrigger)
    assert flow.model_dump(mode="json")["trigger"] == document["trigger"]


def test_an_http_action_is_accepted_where_http_actions_are_allowed(catalogue: Catalogue) -> None:
    action = {
        "id": "notify",
        "type": "http",
        "method": "POST",
        "url": "https://hooks.example.com/{{ workspace.id }}/entries",
        "headers": {"Content-Type": "application/json", "X-Event": "{{ eventType }}"},
        "body": {"entry": "{{ event }}", "who": "{{ event.userId }}"},
    }

    flow = check(catalogue, minimal(actions=[action]), action_types=("clockify", "http"))

    assert isinstance(flow.actions[0], HttpAction)
    assert flow.model_dump(mode="json")["actions"][0] == action


# --- the error ----------------------------------------------------------------------------


def test_every_problem_is_listed_with_its_exact_field(catalogue: Catalogue) -> None:
    document = {
        "name": "",
        "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRYY"]},
        "conditions": {
            "mode": "some",
            "rules": [{"path": "event.description", "op": "matches", "value": "("}],
        },
        "actions": [
            clockify_action("project", operation="getProjectt"),
            clockify_action(
                "entry",
                operation="updateTimeEntry",
                params={"id": "{{ event.id }}", "projectId": "p"},
                body={"description": 5},
            ),
            {"id": "hook", "type": "http", "method": "POST", "url": "https://example.com"},
        ],
    }

    with pytest.raises(FlowValidationError) as caught:
        check(catalogue, document)

    error = caught.value
    assert isinstance(error, UnprocessableError)
    assert error.status_code == 422
    fields = [item["field"] for item in (error.extra or {})["errors"]]
    assert fields == [
        "name",
        "trigger.events[0]",
        "conditions.mode",
        "conditions.rules[0].value",
        "actions[0].operation",
        "actions[1].params.projectId",
        "actions[1].body.start",
        "actions[1].body.description",
        "actions[2].type",
    ]
    assert error.detail.startswith("invalid flow: name: ")
    assert "and 8 more problems" in error.detail
    assert "\n" not in error.detail


def test_a_document_that_is_not_an_object_is_refused(catalogue: Catalogue) -> None:
    assert list(problems(catalogue, ["not", "a", "flow"])) == ["document"]
    assert list(problems(catalogue, None)) == ["document"]


# --- the schema ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"name": 5}, "name", "valid string"),
        ({"enabled": "yes"}, "enabled", "valid boolean"),
        ({"colour": "red"}, "colour", "unknown key"),
        ({"trigger": {"events": ["NEW_TAG"]}}, "trigger.source", "required"),
        ({"trigger": {"source": "zapier", "events": ["x"]}}, "trigger.source", "zapier"),
        ({"trigger": {"source": "clockify", "events": []}}, "trigger.events", "at least 1"),
        ({"trigger": {"source": "clockify"}}, "trigger.events", "required"),
        (
            {"trigger": {"source": "clockify", "events": ["NEW_TAG"], "endpoint": ENDPOINT}},
            "trigger.endpoint",
            "unknown key",
        ),
        ({"trigger": {"source": "custom", "events": ["x"]}}, "trigger.endpoint", "required"),
        (
            {"trigger": {"source": "custom", "events": [""], "endpoint": ENDPOINT}},
            "trigger.events[0]",
            "at least 1",
        ),
        (
            {"conditions": {"rules": [{"path": "event.id", "op": "like"}]}},
            "conditions.rules[0].op",
            "'eq'",
        ),
        ({"conditions": {"rules": [{"op": "exists"}]}}, "conditions.rules[0].path", "required"),
        (
            {"conditions": {"rules": [{"path": "event.id", "op": "exists", "x": 1}]}},
            "conditions.rules[0].x",
            "unknown key",
        ),
        ({"actions": [{"id": "a"}]}, "actions[0].type", "required"),
        ({"actions": [{"id": "a", "type": "email"}]}, "actions[0].type", "email"),
        ({"actions": [clockify_action("1st", operation="getTags")]}, "actions[0].id", "pattern"),
        ({"actions": [clockify_action("a" * 65, operation="getTags")]}, "actions[0].id", "pattern"),
        (
            {"actions": [clockify_action(operation="getTags", retries=3)]},
            "actions[0].retries",
            "unknown key",
        ),
        (
            {"actions": [clockify_action(operation="getTags", params=[])]},
            "actions[0].params",
            "dictionary",
        ),
        ({"actions": [clockify_action()]}, "actions[0].operation", "required"),
    ],
)
def test_schema_problems_point_at_their_field(
    catalogue: Catalogue, change: dict[str, Any], field: str, message: str
) -> None:
    found = problems(catalogue, minimal(**change))

    assert field in found, found
    assert message in found[field]


def test_an_http_action_needs_a_method_and_a_url(catalogue: Catalogue) -> None:
    found = problems(
        catalogue,
        minimal(actions=[{"id": "hook", "type": "http", "method": "TRACE", "headers": {"A": 1}}]),
        action_types=("clockify", "http"),
    )

    assert set(found) == {"actions[0].method", "actions[0].url", "actions[0].headers.A"}


def test_at_most_twenty_actions(catalogue: Catalogue) -> None:
    actions = [clockify_action(f"a{i}", operation="getTags") for i in range(MAX_ACTIONS + 1)]

    found = problems(catalogue, minimal(actions=actions))

    assert "at most 20" in found["actions"]
    assert check(catalogue, minimal(actions=actions[:MAX_ACTIONS])).actions[-1].id == "a19"


# --- the trigger --------------------------------------------------------------------------


def test_an_unknown_event_type_suggests_close_ones(catalogue: Catalogue) -> None:
    found = problems(
        catalogue, minimal(trigger={"source": "clockify", "events": ["NEW_TAG", "TIMER_STOP"]})
    )

    assert list(found) == ["trigger.events[1]"]
    assert "TIMER_STOPPED" in found["trigger.events[1]"]


def test_an_event_listed_twice_is_refused(catalogue: Catalogue) -> None:
    found = problems(catalogue, minimal(trigger={"source": "clockify", "events": ["NEW_TAG"] * 2}))

    assert list(found) == ["trigger.events[1]"]


def test_a_custom_trigger_must_name_a_known_endpoint(catalogue: Catalogue) -> None:
    document = minimal(trigger={"source": "custom", "events": ["x"], "endpoint": "ep_other"})

    assert list(problems(catalogue, document)) == ["trigger.endpoint"]


# --- actions ------------------------------------------------------------------------------


def test_http_actions_are_refused_where_only_clockify_actions_are_allowed(
    catalogue: Catalogue,
) -> None:
    action = {"id": "hook", "type": "http", "method": "GET", "url": "https://example.com"}

    found = problems(catalogue, minimal(actions=[action]))

    assert found == {"actions[0].type": "http actions are not available here; allowed: clockify"}


def test_an_unknown_operation_suggests_close_ids(catalogue: Catalogue) -> None:
    found = problems(catalogue, minimal(actions=[clockify_action(operation="getProjet")]))

    assert "getProject" in found["actions[0].operation"]


def test_params_and_body_are_validated_against_the_operation(catalogue: Catalogue) -> None:
    action = clockify_action(
        operation="updateTimeEntry",
        params={"id": "te-1", "colour": "red"},
        body={"start": "2024-01-01T00:00:00Z", "tagIds": "tag-a", "billable": "yes"},
    )

    found = problems(catalogue, minimal(actions=[action]))

    assert set(found) == {
        "actions[0].params.colour",
        "actions[0].body.tagIds",
        "actions[0].body.billable",
    }


def test_a_required_param_is_reported_when_absent(catalogue: Catalogue) -> None:
    found = problems(catalogue, minimal(actions=[clockify_action(operation="getProject")]))

    assert found == {"actions[0].params.projectId": "required path parameter"}


def test_templated_values_count_as_given_and_are_checked_when_rendered(
    catalogue: Catalogue,
) -> None:
    action = clockify_action(
        operation="updateTimeEntry",
        params={"id": "{{ event.id }}"},
        body={
            "start": "{{ event.timeInterval.start }}",
            "billable": "{{ settings.billable }}",
            "customFields": "{{ event.customFieldValues }}",
            "tagIds": ["{{ settings.tag }}", 5],
        },
    )

    found = problems(catalogue, minimal(actions=[action]))

    # Only the literal 5 is wrong; every templated value waits for its rendering.
    assert found == {"actions[0].body.tagIds[1]": "expected string, got 5"}


def test_a_whole_templated_body_is_checked_when_rendered(catalogue: Catalogue) -> None:
    action = clockify_action(operation="updateTimeEntry", params={"id": "te-1"}, body="{{ event }}")

    assert check(catalogue, minimal(actions=[action])).actions[0].body == "{{ event }}"


def test_the_workspace_comes_from_the_installation(catalogue: Catalogue) -> None:
    other = clockify_action(operation="getTags", params={"workspaceId": "another-workspace"})
    same = clockify_action(operation="getTags", params={"workspaceId": WORKSPACE})

    found = problems(catalogue, minimal(actions=[other]))

    assert "cannot be overridden" in found["actions[0].params.workspaceId"]
    assert check(catalogue, minimal(actions=[same])).actions[0].id == "call"


def test_without_an_installation_the_workspace_may_be_left_out(catalogue: Catalogue) -> None:
    action = clockify_action(operation="getProject", params={"projectId": "p-1"})

    flow = check(catalogue, minimal(actions=[action]), workspace_id=None)

    assert flow.actions[0].id == "call"


def test_action_ids_are_unique(catalogue: Catalogue) -> None:
    actions = [clockify_action("same", operation="getTags") for _ in range(2)]

    found = problems(catalogue, minimal(actions=actions))

    assert found == {"actions[1].id": "'same' is already the id of actions[0]"}


def test_templates_may_only_reference_earlier_actions(catalogue: Catalogue) -> None:
    actions = [
        clockify_action(
            "first", operation="getProject", params={"projectId": "{{ actions.second.body.id }}"}
        ),
        clockify_action(
            "second", operation="getProject", params={"projectId": "{{ actions.second.body.id }}"}
        ),
        clockify_action(
            "third", operation="getProject", params={"projectId": "{{ actions.first.body.id }}"}
        ),
    ]

    found = problems(catalogue, minimal(actions=actions))

    assert set(found) == {"actions[0].params.projectId", "actions[1].params.projectId"}


def test_conditions_cannot_reference_actions(catalogue: Catalogue) -> None:
    conditions = {
        "rules": [
            {"path": "actions.first.status", "op": "eq", "value": 200},
            {"path": "event.id", "op": "eq", "value": "{{ actions.first.body.id }}"},
        ]
    }
    actions = [clockify_action("first", operation="getTags")]

    found = problems(catalogue, minimal(conditions=conditions, actions=actions))

    assert set(found) == {"conditions.rules[0].path", "conditions.rules[1].value"}


def test_templates_are_checked_in_every_templated_field(catalogue: Catalogue) -> None:
    hook = {
        "id": "hook",
        "type": "http",
        "method": "PUT",
        "url": "https://example.com/{{ event.id",
        "headers": {"Authorization": "Bearer {{ settings.apiToken }}", "X-Id": "{{ nope }}"},
        "body": {"a": ["{{ }}"]},
    }
    call = clockify_action(
        operation="updateTimeEntry",
        params={"id": "{{ event.id }"},
        body={"start": "{{ workspace.name }}"},
    )

    found = problems(catalogue, minimal(actions=[hook, call]), action_types=("clockify", "http"))

    assert set(found) == {
        "actions[0].url",
        "actions[0].headers.Authorization",
        "actions[0].headers.X-Id",
        "actions[0].body.a[0]",
        "actions[1].params.id",
        "actions[1].body.start",
    }
    assert "secret" in found["actions[0].headers.Authorization"]


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://example.com/x", True),
        ("HTTP://example.com", True),
        ("{{ settings.target }}", True),
        ("https://{{ settings.host }}/hook", True),
        ("ftp://example.com", False),
        ("example.com/hook", False),
        ("javascript:alert(1)", False),
    ],
)
def test_an_http_url_must_be_http_or_https(catalogue: Catalogue, url: str, valid: bool) -> None:
    action = {"id": "hook", "type": "http", "method": "POST", "url": url}
    document = minimal(actions=[action])

    if valid:
        check(catalogue, document, action_types=("http",))
    else:
        assert list(problems(catalogue, document, action_types=("http",))) == ["actions[0].url"]


def test_header_names_and_values_cannot_smuggle_lines(catalogue: Catalogue) -> None:
    action = {
        "id": "hook",
        "type": "http",
        "method": "POST",
        "url": "https://example.com",
        "headers": {"Bad Name": "x", "X-Ok": "a\r\nInjected: 1"},
    }

    found = problems(catalogue, minimal(actions=[action]), action_types=("http",))

    assert set(found) == {"actions[0].headers.Bad Name", "actions[0].headers.X-Ok"}


def test_literal_text_past_the_value_limit_is_refused_at_its_field(catalogue: Catalogue) -> None:
    action = {
        "id": "hook",
        "type": "http",
        "method": "POST",
        "url": "https://example.com",
        "body": {"note": "n" * 70_000, "short": "{{ event.id }} " + "s" * 100},
    }

    found = problems(catalogue, minimal(actions=[action]), action_types=("http",))

    assert set(found) == {"actions[0].body.note"}
    assert "70000 characters" in found["actions[0].body.note"]


def test_literal_text_past_the_request_limit_is_refused_at_the_action(
    catalogue: Catalogue,
) -> None:
    action = {
        "id": "hook",
        "type": "http",
        "method": "POST",
        "url": "https://example.com",
        "body": {f"part{i}": "p" * 4000 for i in range(3)},
    }

    with pytest.raises(FlowValidationError) as caught:
        validate_flow(
            minimal(actions=[action]),
            catalogue=catalogue,
            event_types=CLOCKIFY_EVENT_TYPES,
            endpoints=set(),
            action_types=("http",),
            limits=TemplateLimits(value=4096, request=10_000),
        )

    assert caught.value.issues[0].field == "actions[0]"
    assert "one request may hold at most 10000" in caught.value.issues[0].message
