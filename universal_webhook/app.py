"""Universal Webhook's settings and app."""

from __future__ import annotations

from litestar import Litestar
from pydantic_settings import SettingsConfigDict

from addon_core.app import AppSpec, create_addon_app
from addon_core.settings import AddonSettings, load_settings


class UniversalWebhookSettings(AddonSettings):
    model_config = SettingsConfigDict(env_prefix="UNIVERSAL_WEBHOOK_")
    app_name = "universal-webhook"
    default_port = 8200


SPEC = AppSpec(
    name="universal-webhook", settings_class=UniversalWebhookSettings, title="Universal Webhook"
)


def create_app(settings: UniversalWebhookSettings | None = None) -> Litestar:
    return create_addon_app(SPEC, settings or load_settings(UniversalWebhookSettings))
