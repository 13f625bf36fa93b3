"""Run flows: the `flow.dispatch` job turns a stored event into executions and their steps."""

from __future__ import annotations

from addon_core.runtime import AddonRuntime


def setup_flows(runtime: AddonRuntime) -> None:
    """Handle `flow.dispatch` jobs."""
