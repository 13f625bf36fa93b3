"""Universal Webhook's settings and app."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from addon_core.app import AppSpec, create_addon_app
from addon_core.features import Feature
from addon_core.runtime import AddonRuntime
from addon_core.settings import AddonSettings, CommaList, load_settings
from universal_webhook.coverage import COVERAGE_ROUTES, setup_coverage
from universal_webhook.coverage_order import check_priority
from universal_webhook.deliveries import DELIVERY_ROUTES
from universal_webhook.endpoints import ENDPOINT_ROUTES
from universal_webhook.receiver import setup_endpoints


class UniversalWebhookSettings(AddonSettings):
    model_config = SettingsConfigDict(env_prefix="UNIVERSAL_WEBHOOK_")
    app_name = "universal-webhook"
    default_port = 8200
    #: event types to register through Clockify's webhooks API before the default order
    coverage_priority: CommaList = ()

    @field_validator("coverage_priority", mode="before")
    @classmethod
    def _split_priority(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().upper() for part in value.split(",") if part.strip())
        return value

    @field_validator("coverage_priority")
    @classmethod
    def _check_priority(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_priority(value)


def allow_http_actions(runtime: AddonRuntime) -> None:
    """Flows of this add-on may also send signed outbound HTTP requests."""
    runtime.flow_action_types.add("http")


ENDPOINTS = Feature(
    "endpoints",
    (*ENDPOINT_ROUTES, *DELIVERY_ROUTES),
    setup=setup_endpoints,
    page_sections=("endpoints",),
)
COVERAGE = Feature("coverage", COVERAGE_ROUTES, setup=setup_coverage, page_sections=("coverage",))
HTTP_ACTIONS = Feature("http-actions", setup=allow_http_actions)


SPEC = AppSpec(
    name="universal-webhook",
    settings_class=UniversalWebhookSettings,
    title="Universal Webhook",
    features=(HTTP_ACTIONS, ENDPOINTS, COVERAGE),
)


def create_app(settings: UniversalWebhookSettings | None = None) -> Litestar:
    return create_addon_app(SPEC, settings or load_settings(UniversalWebhookSettings))
