"""Flow templates: `{{ path }}` placeholders over an event's JSON context, checked and filled.

A placeholder is a dotted path (`event.timeInterval.start`, `event.tagIds.0` or
`event.tagIds[0]`) from one of five roots: `event`, `eventType`, `workspace` (`id`),
`settings` (setting id -> value) and `actions` (`<id>` -> `status`, `body`). Nothing else is
evaluated (no filters, expressions or attribute access: only dict keys and list indexes over
JSON data), so a template never runs code. Tokens and secrets cannot be reached: the engine
never puts one in the context, a path with a secret-sounding segment (`settings.apiToken`, per
`addon_core.redaction.is_secret_key`) is refused at save and at render, and values under secret
keys inside a rendered object are masked.

Rendering is bounded (`addon_core.flows.render_budget`): sizes are checked piece by piece
before anything is joined or copied, so a template cannot make the add-on allocate more
than the limit, and the work is linear in what is kept: rendering stays on the event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import UnprocessableError
from addon_core.flows.render_budget import (
    OverBudgetError,
    RenderBudget,
    TemplateLimits,
    json_size,
)
from addon_core.redaction import MASK, MAX_DEPTH, TOO_DEEP, is_secret_key

ROOTS: Final = ("event", "eventType", "workspace", "settings", "actions")
ACTION_RESULT_KEYS: Final = ("status", "body")

_OPEN = "{{"
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
# A root, then `.key` or `[index]` steps; keys are ASCII so nothing reads as an expression.
_PATH = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_$@:-]+|\[[0-9]{1,9}\])*)")
_STEP = re.compile(r"\.([A-Za-z0-9_$@:-]+)|\[([0-9]{1,9})\]")
_PATH_HINT = "expected dotted keys from a root, such as event.timeInterval.start or event.tagIds.0"


class TemplateError(UnprocessableError):
    """A template is malformed, reaches for a secret, or names a path the context lacks."""

    def __init__(self, detail: str, *, field: str = "", placeholder: str | None = None) -> None:
        super().__init__(detail, extra={"field": field, "placeholder": placeholder})
        self.field = field
        self.placeholder = placeholder


class TemplateSizeError(TemplateError):
    """A rendered value, or all of one request's, would pass its size limit."""


