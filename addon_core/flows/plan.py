"""Turn a flow action and its context into the exact request to send (engine and dry run).

Planning renders the templates, checks a Clockify call against the catalogue (the
installation fills `workspaceId`) and builds the URL; it sends nothing and reads no token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from addon_core.clockify.catalogue import (
    WORKSPACE_PARAM,
    Catalogue,
    ParameterError,
    WorkspaceOverrideError,
    build_url,
)
from addon_core.clockify.manifest import Manifest
from addon_core.errors import UnprocessableError
from addon_core.flows.document import ClockifyAction, HttpAction
from addon_core.flows.render_budget import RenderBudget, TemplateLimits
from addon_core.flows.templates import render
from addon_core.http_semantics import IDEMPOTENT_METHODS
from addon_core.redaction import redact, redact_headers, redact_url
from addon_core.settings import AddonSettings
from addon_core.storage.models import Installation

#: Methods that may be sent again after a crash left their result unknown (CONTRACT.md).


class PlanError(UnprocessableError):
    """An action cannot become a request: its rendered params or body break the operation."""


@dataclass(frozen=True)
class PlannedRequest:
    """One action, rendered: what will be sent, before anything is."""

    step_id: str
    type: str  # "clockify" | "http"
    method: str
    url: str
    #: the Clockify operationId (clockify actions only)
    operation: str | None
    #: the rendered params with the installation's workspaceId (clockify actions only)
    params: dict[str, Any] = field(default_factory=dict)
    #: the rendered body, JSON-typed; None sends no body
    body: Any = None
    #: rendered header values (http actions only)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def idempotent(self) -> bool:
        """Whether sending twice has the effect of sending once (GET, PUT, DELETE)."""
        return self.method in IDEMPOTENT_METHODS

    def encoded_body(self) -> bytes | None:
        """Return the body as compact JSON bytes, or None when there is no body."""
        if self.body is None:
            return None
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode()

    def masked(self) -> dict[str, Any]:
        """Return the request as stored and shown: method, url, body (and more), secrets masked."""
        shown: dict[str, Any] = {
            "method": self.method,
            "url": redact_url(self.url),
            "body": redact(self.body),
        }
        if self.operation is not None:
            shown["operation"] = self.operation
        if self.type == "http":
            shown["headers"] = redact_headers(self.headers)
        return shown


def plan_action(
    action: ClockifyAction | HttpAction,
    context: Mapping[str, Any],
    *,
    catalogue: Catalogue,
    workspace_id: str,
    base_urls: Mapping[str, str],
    position: int | None = None,
    limits: TemplateLimits | None = None,
) -> PlannedRequest:
    """Render an action into a request; raise `TemplateError` or `UnprocessableError` naming
    the field (`actions[1].body.description` when `position` is given).

    `limits` bounds each rendered value and the whole request (`TemplateSizeError` past it).
    """
    where = f"actions[{position}]" if position is not None else f"action {action.id}"
    budget = RenderBudget(limits)
    if isinstance(action, HttpAction):
        return _plan_http(action, context, where, budget)
    return _plan_clockify(action, context, where, catalogue, workspace_id, base_urls, budget)


def _plan_clockify(
    action: ClockifyAction,
    context: Mapping[str, Any],
    where: str,
    catalogue: Catalogue,
    workspace_id: str,
    base_urls: Mapping[str, str],
    budget: RenderBudget,
) -> PlannedRequest:
    params = render(action.params, context, field=f"{where}.params", budget=budget)
    body = render(action.body, context, field=f"{where}.body", budget=budget)
    if not isinstance(params, dict):
        raise PlanError(f"{where}.params must render to an object")
    operation = catalogue.get(action.operation)
    issues = catalogue.validate(action.operation, params, body, workspace_id=workspace_id)
    if issues:
        first, more = issues[0], len(issues) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        errors = [{"field": f"{where}.{i.field}", "message": i.message} for i in issues]
        raise PlanError(f"{where}.{first.field}: {first.message}{tail}", extra={"errors": errors})
    try:
        bound = catalogue.bind(action.operation, params, workspace_id)
        url = build_url(operation, bound, base_urls)
    except WorkspaceOverrideError as exc:
        # validate() reports this already; kept so that no path can send elsewhere.
        raise PlanError(f"{where}.params.{WORKSPACE_PARAM}: {exc.detail}") from None
    except ParameterError as exc:
        raise PlanError(f"{where}.params: {exc.detail}") from None
    return PlannedRequest(
        step_id=action.id,
        type="clockify",
        method=operation.method,
        url=url,
        operation=operation.operation_id,
        params=bound,
        body=body,
    )


def _plan_http(
    action: HttpAction, context: Mapping[str, Any], where: str, budget: RenderBudget
) -> PlannedRequest:
    url = render(action.url, context, field=f"{where}.url", budget=budget)
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise PlanError(f"{where}.url must render to an http:// or https:// URL, not {url!r}")
    headers: dict[str, str] = {}
    for name, value in action.headers.items():
        rendered = render(value, context, field=f"{where}.headers.{name}", budget=budget)
        text = rendered if isinstance(rendered, str) else json.dumps(rendered, ensure_ascii=False)
        if "\r" in text or "\n" in text:
            raise PlanError(f"{where}.headers.{name}: the rendered value holds a line break")
        headers[name] = text
    return PlannedRequest(
        step_id=action.id,
        type="http",
        method=action.method,
        url=url,
        operation=None,
        body=render(action.body, context, field=f"{where}.body", budget=budget),
        headers=headers,
    )


def template_limits(settings: AddonSettings) -> TemplateLimits:
    """Return the rendered-size limits the settings give."""
    return TemplateLimits(
        value=settings.flow_template_max_value_chars,
        request=settings.flow_template_max_request_chars,
    )


def installation_settings(manifest: Manifest, installation: Installation) -> dict[str, Any]:
    """Return setting id → value: the manifest's defaults overlaid by the latest
    SETTINGS_UPDATED (stored as Clockify sends it, a list of `{id, name, value}`)."""
    values = manifest.setting_defaults()
    for setting in installation.settings or []:
        if isinstance(setting, dict) and isinstance(setting.get("id"), str):
            values[setting["id"]] = setting.get("value")
    return values
