"""Flows: the stored document, its conditions and its templates (pure code, no I/O)."""

from addon_core.flows.conditions import Conditions, Explanation, Rule, RuleResult, evaluate, explain
from addon_core.flows.document import (
    ClockifyAction,
    ClockifyTrigger,
    CustomTrigger,
    FlowDocument,
    FlowValidationError,
    HttpAction,
    validate_flow,
)
from addon_core.flows.templates import TemplateError, make_context, render

__all__ = [
    "ClockifyAction",
    "ClockifyTrigger",
    "Conditions",
    "CustomTrigger",
    "Explanation",
    "FlowDocument",
    "FlowValidationError",
    "HttpAction",
    "Rule",
    "RuleResult",
    "TemplateError",
    "evaluate",
    "explain",
    "make_context",
    "render",
    "validate_flow",
]
