"""API Studio's settings and app."""

from __future__ import annotations

from litestar import Litestar
from pydantic_settings import SettingsConfigDict

from addon_core.app import AppSpec, create_addon_app
from addon_core.settings import AddonSettings, load_settings


class ApiStudioSettings(AddonSettings):
    model_config = SettingsConfigDict(env_prefix="API_STUDIO_")
    app_name = "api-studio"
    default_port = 8100


SPEC = AppSpec(name="api-studio", settings_class=ApiStudioSettings, title="API Studio")


def create_app(settings: ApiStudioSettings | None = None) -> Litestar:
    return create_addon_app(SPEC, settings or load_settings(ApiStudioSettings))
