"""Flow template syntax: `{{ path }}` placeholders parsed, and checked at save (roots, secrets).

What a template may say lives here; filling it from an event's context lives in
`addon_core.flows.templates`, which re-exports these names for its callers.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.errors import UnprocessableError
from addon_core.flows.render_budget import TemplateLimits
from addon_core.redaction import is_secret_key

ROOTS: Final = ("event", "eventType", "workspace", "settings", "actions")
ACTION_RESULT_KEYS: Final = ("status", "body")

OPEN: Final = "{{"  # a string without it is no template
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
    if OPEN in literal:
        start = literal.index(OPEN)
        excerpt = literal[start : start + 40]
        raise TemplateError(f"unterminated placeholder {excerpt!r}: close it with }}}}")
    if literal:
        parts.append(literal)


def is_templated(value: Any) -> bool:
    """Tell whether a JSON value holds a string with a placeholder (`{{`) anywhere."""
    return any(OPEN in text for _, text in _strings(value, ""))


def templated_fields(value: Any, *, field: str = "") -> list[str]:
    """List the fields (`body.tagIds[0]`) whose string value holds a placeholder."""
    return [where for where, text in _strings(value, field) if OPEN in text]


def find_placeholders(value: Any, *, field: str = "") -> list[tuple[str, Placeholder]]:
    """List every well-formed placeholder of a JSON value with the field it sits in."""
    found: list[tuple[str, Placeholder]] = []
    for where, text in _strings(value, field):
        if OPEN in text:
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
        if OPEN not in text:
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
        if OPEN in text:
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
            yield from _strings(item, key_field(field, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{field}[{index}]")


def key_field(field: str, key: Any) -> str:
    """Return the field name of a key under field (`body` and `x` give `body.x`)."""
    return f"{field}.{key}" if field else str(key)
