"""The registry of add-ons the command line can serve, filled by the apps themselves.

Each app declares its spec under the entry-point group `clockify_addons.apps` in its
package metadata (`pyproject.toml`), so `addon_core` never imports an app: the apps
depend on the core, never the reverse. Names are read from the metadata without
importing anything; a spec is imported only when a command needs it.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from addon_core.errors import ConfigError

if TYPE_CHECKING:
    from addon_core.app import AppSpec

ENTRY_POINT_GROUP = "clockify_addons.apps"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def app_names() -> list[str]:
    """Return the name of every registered add-on, sorted."""
    return sorted(_entry_points())


def load_spec(name: str) -> AppSpec:
    """Import and return the spec registered as `name`."""
    from addon_core.app import AppSpec

    point = _entry_points().get(name)
    if point is None:
        known = ", ".join(app_names()) or "none (is the project installed?)"
        raise ConfigError(f"no add-on named {name!r} is registered; known: {known}")
    spec = point.load()
    if not isinstance(spec, AppSpec):
        raise ConfigError(f"the entry point {point.value} is not an AppSpec")
    return spec
