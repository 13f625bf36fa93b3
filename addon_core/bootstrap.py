"""Install-time bootstrap: copy a workspace's lists from Clockify into the entity cache."""

from __future__ import annotations

from litestar.handlers import BaseRouteHandler

from addon_core.runtime import AddonRuntime

BOOTSTRAP_ROUTES: list[BaseRouteHandler] = []


def setup_bootstrap(runtime: AddonRuntime) -> None:
    """Handle `bootstrap` jobs and enqueue one at each INSTALLED."""
