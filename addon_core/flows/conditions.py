"""Flow conditions: rules of `path op value` over the template context, joined by all or any.

Comparisons are type-aware: numbers (numeric text included), ISO-8601 instants and durations,
then text; booleans only by equality. A missing path never raises: only `not_exists` holds.

`matches` runs on RE2 (`google-re2`), whose time is linear in the subject: with the pattern
and the subject both bounded, a match cannot hold the event loop however the pattern is
written (no catastrophic backtracking). RE2 has no backreferences or lookaround; such a
pattern is refused at save with a message saying so. The comparisons and the RE2 patterns
are in `comparison`; this module owns rules, their evaluation and their save-time checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.flows.comparison import (  # re-exported: the limits a rule is held to
    MAX_MATCH_INPUT as MAX_MATCH_INPUT,
)
from addon_core.flows.comparison import (
    MAX_PATTERN_LENGTH as MAX_PATTERN_LENGTH,
)
from addon_core.flows.comparison import compare, json_type, pattern_problem
from addon_core.flows.templates import (
    MISSING,
    TemplateError,
    check_template,
    is_templated,
    lookup,
    parse,
    parse_path,
    render,
)

Operator = Literal[
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
]
OPERATORS: Final[tuple[str, ...]] = get_args(Operator)
Mode = Literal["all", "any"]
MAX_RULES: Final = 50

_ORDERED = frozenset({"gt", "gte", "lt", "lte"})
_TEXT_ONLY = frozenset({"starts_with", "ends_with", "matches"})


class Rule(BaseModel):
    """One rule: the value at `path` compared by `op` with `value` (which may be a template)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = Field(min_length=1, max_length=500)
    op: Operator
    value: Any = None


class Conditions(BaseModel):
    """The rules a flow's event must pass; no rules always pass."""

    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Mode = "all"
    rules: list[Rule] = Field(default_factory=list, max_length=MAX_RULES)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """How one rule fared: the value found at its path, the value compared with, the outcome."""

    path: str
    op: str
    exists: bool
    left: Any
    value: Any
    outcome: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "op": self.op,
            "exists": self.exists,
            "left": self.left,
            "value": self.value,
            "outcome": self.outcome,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Every rule's result and the combined outcome, for a dry run."""

    mode: str
    outcome: bool
    rules: tuple[RuleResult, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "outcome": self.outcome,
            "rules": [rule.as_dict() for rule in self.rules],
        }


def evaluate(conditions: Conditions, context: Mapping[str, Any]) -> bool:
    """Tell whether the context passes the conditions (no rules: it does)."""
    if not conditions.rules:
        return True
    results = (judge(rule, context).outcome for rule in conditions.rules)
    return all(results) if conditions.mode == "all" else any(results)


def explain(conditions: Conditions, context: Mapping[str, Any]) -> Explanation:
    """Judge every rule (no short cut) and say what each found."""
    results = tuple(judge(rule, context) for rule in conditions.rules)
    if not results:
        outcome = True
    elif conditions.mode == "all":
        outcome = all(result.outcome for result in results)
    else:
        outcome = any(result.outcome for result in results)
    return Explanation(conditions.mode, outcome, results)


def judge(rule: Rule, context: Mapping[str, Any]) -> RuleResult:
    """Judge one rule; a missing path or an unrenderable value makes it false, never raises."""
    try:
        left = lookup(parse_path(rule.path), context)
    except TemplateError as exc:
        return RuleResult(rule.path, rule.op, False, None, rule.value, False, exc.detail)
    exists = left is not MISSING and left is not None
    shown = None if left is MISSING else left
    try:
        value = render(rule.value, context, field="value")
    except TemplateError as exc:
        return RuleResult(rule.path, rule.op, exists, shown, rule.value, False, exc.detail)
    if rule.op == "exists":
        return RuleResult(rule.path, rule.op, exists, shown, value, exists)
    if rule.op == "not_exists":
        return RuleResult(rule.path, rule.op, exists, shown, value, not exists)
    if left is MISSING:
        return RuleResult(rule.path, rule.op, False, None, value, False, "the path is missing")
    outcome, reason = compare(rule.op, left, value)
    return RuleResult(rule.path, rule.op, exists, shown, value, outcome, reason)


# --- save-time checks ---------------------------------------------------------------------


def check_conditions(raw: Any, *, field: str = "conditions") -> list[ValidationIssue]:
    """List what is wrong with conditions as stored JSON: paths, values, patterns.

    Shape errors (an unknown `op`, a missing `path`) are the schema's to report; this looks
    at what the schema cannot: paths and templates parse, `actions` is not referenced
    (conditions run before any action), list and text operators get lists and text.
    """
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if not isinstance(rules, list):
        return []
    issues: list[ValidationIssue] = []
    for index, rule in enumerate(rules):
        if isinstance(rule, dict):
            issues.extend(check_rule(rule, field=f"{field}.rules[{index}]"))
    return issues


def check_rule(rule: Mapping[str, Any], *, field: str) -> list[ValidationIssue]:
    """List the save-time problems of one rule given as JSON."""
    issues: list[ValidationIssue] = []
    path, op, value = rule.get("path"), rule.get("op"), rule.get("value")
    if isinstance(path, str) and path:
        issues.extend(_path_issues(path, f"{field}.path"))
    issues.extend(check_template(value, field=f"{field}.value", actions=()))
    if not isinstance(op, str) or is_templated(value):
        return issues  # a templated value is checked when rendered
    message = _value_problem(op, value)
    if message:
        issues.append(ValidationIssue(f"{field}.value", message))
    return issues


def _path_issues(path: str, field: str) -> list[ValidationIssue]:
    try:
        parsed = parse_path(path)
    except TemplateError as exc:
        hint = ""
        if path.startswith("{{"):
            hint = " (write the path without braces: event.description)"
            try:
                parse(path)
            except TemplateError as inner:
                return [ValidationIssue(field, inner.detail + hint)]
        return [ValidationIssue(field, exc.detail + hint)]
    if parsed.root == "actions":
        return [ValidationIssue(field, "conditions are evaluated before any action runs")]
    return []


def _value_problem(op: str, value: Any) -> str | None:
    if op in ("in", "not_in") and not isinstance(value, list):
        return f"{op} needs a list of values, got {json_type(value)}"
    if op in _TEXT_ONLY and not isinstance(value, str):
        return f"{op} needs text, got {json_type(value)}"
    if op == "matches":
        return pattern_problem(value)
    if op in _ORDERED and (value is None or isinstance(value, bool | list | dict)):
        return f"{op} needs a number, a date, a duration or text, got {json_type(value)}"
    return None
