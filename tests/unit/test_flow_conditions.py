"""Flow conditions: the 15 operators, type-aware comparison, all/any and the dry-run report."""

from __future__ import annotations

from typing import Any

import pytest

from addon_core.flows.comparison import parse_duration
from addon_core.flows.conditions import (
    MAX_MATCH_INPUT,
    MAX_PATTERN_LENGTH,
    OPERATORS,
    Conditions,
    Rule,
    check_conditions,
    evaluate,
    explain,
    judge,
)
from addon_core.flows.templates import make_context

EVENT = {
    "description": "Weekly meeting with Ann",
    "billable": True,
    "hourlyRate": None,
    "amount": 150,
    "ratio": 0.5,
    "count": "12",
    "tagIds": ["tag-a", "tag-b"],
    "tags": [{"id": "tag-a"}],
    "project": {"id": "p-1"},
    "timeInterval": {
        "start": "2020-07-17T11:35:01Z",
        "end": "2020-07-17T12:35:01Z",
        "duration": "PT1H",
    },
    "day": "2020-07-17",
}


@pytest.fixture
def context() -> dict[str, Any]:
    return make_context(
        event=EVENT,
        event_type="NEW_TIME_ENTRY",
        workspace_id="ws-1",
        settings={"keyword": "meeting", "minimum": "100", "tags": ["tag-b", "tag-z"]},
    )


def holds(context: dict[str, Any], path: str, op: str, value: Any = None) -> bool:
    return judge(Rule.model_validate({"path": path, "op": op, "value": value}), context).outcome


def test_there_are_exactly_the_fifteen_contract_operators() -> None:
    assert set(OPERATORS) == {
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "in",
        "not_in",
        "exists",
        "not_exists",
        "matches",
    }


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        # numbers, and numeric text against numbers
        ("event.amount", "eq", 150, True),
        ("event.amount", "eq", 150.0, True),
        ("event.amount", "eq", "150", True),
        ("event.amount", "gt", 99, True),
        ("event.amount", "gt", "1000", False),
        ("event.count", "gt", 9, True),
        ("event.count", "gt", "9", True),  # "12" > "9" as numbers, not as text
        ("event.ratio", "lt", 1, True),
        ("event.ratio", "gte", 0.5, True),
        ("event.amount", "lte", 149, False),
        ("event.amount", "ne", 151, True),
        # instants, whatever their offset
        ("event.timeInterval.start", "lt", "2020-07-17T12:00:00Z", True),
        ("event.timeInterval.start", "eq", "2020-07-17T13:35:01+02:00", True),
        ("event.timeInterval.start", "gt", "2020-07-17T13:00:00+02:00", True),
        ("event.timeInterval.start", "gte", "2020-07-17", True),
        ("event.day", "lt", "2020-07-18T00:00:00Z", True),
        ("event.timeInterval.end", "gt", "{{ event.timeInterval.start }}", True),
        # durations
        ("event.timeInterval.duration", "eq", "PT60M", True),
        ("event.timeInterval.duration", "gt", "PT30M", True),
        ("event.timeInterval.duration", "lt", "PT1H30M", True),
        ("event.timeInterval.duration", "lt", "P1D", True),
        ("event.timeInterval.duration", "gte", "PT3600S", True),
        # text
        ("event.description", "eq", "Weekly meeting with Ann", True),
        ("event.description", "eq", "weekly meeting with ann", False),
        ("event.description", "gt", "Monthly", True),
        ("event.description", "ne", "Daily", True),
        # booleans
        ("event.billable", "eq", True, True),
        ("event.billable", "eq", "true", True),
        ("event.billable", "ne", False, True),
        ("event.billable", "gt", False, False),
        # null
        ("event.hourlyRate", "eq", None, True),
        ("event.hourlyRate", "ne", None, False),
        # structures compare by equality only
        ("event.tagIds", "eq", ["tag-a", "tag-b"], True),
        ("event.project", "eq", {"id": "p-1"}, True),
        ("event.project", "gt", {"id": "p-0"}, False),
    ],
)
def test_comparison_is_type_aware(
    context: dict[str, Any], path: str, op: str, value: Any, expected: bool
) -> None:
    assert holds(context, path, op, value) is expected


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        ("event.description", "contains", "meeting", True),
        ("event.description", "contains", "{{ settings.keyword }}", True),
        ("event.description", "contains", "standup", False),
        ("event.description", "not_contains", "standup", True),
        ("event.description", "not_contains", "meeting", False),
        ("event.tagIds", "contains", "tag-a", True),
        ("event.tagIds", "contains", "tag-c", False),
        ("event.tagIds", "not_contains", "tag-c", True),
        ("event.tags", "contains", {"id": "tag-a"}, True),
        ("event.description", "starts_with", "Weekly", True),
        ("event.description", "starts_with", "Ann", False),
        ("event.description", "ends_with", "Ann", True),
        ("event.project.id", "in", ["p-1", "p-2"], True),
        ("event.project.id", "in", ["p-3"], False),
        ("event.amount", "in", ["150", 7], True),
        ("event.project.id", "not_in", ["p-3"], True),
        ("event.project.id", "not_in", ["p-1"], False),
        ("event.tagIds.1", "in", "{{ settings.tags }}", True),
        ("event.description", "matches", r"^Weekly\s+meeting", True),
        ("event.description", "matches", "ann$", False),
        ("event.description", "matches", "(?i)ann$", True),
        ("event.description", "matches", "meeting", True),  # searched, not anchored
    ],
)
def test_text_list_and_pattern_operators(
    context: dict[str, Any], path: str, op: str, value: Any, expected: bool
) -> None:
    assert holds(context, path, op, value) is expected


