"""Portable flows: a versioned, self-contained document that moves a flow between workspaces.

An export carries the flow document without what belongs to its workspace: secrets
(masked values in http actions and secret-named fields), the custom endpoint a trigger
listens on, and a literal `workspaceId` parameter (the installation fills it). Each
removed value is listed under `needs` with the field it goes back into. An import binds
those fields (`bind: {"<field>": value}`), then saves the flow exactly as `POST /api/flows`
does, so it is validated against the target workspace's catalogue, settings and endpoints;
every problem names its field in the export document (`flow.actions[0].url`).

The gallery is a set of ready export documents shipped with the package
(`flows/gallery/*.json`), imported the same way.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Final

from addon_core.clockify.catalogue import WORKSPACE_PARAM
from addon_core.errors import NotFoundError, UnprocessableError
from addon_core.flows.document import FlowValidationError
from addon_core.redaction import MASK, redact
from addon_core.storage.models import Flow

FORMAT: Final = "clockify-addons/flow"
FORMAT_VERSION: Final = 1
GALLERY_DIR: Final = Path(__file__).with_name("gallery")
#: The document fields an export carries; the rest (id, version, state) stays behind.
_PORTABLE = ("name", "enabled", "trigger", "conditions", "actions")
_STEP = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]")


def export_flow(flow: Flow) -> dict[str, Any]:
    """The export document of a stored flow."""
    document = {key: copy.deepcopy(flow.document[key]) for key in _PORTABLE if key in flow.document}
    needs: list[dict[str, str]] = []
    trigger = document.get("trigger")
    if isinstance(trigger, dict) and trigger.get("source") == "custom":
        trigger["endpoint"] = None
        needs.append(
            _need("flow.trigger.endpoint", "the id of a custom endpoint of this workspace")
        )
    for index, action in enumerate(document.get("actions") or []):
        if not isinstance(action, dict):
            continue
        params = action.get("params")
        if isinstance(params, dict) and WORKSPACE_PARAM in params:
            del params[WORKSPACE_PARAM]  # the installation's workspace fills it
        document["actions"][index] = _strip_secrets(action, f"flow.actions[{index}]", needs)
    return {
        "format": FORMAT,
        "formatVersion": FORMAT_VERSION,
        "flow": document,
        "needs": needs,
    }


def _need(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _strip_secrets(action: dict[str, Any], field: str, needs: list[dict[str, str]]) -> Any:
    masked = redact(action)
    for path, value in _leaves(masked, field):
        if isinstance(value, str) and MASK in value:
            needs.append(_need(path, "a secret removed at export: bind its value"))
    return masked


def _leaves(value: Any, field: str) -> Iterator[tuple[str, Any]]:
    stack: list[tuple[str, Any]] = [(field, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((_child(path, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
        else:
            yield path, item


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_$][\w$-]*", key) else f'{path}["{key}"]'


def prepare_import(body: Any) -> dict[str, Any]:
    """Check an import request and return the flow document with its `bind` values set."""
    if not isinstance(body, dict):
        raise _invalid([("document", "expected an export document (a JSON object)")])
    problems: list[tuple[str, str]] = []
    if body.get("format") != FORMAT:
        problems.append(("format", f"must be {FORMAT!r} (a flow exported by this add-on)"))
    if body.get("formatVersion") != FORMAT_VERSION:
        problems.append(("formatVersion", f"this add-on reads version {FORMAT_VERSION}"))
    flow = body.get("flow")
    if not isinstance(flow, dict):
        problems.append(("flow", "required: the flow document"))
    bind = body.get("bind", {})
    if not isinstance(bind, dict) or not all(isinstance(key, str) for key in bind):
        problems.append(("bind", 'expected an object of {"<field>": value}'))
    if problems:
        raise _invalid(problems)
    assert isinstance(flow, dict)
    document: dict[str, Any] = copy.deepcopy(flow)
    wrapper = {"flow": document}
    for field, value in bind.items():
        problem = _set(wrapper, field, value)
        if problem:
            problems.append((f"bind.{field}" if not field.startswith("[") else f"bind{field}",
                             problem))  # fmt: skip
    for need in body.get("needs") or []:
        field = need.get("field") if isinstance(need, dict) else None
        if isinstance(field, str) and field not in bind:
            problems.append((field, str(need.get("message") or "needs a value: bind it")))
    for path, value in _leaves(document, "flow"):
        if isinstance(value, str) and MASK in value and path not in bind:
            problems.append((path, "a secret removed at export: bind its value"))
    if problems:
        raise _invalid(problems)
    return document


def _set(root: dict[str, Any], field: str, value: Any) -> str | None:
    """Put `value` at `field` (`flow.actions[0].headers.Authorization`); say why not."""
    if not field.startswith("flow"):
        return "fields start with 'flow.' (as listed under needs)"
    steps = [m.group(1) or m.group(3) or int(m.group(2)) for m in _STEP.finditer(field[4:])]
    rebuilt = "".join(m.group(0) for m in _STEP.finditer(field[4:]))
    if rebuilt != field[4:] or not steps:
        return "not a field path of the flow document"
    node: Any = root["flow"]
    for step in steps[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return "no such field in the flow document"
    last = steps[-1]
    if isinstance(node, dict) and isinstance(last, str):
        node[last] = value
        return None
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = value
        return None
    return "no such field in the flow document"


def in_export_terms(error: FlowValidationError) -> UnprocessableError:
    """A save's validation error with its fields named in the export document."""
    return _invalid([(f"flow.{issue.field}", issue.message) for issue in error.issues])


def _invalid(problems: list[tuple[str, str]]) -> UnprocessableError:
    field, message = problems[0]
    more = len(problems) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return UnprocessableError(
        f"cannot import the flow: {field}: {message}{tail}",
        extra={"errors": [{"field": f, "message": m} for f, m in problems]},
    )


# --- the gallery -------------------------------------------------------------------------------


@cache
def gallery() -> dict[str, dict[str, Any]]:
    """The ready flows, by id (their file name)."""
    items = {}
    for path in sorted(GALLERY_DIR.glob("*.json")):
        items[path.stem] = json.loads(path.read_text())
    return items


def gallery_items(action_types: set[str]) -> list[dict[str, Any]]:
    """What the gallery offers to an app whose flows may use `action_types`."""
    return [
        {
            "id": item_id,
            "name": item["flow"]["name"],
            "description": item.get("description", ""),
            "needs": item.get("needs", []),
        }
        for item_id, item in gallery().items()
        if _action_types(item) <= action_types
    ]


def gallery_item(item_id: str, action_types: set[str]) -> dict[str, Any]:
    item = gallery().get(item_id)
    if item is None or not _action_types(item) <= action_types:
        raise NotFoundError(
            f"the gallery has no flow {item_id!r}; GET /api/flows/gallery lists them"
        )
    return item


def _action_types(item: dict[str, Any]) -> set[str]:
    return {action.get("type") for action in item["flow"].get("actions", [])}
