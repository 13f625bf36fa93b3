"""Optional OpenTelemetry tracing: spans for intake, jobs, flow steps and Clockify calls.

Off by default, and free when off: `span` is a no-op until `configure_tracing` (or a
test, through `use_tracer_provider`) installs a provider. It needs the `otel` extra
(`pip install 'clockify-addons[otel]'`). A webhook's trace context is stored with its
event and carried by the job made from it (`traceparent` in the job's payload), so the
job's spans continue the webhook's trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from addon_core.errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

#: The W3C trace-context field carried in request headers and job payloads.
TRACEPARENT = "traceparent"

_tracer: Tracer | None = None


def configure_tracing(app_name: str, mode: str, variable: str) -> None:
    """Export spans over OTLP (endpoint from the standard OTEL_EXPORTER_OTLP_* variables)."""
    if mode == "off":
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            f"{variable}={mode} needs the otel extra: install clockify-addons[otel], "
            f"or set {variable}=off"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": app_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    use_tracer_provider(provider)


def enabled() -> bool:
    return _tracer is not None


def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Record spans with `provider` from now on; None turns tracing off again."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("addon_core")


@contextlib.contextmanager
def span(
    name: str, *, parent: str | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[None]:
    """Run the block in a span (a child of `parent`, a traceparent, when given)."""
    if _tracer is None:
        yield
        return
    from opentelemetry import propagate

    context = propagate.extract({TRACEPARENT: parent}) if parent else None
    with _tracer.start_as_current_span(name, context=context, attributes=dict(attributes or {})):
        yield


def current_traceparent() -> str | None:
    """The traceparent of the current span, to carry into a job; None when not tracing."""
    if _tracer is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)
