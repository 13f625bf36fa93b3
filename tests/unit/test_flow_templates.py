"""Flow templates: placeholders keep JSON types, fail on missing paths, never reach secrets."""

from __future__ import annotations

import copy
import tracemalloc
from typing import Any

import pytest

from addon_core.errors import UnprocessableError
from addon_core.flows.render_budget import DEFAULT_VALUE_LIMIT, RenderBudget, TemplateLimits
from addon_core.flows.templates import (
    MISSING,
    TemplateError,
    TemplateSizeError,
    check_template,
    find_placeholders,
    is_templated,
    lookup,
    make_context,
    parse,
    parse_path,
    render,
    templated_fields,
)
from addon_core.redaction import MASK

EVENT = {
    "id": "te-1",
    "description": "Weekly meeting",
    "billable": True,
    "hourlyRate": None,
    "duration": 90,
    "tagIds": ["tag-a", "tag-b"],
    "timeInterval": {"start": "2020-07-17T11:35:01Z", "duration": "PT1H"},
    "project": {"id": "p-1", "name": "Internal"},
}


@pytest.fixture
def context() -> dict[str, Any]:
    return make_context(
        event=EVENT,
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={"meetingTagIds": ["tag-m"], "threshold": 2},
        actions={"project": {"status": 200, "body": {"name": "Internal", "archived": False}}},
    )


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ event.duration }}", 90),
        ("{{ event.tagIds }}", ["tag-a", "tag-b"]),
        ("{{ event.project }}", {"id": "p-1", "name": "Internal"}),
        ("{{ event.billable }}", True),
        ("{{ event.hourlyRate }}", None),
        ("{{ settings.meetingTagIds }}", ["tag-m"]),
        ("{{ actions.project.status }}", 200),
        ("{{ eventType }}", "NEW_TIME_ENTRY"),
        ("{{ workspace.id }}", "ws-1"),
    ],
)
def test_a_whole_placeholder_keeps_its_json_type(
    context: dict[str, Any], template: str, expected: Any
) -> None:
    assert render(template, context) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ event.description }} / {{ actions.project.body.name }}", "Weekly meeting / Internal"),
        ("took {{ event.duration }} min", "took 90 min"),
        ("tags: {{ event.tagIds }}", 'tags: ["tag-a","tag-b"]'),
        ("rate={{ event.hourlyRate }}", "rate=null"),
        ("billable={{ event.billable }}", "billable=true"),
        ("{{ event.project }}!", '{"id":"p-1","name":"Internal"}!'),
        (" {{ event.id }}", " te-1"),
    ],
)
def test_placeholders_inside_text_are_formatted_into_it(
    context: dict[str, Any], template: str, expected: str
) -> None:
    assert render(template, context) == expected


@pytest.mark.parametrize(
    "template", ["{{event.id}}", "{{ event.id }}", "{{   event.id\t}}", "{{event.id }}"]
)
def test_whitespace_inside_the_braces_is_optional(context: dict[str, Any], template: str) -> None:
    assert render(template, context) == "te-1"


@pytest.mark.parametrize("template", ["{{ event.tagIds.1 }}", "{{ event.tagIds[1] }}"])
def test_list_items_are_reached_by_dotted_or_bracketed_index(
    context: dict[str, Any], template: str
) -> None:
    assert render(template, context) == "tag-b"


def test_render_walks_a_json_body_and_leaves_other_values_alone(context: dict[str, Any]) -> None:
    body = {
        "start": "{{ event.timeInterval.start }}",
        "tagIds": ["{{ event.tagIds.0 }}", "fixed"],
        "billable": False,
        "count": 3,
        "note": None,
        "nested": {"project": "{{ event.project.id }}"},
    }
    original = copy.deepcopy(body)

    rendered = render(body, context, field="body")

    assert rendered == {
        "start": "2020-07-17T11:35:01Z",
        "tagIds": ["tag-a", "fixed"],
        "billable": False,
        "count": 3,
        "note": None,
        "nested": {"project": "p-1"},
    }
    assert body == original