@pytest.mark.parametrize(
    ("path", "op", "value"),
    [
        ("event.amount", "gt", "many"),
        ("event.amount", "lt", [1]),
        ("event.description", "gt", 5),
        ("event.tagIds", "gt", "a"),
        ("event.amount", "contains", 1),
        ("event.amount", "not_contains", 1),
        ("event.description", "contains", 5),
        ("event.amount", "starts_with", "1"),
        ("event.project.id", "in", "p-1"),
        ("event.project.id", "not_in", "p-9"),
        ("event.amount", "matches", "1"),
        ("event.description", "matches", "("),
        ("event.timeInterval.duration", "gt", 60),
        ("event.hourlyRate", "lt", 5),
        ("event.amount", "eq", None),
        ("event.description", "eq", ["Weekly meeting with Ann"]),
    ],
)
def test_incomparable_values_make_the_rule_false(
    context: dict[str, Any], path: str, op: str, value: Any
) -> None:
    assert holds(context, path, op, value) is False


@pytest.mark.parametrize("op", sorted(set(OPERATORS) - {"not_exists"}))
def test_a_missing_path_only_satisfies_not_exists(context: dict[str, Any], op: str) -> None:
    for path in ("event.nothing", "event.project.owner.id", "event.tagIds.9", "settings.none"):
        assert holds(context, path, op, "x") is False
        assert holds(context, path, "not_exists") is True


def test_exists_means_present_and_not_null(context: dict[str, Any]) -> None:
    assert holds(context, "event.project.id", "exists") is True
    assert holds(context, "event.billable", "exists") is True
    assert holds(context, "event.hourlyRate", "exists") is False
    assert holds(context, "event.hourlyRate", "not_exists") is True


def test_a_value_template_with_a_missing_path_makes_the_rule_false(
    context: dict[str, Any],
) -> None:
    result = judge(Rule(path="event.amount", op="gt", value="{{ settings.absent }}"), context)

    assert result.outcome is False
    assert result.reason is not None
    assert "settings has no key 'absent'" in result.reason


def test_a_malformed_or_secret_path_makes_the_rule_false_without_raising(
    context: dict[str, Any],
) -> None:
    assert holds(context, "event..id", "exists") is False
    assert holds(context, "settings.apiToken", "not_exists") is False


@pytest.mark.parametrize(
    ("mode", "outcomes", "expected"),
    [
        ("all", [True, True], True),
        ("all", [True, False], False),
        ("any", [False, True], True),
        ("any", [False, False], False),
        ("all", [], True),
        ("any", [], True),
    ],
)
def test_modes_combine_the_rules(
    context: dict[str, Any], mode: str, outcomes: list[bool], expected: bool
) -> None:
    rules = [{"path": "event.billable", "op": "eq", "value": outcome} for outcome in outcomes]
    conditions = Conditions.model_validate({"mode": mode, "rules": rules})

    assert evaluate(conditions, context) is expected
    assert explain(conditions, context).outcome is expected


def test_explain_reports_every_rule_with_the_values_it_compared(
    context: dict[str, Any],
) -> None:
    conditions = Conditions.model_validate(
        {
            "mode": "any",
            "rules": [
                {"path": "event.description", "op": "contains", "value": "{{ settings.keyword }}"},
                {"path": "event.project.owner", "op": "eq", "value": "Ann"},
            ],
        }
    )

    explanation = explain(conditions, context)

    assert explanation.as_dict() == {
        "mode": "any",
        "outcome": True,
        "rules": [
            {
                "path": "event.description",
                "op": "contains",
                "exists": True,
                "left": "Weekly meeting with Ann",
                "value": "meeting",
                "outcome": True,
                "reason": None,
            },
            {
                "path": "event.project.owner",
                "op": "eq",
                "exists": False,
                "left": None,
                "value": "Ann",
                "outcome": False,
                "reason": "the path is missing",
            },
        ],
    }


