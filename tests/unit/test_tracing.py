"""Tracing is off by default, free when off, and asks for its extra when missing."""

from __future__ import annotations

import importlib.util

import pytest

from addon_core.errors import ConfigError
from addon_core.tracing import configure_tracing, current_traceparent, enabled, span


def test_tracing_is_off_until_configured() -> None:
    configure_tracing("universal-webhook", "off", "UNIVERSAL_WEBHOOK_TRACING")

    with span("anything", parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"):
        assert current_traceparent() is None
    assert not enabled()


@pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.exporter") is not None,
    reason="the otel extra is installed",
)
def test_otlp_without_the_extra_names_the_variable_and_the_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        configure_tracing("universal-webhook", "otlp", "UNIVERSAL_WEBHOOK_TRACING")

    assert "UNIVERSAL_WEBHOOK_TRACING=otlp needs the otel extra" in raised.value.detail
    assert "clockify-addons[otel]" in raised.value.detail
    assert not enabled()
