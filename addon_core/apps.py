"""The registry of add-ons the command line can serve."""

from __future__ import annotations

from addon_core.app import AppSpec
from api_studio.app import SPEC as API_STUDIO
from universal_webhook.app import SPEC as UNIVERSAL_WEBHOOK

#: Name → spec of every add-on. The apps depend on addon_core, never the reverse:
#: only the command line imports this module.
APP_SPECS: dict[str, AppSpec] = {spec.name: spec for spec in (API_STUDIO, UNIVERSAL_WEBHOOK)}
