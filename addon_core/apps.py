"""The registry of add-ons the command line can serve."""

from __future__ import annotations

from addon_core.app import AppSpec


def app_specs() -> dict[str, AppSpec]:
    """Name → spec of every add-on (imported late: the apps depend on addon_core)."""
    from api_studio.app import SPEC as API_STUDIO
    from universal_webhook.app import SPEC as UNIVERSAL_WEBHOOK

    return {spec.name: spec for spec in (API_STUDIO, UNIVERSAL_WEBHOOK)}


APP_NAMES = ("api-studio", "universal-webhook")
