"""Event coverage beyond the manifest: webhooks registered through Clockify's API at install."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

from addon_core.runtime import AddonRuntime

COVERAGE_ROUTES: list[BaseRouteHandler] = []


def setup_coverage(runtime: AddonRuntime) -> None:
    """Register the uncovered event types at INSTALLED; delete them at DELETED."""