def test_a_missing_path_is_an_error_naming_the_field_and_placeholder(
    context: dict[str, Any],
) -> None:
    body = {"items": [1, {"description": "x {{ event.projectName }}"}]}

    with pytest.raises(TemplateError) as caught:
        render(body, context, field="body")

    error = caught.value
    assert isinstance(error, UnprocessableError)
    assert error.status_code == 422
    assert error.field == "body.items[1].description"
    assert error.placeholder == "event.projectName"
    assert "body.items[1].description" in error.detail
    assert "{{ event.projectName }}" in error.detail
    assert "no key 'projectName'" in error.detail


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ event.tagIds.5 }}", "has 2 items, none at index 5"),
        ("{{ event.tagIds.first }}", "is a list"),
        ("{{ event.description.length }}", "is a string"),
        ("{{ event.hourlyRate.amount }}", "is null"),
        ("{{ actions.later.body }}", "actions has no key 'later'"),
    ],
)
def test_a_path_that_leads_nowhere_is_never_an_empty_string(
    context: dict[str, Any], template: str, reason: str
) -> None:
    with pytest.raises(TemplateError, match=reason):
        render({"description": template}, context, field="body")


def test_python_attributes_are_not_reachable(context: dict[str, Any]) -> None:
    # Only dict keys and list indexes are followed: no method or dunder of a str or dict.
    for template in ("{{ event.description.upper }}", "{{ event.__class__ }}"):
        with pytest.raises(TemplateError, match="cannot be filled"):
            render(template, context)


@pytest.mark.parametrize(
    "template",
    [
        "{{ settings.apiToken }}",
        "{{ event.authToken }}",
        "{{ settings.webhookSecret }}",
        "{{ actions.login.body.password }}",
        "{{ event.headers.x-addon-token }}",
    ],
)
def test_a_secret_looking_path_is_refused_at_render_and_at_save(template: str) -> None:
    context = make_context(
        event={"authToken": "t", "headers": {"x-addon-token": "t"}},
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={"apiToken": "t", "webhookSecret": "s"},
        actions={"login": {"status": 200, "body": {"password": "p"}}},
    )

    with pytest.raises(TemplateError, match="looks like a secret"):
        render(template, context)
    [issue] = check_template({"url": template}, field="action")
    assert issue.field == "action.url"
    assert "secret" in issue.message


def test_secrets_inside_a_rendered_object_are_masked() -> None:
    context = make_context(
        event={"user": {"name": "Ann", "authToken": "opaque"}},
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={"label": "x", "apiKey": "opaque"},
    )

    assert render("{{ event.user }}", context) == {"name": "Ann", "authToken": MASK}
    assert render("{{ settings }}", context) == {"label": "x", "apiKey": MASK}
    assert "opaque" not in render("all: {{ settings }}", context)


def test_an_action_id_is_a_name_not_a_secret() -> None:
    context = make_context(
        event={},
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={},
        actions={"tokenCheck": {"status": 204, "body": None}},
    )

    assert render("{{ actions.tokenCheck.status }}", context) == 204


# --- parsing and save-time checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello {{ event.id", "unterminated placeholder"),
        ("{{ event.id }} and {{", "unterminated placeholder"),
        ("{{ }}", "empty placeholder"),
        ("{{}}", "empty placeholder"),
        ("{{ token.value }}", "unknown root 'token'"),
        ("{{ user.id }}", "unknown root 'user'"),
        ("{{ event..id }}", "malformed path"),
        ("{{ event.id | upper }}", "malformed path"),
        ("{{ event.items[x] }}", "malformed path"),
        ("{{ event.id() }}", "malformed path"),
        ("{{ 'a' + 'b' }}", "malformed path"),
        ("{{ eventType.name }}", "has no fields"),
        ("{{ workspace.name }}", "workspace has only id"),
        ("{{ actions.project.headers }}", "only status and body"),
        ("{{ actions.project.status.code }}", "status is a number"),
        ("{{ actions[0].body }}", "named by their id"),
    ],
)
def test_a_malformed_template_is_reported_at_save(text: str, message: str) -> None:
    issues = check_template({"body": {"description": text}}, field="actions[0]")

    assert [issue.field for issue in issues] == ["actions[0].body.description"]
    assert message in issues[0].message
    with pytest.raises(TemplateError, match=message):
        parse(text)


def test_check_template_reports_every_bad_string() -> None:
    value = {"a": "{{ nope.x }}", "b": ["ok", "{{ event.id"], "c": "{{ event.id }}", "d": 5}

    issues = check_template(value, field="body")

    assert [issue.field for issue in issues] == ["body.a", "body.b[1]"]


def test_actions_may_only_be_referenced_when_they_ran_before() -> None:
    value = {"x": "{{ actions.first.body.id }}", "y": "{{ actions.third.status }}"}

    issues = check_template(value, field="actions[1].params", actions=["first"])

    assert [issue.field for issue in issues] == ["actions[1].params.y"]
    assert "'third'" in issues[0].message
    assert "earlier actions: first" in issues[0].message