class _Missing:
    """The value of a path that leads nowhere."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class ContextPath:
    """A parsed path: its root and the steps after it (`[0]` steps are ints)."""

    text: str
    root: str
    steps: tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One `{{ path }}` as written in a template, with its parsed path."""

    text: str
    path: ContextPath


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed string: literal text and placeholders in order; `whole` when it is one."""

    parts: tuple[str | Placeholder, ...]
    #: the placeholder when the string is exactly one (its value keeps its JSON type)
    whole: Placeholder | None

    @property
    def placeholders(self) -> tuple[Placeholder, ...]:
        return tuple(part for part in self.parts if isinstance(part, Placeholder))


def parse_path(text: str) -> ContextPath:
    """Parse a dotted context path; raise `TemplateError` if malformed, unknown or secret."""
    match = _PATH.fullmatch(text)
    if match is None:
        raise TemplateError(f"malformed path {text!r}: {_PATH_HINT}", placeholder=text)
    root = match[1]
    if root not in ROOTS:
        raise TemplateError(
            f"unknown root {root!r} in {text!r}; known: {', '.join(ROOTS)}", placeholder=text
        )
    steps = tuple(
        int(step[2]) if step[2] is not None else step[1] for step in _STEP.finditer(match[2])
    )
    _check_shape(text, root, steps)
    for position, step in enumerate(steps):
        # An action id is a name the user chose, not data; every other key is checked.
        named_action = root == "actions" and position == 0
        if isinstance(step, str) and is_secret_key(step) and not named_action:
            raise TemplateError(
                f"{text!r} refers to {step!r}, which looks like a secret: templates cannot "
                "reach tokens or secrets",
                placeholder=text,
            )
    return ContextPath(text, root, steps)


def _check_shape(text: str, root: str, steps: tuple[str | int, ...]) -> None:
    problem = None
    if root == "eventType" and steps:
        problem = "eventType is the event type's name and has no fields"
    elif root == "workspace" and steps not in ((), ("id",)):
        problem = "workspace has only id"
    elif root == "actions" and len(steps) >= 2 and steps[1] not in ACTION_RESULT_KEYS:
        problem = "an action's result has only status and body"
    elif root == "actions" and len(steps) > 2 and steps[1] == "status":
        problem = "an action's status is a number and has no fields"
    elif root == "actions" and steps and not isinstance(steps[0], str):
        problem = "actions are named by their id, not by position"
    if problem:
        raise TemplateError(f"{text!r}: {problem}", placeholder=text)


@lru_cache(maxsize=4096)
def parse(text: str) -> Template:
    """Parse a template string; raise `TemplateError` naming its first problem."""
    parts: list[str | Placeholder] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        _add_literal(parts, text[position : match.start()])
        inner = match[1].strip()
        if not inner:
            raise TemplateError(f"empty placeholder {match[0]!r}", placeholder=match[0])
        try:
            path = parse_path(inner)
        except TemplateError as exc:
            raise TemplateError(f"in {match[0]!r}: {exc.detail}", placeholder=match[0]) from None
        parts.append(Placeholder(match[0], path))
        position = match.end()
    _add_literal(parts, text[position:])
    whole = parts[0] if len(parts) == 1 and isinstance(parts[0], Placeholder) else None
    return Template(tuple(parts), whole)


def _add_literal(parts: list[str | Placeholder], literal: str) -> None:
    if _OPEN in literal:
        start = literal.index(_OPEN)
        excerpt = literal[start : start + 40]
        raise TemplateError(f"unterminated placeholder {excerpt!r}: close it with }}}}")
    if literal:
        parts.append(literal)


def is_templated(value: Any) -> bool:
    """Tell whether a JSON value holds a string with a placeholder (`{{`) anywhere."""
    return any(_OPEN in text for _, text in _strings(value, ""))


def templated_fields(value: Any, *, field: str = "") -> list[str]:
    """List the fields (`body.tagIds[0]`) whose string value holds a placeholder."""
    return [where for where, text in _strings(value, field) if _OPEN in text]


def find_placeholders(value: Any, *, field: str = "") -> list[tuple[str, Placeholder]]:
    """List every well-formed placeholder of a JSON value with the field it sits in."""
    found: list[tuple[str, Placeholder]] = []
    for where, text in _strings(value, field):
        if _OPEN in text:
            try:
                found.extend((where, placeholder) for placeholder in parse(text).placeholders)
            except TemplateError:
                continue  # check_template reports it
    return found


def check_template(
    value: Any, *, field: str = "", actions: Collection[str] | None = None
) -> list[ValidationIssue]:
    """List the template problems of a JSON value, for save-time validation.

    With `actions` (the ids of the actions that run before this value is rendered),
    `actions.<id>` must name one of them.
    """
    issues: list[ValidationIssue] = []
    for where, text in _strings(value, field):
        if _OPEN not in text:
            continue
        try:
            template = parse(text)
        except TemplateError as exc:
            issues.append(ValidationIssue(where, exc.detail))
            continue
        if actions is None:
            continue
        for placeholder in template.placeholders:
            path = placeholder.path
            if path.root == "actions" and path.steps and path.steps[0] not in actions:
                earlier = ", ".join(sorted(actions)) or "none"
                issues.append(
                    ValidationIssue(
                        where,
                        f"{placeholder.text} refers to action {path.steps[0]!r}, which does not "
                        f"run before this point; earlier actions: {earlier}",
                    )
                )
    return issues


def check_static_size(
    value: Any, limits: TemplateLimits, *, field: str = ""
) -> tuple[list[ValidationIssue], int]:
    """List the strings whose literal text alone passes the value limit; return the total.

    What a placeholder adds is known only at render; the literal part is known at save.
    """
    issues: list[ValidationIssue] = []
    total = 0
    for where, text in _strings(value, field):
        size = len(text)
        if _OPEN in text:
            try:
                size = sum(len(part) for part in parse(text).parts if isinstance(part, str))
            except TemplateError:
                continue  # check_template reports it
        total += size
        if size > limits.value:
            issues.append(
                ValidationIssue(
                    where,
                    f"the text is {size} characters; one rendered value may hold at most "
                    f"{limits.value} (docs/configuration.md)",
                )
            )
    return issues, total


def _strings(value: Any, field: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield field, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, _key_field(field, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{field}[{index}]")


def _key_field(field: str, key: Any) -> str:
    return f"{field}.{key}" if field else str(key)


def make_context(
    *,
    event: Any,
    event_type: str,
    workspace_id: str,
    settings: Mapping[str, Any],
    actions: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the render context; `actions` maps an action id to `{"status", "body"}`."""
    return {
        "event": event,
        "eventType": event_type,
        "workspace": {"id": workspace_id},
        "settings": dict(settings),
        "actions": {
            key: {"status": result.get("status"), "body": result.get("body")}
            for key, result in (actions or {}).items()
        },
    }


def lookup(path: ContextPath, context: Mapping[str, Any]) -> Any:
    """Return the value at path in the context, or `MISSING`; only dicts and lists are entered."""
    current = context.get(path.root, MISSING)
    for step in path.steps:
        if isinstance(current, dict):
            current = current.get(step if isinstance(step, str) else str(step), MISSING)
        elif isinstance(current, list):
            index = step if isinstance(step, int) else int(step) if step.isdigit() else len(current)
            current = current[index] if index < len(current) else MISSING
        else:
            return MISSING
    return current


