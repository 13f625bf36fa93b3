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
This module fills templates; parsing them and the save-time checks are in `template_syntax`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from addon_core.flows.render_budget import OverBudgetError, RenderBudget, json_size
from addon_core.flows.template_syntax import (  # re-exported: the callers' one import
    MISSING as MISSING,
)
from addon_core.flows.template_syntax import (
    OPEN,
    ContextPath,
    Placeholder,
    key_field,
)
from addon_core.flows.template_syntax import (
    TemplateError as TemplateError,
)
from addon_core.flows.template_syntax import (
    TemplateSizeError as TemplateSizeError,
)
from addon_core.flows.template_syntax import (
    check_static_size as check_static_size,
)
from addon_core.flows.template_syntax import (
    check_template as check_template,
)
from addon_core.flows.template_syntax import (
    find_placeholders as find_placeholders,
)
from addon_core.flows.template_syntax import (
    is_templated as is_templated,
)
from addon_core.flows.template_syntax import (
    parse as parse,
)
from addon_core.flows.template_syntax import (
    parse_path as parse_path,
)
from addon_core.flows.template_syntax import (
    templated_fields as templated_fields,
)
from addon_core.redaction import MASK, MAX_DEPTH, TOO_DEEP, is_secret_key


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
            where = f"{where}[{step}]" if isinstance(step, int) else key_field(where, step)
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
        if OPEN in value:
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