def test_the_default_conditions_pass_every_event(context: dict[str, Any]) -> None:
    conditions = Conditions()

    assert conditions.model_dump(mode="json") == {"mode": "all", "rules": []}
    assert evaluate(conditions, context) is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT1H30M", 5400),
        ("P1D", 86400),
        ("P1DT2H", 93600),
        ("P2W", 1209600),
        ("PT0S", 0),
        ("PT1.5S", 1.5),
    ],
)
def test_iso_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["P", "PT", "P1Y", "P1M", "PT1H30", "1H", "pt1h", "P1DT", ""])
def test_malformed_or_calendar_durations_are_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_a_very_long_subject_is_only_searched_in_its_head(context: dict[str, Any]) -> None:
    long_context = make_context(
        event={"text": "a" * 20_000 + "needle"},
        event_type="NEW_TAG",
        workspace_id="ws-1",
        settings={},
    )

    assert holds(long_context, "event.text", "matches", "needle") is False
    assert holds(long_context, "event.text", "matches", "^a+") is True


# --- save-time checks ---------------------------------------------------------------------


def test_check_conditions_reports_each_rule_problem_at_its_field() -> None:
    raw = {
        "mode": "all",
        "rules": [
            {"path": "event.description", "op": "matches", "value": "(unclosed"},
            {"path": "event..id", "op": "eq", "value": 1},
            {"path": "{{ event.id }}", "op": "eq", "value": 1},
            {"path": "actions.first.status", "op": "eq", "value": 200},
            {"path": "event.id", "op": "eq", "value": "{{ actions.first.body.id }}"},
            {"path": "event.id", "op": "in", "value": "p-1"},
            {"path": "event.id", "op": "starts_with", "value": 5},
            {"path": "event.amount", "op": "gt", "value": [1]},
            {"path": "event.id", "op": "matches", "value": "x" * (MAX_PATTERN_LENGTH + 1)},
            {"path": "settings.apiToken", "op": "exists"},
            {"path": "event.id", "op": "eq", "value": "{{ event.id"},
        ],
    }

    issues = {(issue.field, issue.message.split(":")[0]) for issue in check_conditions(raw)}

    assert {field for field, _ in issues} == {
        "conditions.rules[0].value",
        "conditions.rules[1].path",
        "conditions.rules[2].path",
        "conditions.rules[3].path",
        "conditions.rules[4].value",
        "conditions.rules[5].value",
        "conditions.rules[6].value",
        "conditions.rules[7].value",
        "conditions.rules[8].value",
        "conditions.rules[9].path",
        "conditions.rules[10].value",
    }


def test_check_conditions_accepts_good_rules_and_templated_values() -> None:
    raw = {
        "rules": [
            {"path": "event.description", "op": "contains", "value": "meeting"},
            {"path": "event.tagIds[0]", "op": "in", "value": "{{ settings.tags }}"},
            {"path": "event.description", "op": "matches", "value": "{{ settings.pattern }}"},
            {"path": "event.projectId", "op": "exists"},
            {"path": "eventType", "op": "eq", "value": "NEW_TIME_ENTRY"},
        ]
    }

    assert check_conditions(raw) == []


def test_check_conditions_leaves_shape_errors_to_the_schema() -> None:
    assert check_conditions(None) == []
    assert check_conditions({"rules": "all"}) == []
    assert check_conditions({"rules": [5, {"op": "eq"}]}) == []


# --- linear-time matching -----------------------------------------------------------------


def context_of(event: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return make_context(
        event=event, event_type="NEW_TIME_ENTRY", workspace_id="ws-1", settings=settings or {}
    )


def test_a_catastrophic_pattern_is_matched_in_linear_time() -> None:
    # With a backtracking engine `^(a+)+$` against "aaa...!" takes 2^n steps: 40 characters
    # alone would hold the loop for days; RE2 answers at once for the whole bounded subject.
    context = context_of({"description": "a" * (MAX_MATCH_INPUT - 1) + "!"})

    assert holds(context, "event.description", "matches", "^(a+)+$") is False
    assert holds(context, "event.description", "matches", "^(a+)+!$") is True


def test_a_subject_is_matched_up_to_the_bound_only() -> None:
    context = context_of({"description": "a" * MAX_MATCH_INPUT + "tail"})

    assert holds(context, "event.description", "matches", "^a+$") is True
    assert holds(context, "event.description", "matches", "tail") is False


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        (r"(a)\1", "backreferences"),
        (r"foo(?=bar)", "lookaround"),
        (r"(?<=x)y", "lookaround"),
        ("(unclosed", "missing )"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_at_save_saying_why(pattern: str, hint: str) -> None:
    raw = {"rules": [{"path": "event.description", "op": "matches", "value": pattern}]}

    [issue] = check_conditions(raw)

    assert issue.field == "conditions.rules[0].value"
    assert issue.message.startswith("invalid regular expression")
    assert hint in issue.message
    assert "RE2" in issue.message


def test_a_templated_pattern_re2_refuses_makes_the_rule_false() -> None:
    context = context_of({"description": "aa"}, {"pattern": r"(a)\1"})

    result = judge(
        Rule(path="event.description", op="matches", value="{{ settings.pattern }}"), context
    )

    assert result.outcome is False
    assert result.reason == "the value is not a valid regular expression"
