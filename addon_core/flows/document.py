"""The flow document a user stores: its pydantic models and its full validation at save time.

`validate_flow` reports every problem at once, each with the field it sits in
(`actions[1].params.projectId`), and returns the canonical document otherwise.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from addon_core.clockify.catalogue import WORKSPACE_PARAM, Catalogue, UnknownOperationError
from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import UnprocessableError
from addon_core.flows.conditions import Conditions, check_conditions
from addon_core.flows.render_budget import TemplateLimits
from addon_core.flows.templates import (
    check_static_size,
    check_template,
    templated_fields,
)

ACTION_ID_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
MAX_ACTIONS: Final = 20
ACTION_TYPES: Final = ("clockify", "http")
HTTP_METHODS: Final = ("POST", "PUT", "PATCH", "DELETE", "GET")

# RFC 9110 token characters: anything else cannot be a header name.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Discriminated unions put the tag into pydantic's error location; fields never say it.
_UNION_FIELDS = {"trigger": "source", "actions": "type"}
_UNION_TAGS = frozenset({"clockify", "custom", "http"})
_TOP_LEVEL = ("name", "enabled", "trigger", "conditions", "actions")
_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
    "union_tag_not_found": "required",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


EventName = Annotated[str, Field(min_length=1, max_length=200)]
ActionId = Annotated[str, Field(pattern=ACTION_ID_PATTERN)]


class ClockifyTrigger(_Model):
    """Run on Clockify webhook events of these types."""

    source: Literal["clockify"]
    events: list[EventName] = Field(min_length=1, max_length=100)


class CustomTrigger(_Model):
    """Run on events received at one of the workspace's custom inbound endpoints."""

    source: Literal["custom"]
    events: list[EventName] = Field(min_length=1, max_length=100)
    endpoint: str = Field(min_length=1, max_length=200)


class ClockifyAction(_Model):
    """Call one Clockify operation; `params` and `body` may hold templates."""

    id: ActionId
    type: Literal["clockify"]
    operation: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    body: Any = None


