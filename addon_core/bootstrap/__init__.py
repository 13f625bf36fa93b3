"""Install-time bootstrap: copy a workspace's lists from Clockify into the entity cache.

Each INSTALLED (and `POST /api/bootstrap`) starts a run (`runs`): a progress row per list
(`lists` chooses them from the catalogue and settings) and a `bootstrap` job (`job`)
that pages through them at the bootstrap lane's priority, resumable page by page.
"""

from __future__ import annotations

from addon_core.bootstrap.job import Bootstrapper
from addon_core.bootstrap.routes import BOOTSTRAP_ROUTES
from addon_core.bootstrap.runs import KIND, start_at_install, start_run
from addon_core.runtime import AddonRuntime

__all__ = ["BOOTSTRAP_ROUTES", "KIND", "setup_bootstrap", "start_run"]


def setup_bootstrap(runtime: AddonRuntime) -> None:
    """Handle `bootstrap` jobs and start a run at each INSTALLED."""
    runtime.add_job_handler(KIND, Bootstrapper(runtime).run)
    runtime.on_installed.append(start_at_install)