def _why_missing(path: ContextPath, context: Mapping[str, Any]) -> str:
    """Say where a path stops leading anywhere (the slow path, for the error message)."""
    if path.root not in context:
        return f"the context has no {path.root}"
    current = context[path.root]
    walked = path.root
    for step in path.steps:
        if isinstance(current, dict):
            key = step if isinstance(step, str) else str(step)
            if key not in current:
                return f"{walked} has no key {key!r}"
            current, walked = current[key], f"{walked}.{key}"
        elif isinstance(current, list):
            if isinstance(step, str) and not step.isdigit():
                return f"{walked} is a list: use an index, not {step!r}"
            index = int(step)
            if index >= len(current):
                return f"{walked} has {len(current)} items, none at index {index}"
            current, walked = current[index], f"{walked}[{index}]"
        else:
            return f"{walked} is {_kind(current)}, which has no {step!r}"
    return "it leads nowhere"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "not JSON"


def render(
    value: Any,
    context: Mapping[str, Any],
    *,
    field: str = "",
    budget: RenderBudget | None = None,
) -> Any:
    """Fill every placeholder of a JSON value; raise `TemplateError` naming the field.

    A string that is exactly one placeholder becomes the value it names, keeping its JSON
    type; placeholders in a longer string are formatted into it (text as is, anything else
    as compact JSON). A missing path is an error, never an empty string. `field` names the
    value in messages (`body` gives `body.description`). `budget` bounds the rendered size
    (a fresh default one when None); a value past it raises `TemplateSizeError`.
    """
    try:
        return _render(value, context, budget or RenderBudget())
    except (_Unfilled, OverBudgetError) as exc:
        where = field
        for step in reversed(exc.steps):
            where = f"{where}[{step}]" if isinstance(step, int) else _key_field(where, step)
        message = f"{where}: {exc.message}" if where else exc.message
        if isinstance(exc, OverBudgetError):
            raise TemplateSizeError(message, field=where) from None
        raise TemplateError(message, field=where, placeholder=exc.placeholder) from None


class _Unfilled(Exception):
    """A placeholder that could not be filled; the steps to it are gathered on the way out."""

    def __init__(self, message: str, placeholder: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.placeholder = placeholder
        self.steps: list[str | int] = []


def _render(value: Any, context: Mapping[str, Any], budget: RenderBudget) -> Any:
    # The hot path: field names are only worked out when something fails.
    if isinstance(value, str):
        if _OPEN in value:
            return _render_text(value, context, budget)
        budget.charge(len(value))
        return value
    if isinstance(value, dict):
        rendered = {}
        for key, item in value.items():
            try:
                rendered[key] = _render(item, context, budget)
            except (_Unfilled, OverBudgetError) as exc:
                exc.steps.append(key)
                raise
        return rendered
    if isinstance(value, list):
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_render(item, context, budget))
            except (_Unfilled, OverBudgetError) as exc:
                exc.steps.append(index)
                raise
        return items
    return value


def _render_text(text: str, context: Mapping[str, Any], budget: RenderBudget) -> Any:
    try:
        template = parse(text)
    except TemplateError as exc:
        raise _Unfilled(exc.detail, exc.placeholder) from None
    whole = template.whole
    if whole is not None:
        value = _fill(whole, context)
        budget.charge(json_size(value, budget.room))
        return _mask_secrets(value) if isinstance(value, dict | list) else value
    # Measure every piece before joining: the string built is never over the budget.
    pieces: list[str] = []
    size = 0
    for part in template.parts:
        if isinstance(part, str):
            piece = part
        else:
            value = _fill(part, context)
            if not isinstance(value, str) and json_size(value, budget.room) > budget.room - size:
                budget.charge(budget.room + 1)  # raises, naming the limit passed
            piece = _format(_mask_secrets(value) if isinstance(value, dict | list) else value)
        size += len(piece)
        if size > budget.room:
            budget.charge(size)
        pieces.append(piece)
    budget.charge(size)
    return "".join(pieces)


def _fill(placeholder: Placeholder, context: Mapping[str, Any]) -> Any:
    value = lookup(placeholder.path, context)
    if value is MISSING:
        why = _why_missing(placeholder.path, context)
        raise _Unfilled(f"{placeholder.text} cannot be filled: {why}", placeholder.path.text)
    return value


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _mask_secrets(value: Any, depth: int = 0) -> Any:
    """Copy a JSON value with the values under secret keys masked (a whole `{{ settings }}`).

    Parts deeper than redaction's bound become its marker, as when the value is shown.
    """
    if isinstance(value, dict | list) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        return {
            key: MASK
            if isinstance(key, str) and is_secret_key(key)
            else _mask_secrets(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_secrets(item, depth + 1) for item in value]
    return value