def test_parse_path_splits_the_root_and_steps() -> None:
    path = parse_path("event.customFieldValues[0].value")

    assert path.root == "event"
    assert path.steps == ("customFieldValues", 0, "value")


def test_lookup_answers_missing_instead_of_raising(context: dict[str, Any]) -> None:
    assert lookup(parse_path("event.project.name"), context) == "Internal"
    assert lookup(parse_path("event.project.owner"), context) is MISSING
    assert lookup(parse_path("event.hourlyRate"), context) is None


def test_parsed_templates_are_cached() -> None:
    text = "{{ event.id }}-{{ event.description }}"

    assert parse(text) is parse(text)
    assert parse(text).whole is None
    assert parse("{{ event.id }}").whole is not None


def test_templated_values_are_found_with_their_fields() -> None:
    params = {"projectId": "{{ event.projectId }}", "hydrated": True}
    body = {"tagIds": ["plain", "{{ settings.tag }}"], "broken": "{{ event.id", "n": 1}

    assert is_templated(params)
    assert not is_templated({"a": "plain", "b": [1, None]})
    assert templated_fields(params, field="params") == ["params.projectId"]
    assert templated_fields(body, field="body") == ["body.tagIds[1]", "body.broken"]
    found = find_placeholders(body, field="body")
    assert [(field, p.path.text) for field, p in found] == [("body.tagIds[1]", "settings.tag")]


def test_make_context_holds_exactly_the_five_roots() -> None:
    context = make_context(
        event={"id": "e"},
        event_type="TAG_UPDATED",
        workspace_id="ws-1",
        settings={"a": 1},
        actions={"one": {"status": 201, "body": {"id": "x"}, "headers": {"x": "y"}}},
    )

    assert context == {
        "event": {"id": "e"},
        "eventType": "TAG_UPDATED",
        "workspace": {"id": "ws-1"},
        "settings": {"a": 1},
        "actions": {"one": {"status": 201, "body": {"id": "x"}}},
    }


# --- rendered size bounds -----------------------------------------------------------------


def big_context(description: str) -> dict[str, Any]:
    return make_context(
        event={**EVENT, "description": description},
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={},
    )


def test_a_thousand_placeholders_of_a_large_value_are_refused_before_any_is_joined() -> None:
    # 1,000 copies of a 100 KB value would be 100 MB; refused at the first piece.
    ctx = big_context("x" * 100_000)
    template = {"description": "{{ event.description }} " * 1000}

    tracemalloc.start()
    try:
        with pytest.raises(TemplateSizeError) as caught:
            render(template, ctx, field="body")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert caught.value.field == "body.description"
    assert caught.value.status_code == 422
    assert f"over {DEFAULT_VALUE_LIMIT} characters, the limit of one value" in caught.value.detail
    assert peak < 1_000_000


def test_many_values_within_the_value_limit_are_refused_past_the_request_limit() -> None:
    ctx = big_context("x" * 60_000)
    body = {f"field{i}": "{{ event.description }}" for i in range(20)}

    with pytest.raises(TemplateSizeError) as caught:
        render(body, ctx, field="body", budget=RenderBudget(TemplateLimits(65536, 500_000)))

    assert "the limit of one request" in caught.value.detail
    assert caught.value.field == "body.field8"  # 9 x 60,000 passes 500,000


def test_a_budget_is_shared_by_the_values_of_one_request() -> None:
    ctx = big_context("x" * 3000)
    budget = RenderBudget(TemplateLimits(4096, 8192))

    assert render("{{ event.description }}", ctx, budget=budget) == "x" * 3000
    assert render("a{{ event.description }}", ctx, budget=budget) == "a" + "x" * 3000
    with pytest.raises(TemplateSizeError, match="the limit of one request"):
        render("{{ event.description }}", ctx, budget=budget)


def test_a_whole_object_placeholder_counts_its_json_size() -> None:
    ctx = big_context("x" * 5000)
    limits = TemplateLimits(4096, 1 << 20)

    with pytest.raises(TemplateSizeError, match="the limit of one value"):
        render("{{ event }}", ctx, budget=RenderBudget(limits))
    with pytest.raises(TemplateSizeError, match="the limit of one value"):
        render("event: {{ event }}", ctx, budget=RenderBudget(limits))


def test_values_within_the_limits_render_as_before() -> None:
    ctx = big_context("y" * 1000)

    rendered = render({"a": "{{ event.description }}", "b": "{{ event.tagIds }}!"}, ctx)

    assert rendered == {"a": "y" * 1000, "b": '["tag-a","tag-b"]!'}
