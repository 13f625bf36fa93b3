"""One way to wire a feature: what it serves and what it sets up, declared in one place.

A feature is everything one part of an add-on brings: its HTTP routes, and a `setup`
that runs on the runtime before it opens (job kinds and their handlers, lifecycle
hooks, flow action types), plus the page sections it shows. The core features are
listed in `addon_core.app.CORE_FEATURES`; an app spec adds its own, so adding a feature
touches its folder and one line of an app spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from litestar.handlers import BaseRouteHandler

if TYPE_CHECKING:
    from addon_core.runtime import AddonRuntime


@dataclass(frozen=True)
class Feature:
    """A part of an add-on: its routes, its set-up on the runtime, its page sections."""

    name: str
    routes: Sequence[BaseRouteHandler] = field(default_factory=tuple)
    #: Registers job handlers, lifecycle hooks or action types before the runtime opens.
    setup: Callable[[AddonRuntime], None] | None = None
    #: Sections of the add-on's page this feature adds (`addon_core.web.pages`).
    page_sections: Sequence[str] = field(default_factory=tuple)
