"""Flow review: what a valid flow would meet at run, told at save and in the dry run.

Two checks, each pointing at its field (`{"field": "actions[0].url", "message": ...}`):
- a template or condition path naming a setting no manifest of this app declares is
  refused at save (422): Clockify sends only declared settings, so it could never
  resolve. The dry run of a flow saved before this rule lists it as a warning.
- an http action whose URL the workspace's `outboundAllowedHosts` does not admit is a
  warning at save (201 or 200 with `warnings`) and in the dry run: an admin may allow
  the host after the save. URLs whose scheme or host is a template are not judged.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from addon_core.clockify.openapi_schema import ValidationIssue
from addon_core.flows.actions import ALLOWED_HOSTS_SETTING, parse_allowed_hosts
from addon_core.flows.document import FlowValidationError
from addon_core.flows.outbound_target import OutboundRefusedError, check_url
from addon_core.flows.plan import installation_settings
from addon_core.flows.templates import TemplateError, parse
from addon_core.installations.context import live_installation
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Installation

_SETTINGS_ROOT = "settings"


def undeclared_settings(
    document: Mapping[str, Any], declared: Collection[str]
) -> list[ValidationIssue]:
    """The places a document names a setting outside `declared`, one issue per field."""
    issues = []
    for field, name in _setting_references(document):
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            issues.append(
                ValidationIssue(
                    field,
                    f"settings.{name} is not a setting of this add-on, so it would never have "
                    f"a value; use one of its settings ({known})",
                )
            )
    return issues


def hosts_not_allowed(
    document: Mapping[str, Any], settings: Mapping[str, Any], *, allow_http: bool
) -> list[ValidationIssue]:
    """The http actions whose URL this workspace's outbound hosts setting refuses."""
    allowed = parse_allowed_hosts(settings.get(ALLOWED_HOSTS_SETTING))
    issues = []
    for index, action in enumerate(_actions(document)):
        url = action.get("url") if action.get("type") == "http" else None
        origin = _static_origin(url)
        if origin is None:
            continue
        try:
            check_url(origin, allowed, allow_http=allow_http)
        except OutboundRefusedError as exc:
            issues.append(
                ValidationIssue(f"actions[{index}].url", f"this action would fail: {exc.detail}")
            )
    return issues


def review_flow(
    document: Mapping[str, Any],
    *,
    declared: Collection[str],
    settings: Mapping[str, Any],
    allow_http: bool,
) -> list[dict[str, str]]:
    """Every warning of a stored flow (the dry run's `warnings`)."""
    issues = [
        *undeclared_settings(document, declared),
        *hosts_not_allowed(document, settings, allow_http=allow_http),
    ]
    return [{"field": issue.field, "message": issue.message} for issue in issues]


def _actions(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    actions = document.get("actions")
    return [a for a in actions if isinstance(a, dict)] if isinstance(actions, list) else []


def _setting_references(document: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, setting id) for each `settings.<id>` in condition paths and templates."""
    conditions = document.get("conditions")
    rules = conditions.get("rules") if isinstance(conditions, dict) else None
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        path = rule.get("path")
        if isinstance(path, str) and path.split(".")[0] == _SETTINGS_ROOT and "." in path:
            yield f"conditions.rules[{index}].path", path.split(".")[1].split("[")[0]
        yield from _template_references(rule.get("value"), f"conditions.rules[{index}].value")
    for index, action in enumerate(_actions(document)):
        for key, value in action.items():
            yield from _template_references(value, f"actions[{index}].{key}")


def _template_references(value: Any, field: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _template_references(item, f"{field}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _template_references(item, f"{field}[{index}]")
    elif isinstance(value, str) and "{{" in value:
        try:
            template = parse(value)
        except TemplateError:
            return  # validation reports it
        for placeholder in template.placeholders:
            path = placeholder.path
            if path.root == _SETTINGS_ROOT and path.steps and isinstance(path.steps[0], str):
                yield field, path.steps[0]


def _static_origin(url: Any) -> str | None:
    """`scheme://host[:port]/` of a URL whose origin holds no template, else None."""
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, _, rest = url.strip().partition("://")
    authority = rest
    for stop in "/?#":
        authority = authority.split(stop, 1)[0]
    if "{{" in scheme or "{{" in authority or not authority:
        return None
    return f"{scheme}://{authority}/"


def refuse_undeclared_settings(document: Mapping[str, Any], runtime: AddonRuntime) -> None:
    """Refuse (422, every field listed) a document naming a setting this app lacks."""
    issues = undeclared_settings(document, runtime.manifest.setting_defaults().keys())
    if issues:
        raise FlowValidationError(issues)


async def save_warnings(
    runtime: AddonRuntime, workspace_id: str, document: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The warnings a save answers with: http actions to hosts the workspace refuses."""
    async with runtime.sessions() as session:
        installation = await live_installation(session, runtime, workspace_id)
    settings = installation_settings(runtime.manifest, installation)
    allow_http = runtime.settings.outbound_allow_private_networks
    issues = hosts_not_allowed(document, settings, allow_http=allow_http)
    return [{"field": issue.field, "message": issue.message} for issue in issues]


def dry_run_warnings(
    runtime: AddonRuntime, installation: Installation, document: Mapping[str, Any]
) -> list[dict[str, str]]:
    """The warnings a dry run answers with: undeclared settings and refused hosts."""
    return review_flow(
        document,
        declared=runtime.manifest.setting_defaults().keys(),
        settings=installation_settings(runtime.manifest, installation),
        allow_http=runtime.settings.outbound_allow_private_networks,
    )