class HttpAction(_Model):
    """Send an HTTP request (Universal Webhook only); url, header values and body may template."""

    id: ActionId
    type: Literal["http"]
    method: Literal["POST", "PUT", "PATCH", "DELETE", "GET"]
    url: str = Field(min_length=1, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = None


Trigger = Annotated[ClockifyTrigger | CustomTrigger, Field(discriminator="source")]
Action = Annotated[ClockifyAction | HttpAction, Field(discriminator="type")]


class FlowDocument(_Model):
    """A flow: when it runs (trigger, conditions) and what it does (actions, in order)."""

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    trigger: Trigger
    conditions: Conditions = Field(default_factory=Conditions)
    actions: list[Action] = Field(default_factory=list, max_length=MAX_ACTIONS)


class FlowValidationError(UnprocessableError):
    """A flow document has problems; `extra["errors"]` lists every one with its field."""

    def __init__(self, issues: Sequence[ValidationIssue]) -> None:
        first = issues[0]
        more = len(issues) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        message = " ".join(first.message.split())
        super().__init__(
            f"invalid flow: {first.field}: {message}{tail}",
            extra={"errors": [{"field": i.field, "message": i.message} for i in issues]},
        )
        self.issues = tuple(issues)


def validate_flow(
    document: Any,
    *,
    catalogue: Catalogue,
    event_types: Collection[str],
    endpoints: Collection[str],
    action_types: Collection[str],
    workspace_id: str | None = None,
    limits: TemplateLimits | None = None,
) -> FlowDocument:
    """Check a flow document in full; raise `FlowValidationError` listing every problem."""
    flow: FlowDocument | None = None
    try:
        flow = FlowDocument.model_validate(document)
    except ValidationError as exc:
        issues = _schema_issues(exc)
    else:
        issues = []
    # The rest reads the raw JSON, so its problems are found even when the schema fails.
    if isinstance(document, dict):
        issues.extend(_trigger_issues(document.get("trigger"), event_types, endpoints))
        issues.extend(check_conditions(document.get("conditions")))
        issues.extend(
            _actions_issues(document.get("actions"), catalogue, action_types, workspace_id)
        )
        issues.extend(_size_issues(document.get("actions"), limits or TemplateLimits()))
    unique = sorted(dict.fromkeys(issues), key=_position)
    if unique or flow is None:
        raise FlowValidationError(unique or [ValidationIssue("document", "not a flow document")])
    return flow


def _schema_issues(exc: ValidationError) -> list[ValidationIssue]:
    issues = []
    for error in exc.errors(include_url=False, include_input=False):
        location = list(error["loc"])
        if len(location) > 1 and location[0] in _UNION_FIELDS:
            tag_at = 1 if location[0] == "trigger" else 2
            if len(location) > tag_at and location[tag_at] in _UNION_TAGS:
                del location[tag_at]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            location.append(_UNION_FIELDS[str(location[0])])
        message = _MESSAGES.get(error["type"], error["msg"])
        issues.append(ValidationIssue(_field(location), message))
    return issues


def _position(issue: ValidationIssue) -> tuple[int, int]:
    """Order issues as the document reads: by top-level key, then by action or rule index."""
    top = re.match(r"[A-Za-z]+", issue.field)
    rank = _TOP_LEVEL.index(top[0]) if top and top[0] in _TOP_LEVEL else -1
    index = re.search(r"\[([0-9]+)\]", issue.field)
    return rank, int(index[1]) if index else -1


def _field(location: Sequence[int | str]) -> str:
    field = ""
    for step in location:
        if isinstance(step, int):
            field += f"[{step}]"
        else:
            field = f"{field}.{step}" if field else step
    return field or "document"


def _trigger_issues(
    trigger: Any, event_types: Collection[str], endpoints: Collection[str]
) -> list[ValidationIssue]:
    if not isinstance(trigger, dict):
        return []
    issues = []
    events = trigger.get("events")
    seen: set[str] = set()
    for index, event in enumerate(events if isinstance(events, list) else []):
        if not isinstance(event, str):
            continue
        field = f"trigger.events[{index}]"
        if event in seen:
            issues.append(ValidationIssue(field, f"{event} is listed twice"))
        seen.add(event)
        if trigger.get("source") == "clockify" and event not in event_types:
            issues.append(
                ValidationIssue(field, _unknown(event, "Clockify event type", event_types))
            )
    endpoint = trigger.get("endpoint")
    custom = trigger.get("source") == "custom"
    if custom and isinstance(endpoint, str) and endpoint and endpoint not in endpoints:
        issues.append(
            ValidationIssue("trigger.endpoint", _unknown(endpoint, "custom endpoint", endpoints))
        )
    return issues


def _unknown(name: str, what: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"unknown {what} {name!r}{hint}"


def _actions_issues(
    actions: Any, catalogue: Catalogue, action_types: Collection[str], workspace_id: str | None
) -> list[ValidationIssue]:
    if not isinstance(actions, list):
        return []
    issues: list[ValidationIssue] = []
    earlier: dict[str, int] = {}
    for index, action in enumerate(actions):
        if not isinstance(action, dict):
            continue
        field = f"actions[{index}]"
        kind = action.get("type")
        if kind in ACTION_TYPES and kind not in action_types:
            allowed = ", ".join(sorted(action_types)) or "none"
            issues.append(
                ValidationIssue(
                    f"{field}.type", f"{kind} actions are not available here; allowed: {allowed}"
                )
            )
        templated = ("params", "body") if kind == "clockify" else ("url", "headers", "body")
        for key in templated:
            issues.extend(check_template(action.get(key), field=f"{field}.{key}", actions=earlier))
        if kind == "clockify":
            issues.extend(_clockify_issues(action, field, catalogue, workspace_id))
        elif kind == "http":
            issues.extend(_http_issues(action, field))
        action_id = action.get("id")
        if isinstance(action_id, str):
            if action_id in earlier:
                issues.append(
                    ValidationIssue(
                        f"{field}.id",
                        f"{action_id!r} is already the id of actions[{earlier[action_id]}]",
                    )
                )
            else:
                earlier[action_id] = index
    return issues


def _size_issues(actions: Any, limits: TemplateLimits) -> list[ValidationIssue]:
    """Refuse at save what no event can make smaller: literal text past the render limits."""
    issues: list[ValidationIssue] = []
    for index, action in enumerate(actions if isinstance(actions, list) else ()):
        if not isinstance(action, dict):
            continue
        total, before = 0, len(issues)
        for key in ("url", "headers", "params", "body"):
            found, size = check_static_size(
                action.get(key), limits, field=f"actions[{index}].{key}"
            )
            issues.extend(found)
            total += size
        if total > limits.request and len(issues) == before:
            issues.append(
                ValidationIssue(
                    f"actions[{index}]",
                    f"the action's text is {total} characters; one request may hold at most "
                    f"{limits.request} (docs/configuration.md)",
                )
            )
    return issues


def _clockify_issues(
    action: dict[str, Any], field: str, catalogue: Catalogue, workspace_id: str | None
) -> list[ValidationIssue]:
    operation_id, params, body = (
        action.get("operation"),
        action.get("params", {}),
        action.get("body"),
    )
    if not isinstance(operation_id, str) or not operation_id:
        return []
    try:
        catalogue.get(operation_id)
    except UnknownOperationError as exc:
        return [ValidationIssue(f"{field}.operation", exc.detail)]
    if not isinstance(params, dict):
        return []
    if workspace_id is None:
        # No installation to fill it from: take the given one (bind checks it later) or any.
        supplied = params.get(WORKSPACE_PARAM)
        workspace_id = supplied if isinstance(supplied, str) and supplied else "installation"
    # A templated value can only be checked once rendered: drop what is said at or under it.
    unchecked = templated_fields(params, field="params") + templated_fields(body, field="body")
    return [
        ValidationIssue(f"{field}.{issue.field}", issue.message)
        for issue in catalogue.validate(operation_id, params, body, workspace_id=workspace_id)
        if not any(_within(issue.field, where) for where in unchecked)
    ]


def _within(field: str, parent: str) -> bool:
    return field == parent or field.startswith((f"{parent}.", f"{parent}["))


def _http_issues(action: dict[str, Any], field: str) -> list[ValidationIssue]:
    issues = []
    url = action.get("url")
    if isinstance(url, str) and url:
        literal = url.split("{{", 1)[0]
        if literal and not literal.lower().startswith(("http://", "https://")):
            issues.append(
                ValidationIssue(f"{field}.url", "the URL must start with http:// or https://")
            )
    headers = action.get("headers")
    for name, value in headers.items() if isinstance(headers, dict) else ():
        if not _HEADER_NAME.fullmatch(name):
            issues.append(ValidationIssue(f"{field}.headers.{name}", "not a valid header name"))
        if isinstance(value, str) and ("\r" in value or "\n" in value):
            issues.append(
                ValidationIssue(
                    f"{field}.headers.{name}", "a header value cannot hold a line break"
                )
            )
    return issues
