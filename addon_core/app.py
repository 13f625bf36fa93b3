"""App assembly: one function builds either add-on's Litestar app from its spec and settings."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import httpx
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from addon_core.audit import AUDIT_ROUTES
from addon_core.bootstrap import BOOTSTRAP_ROUTES, setup_bootstrap
from addon_core.clockify.manifest import Manifest, load_manifest
from addon_core.correlation import with_request_id
from addon_core.errors import AddonError
from addon_core.explorer.routes import EXPLORER_ROUTES
from addon_core.features import Feature
from addon_core.flows.engine import setup_flows
from addon_core.flows.event_feed import EVENT_FEED_ROUTES
from addon_core.flows.portable_routes import PORTABLE_ROUTES
from addon_core.flows.routes import FLOW_ROUTES
from addon_core.installations.lifecycle import build_lifecycle_handlers
from addon_core.installations.overview import OVERVIEW_ROUTES
from addon_core.intake.routes import receive_clockify_webhook, refuse_unknown_event
from addon_core.jobs.dead_letters import DEAD_LETTER_ROUTES
from addon_core.redaction import redact, redact_text
from addon_core.runtime import (
    AddonRuntime,
    Runtime,
    build_runtime,
    provide_runtime,
    provide_sessions,
)
from addon_core.settings import AddonSettings
from addon_core.storage.database import DatabaseUnavailableError
from addon_core.web import page_router, template_config
from addon_core.web.api_docs import openapi_config
from addon_core.web.caller import provide_caller, refuse_ids_out_of_range
from addon_core.web.health import healthz, livez, metrics, readyz
from addon_core.web.idempotency import idempotent

log = logging.getLogger(__name__)

#: What both add-ons do; an app spec adds what only it does.
CORE_FEATURES: tuple[Feature, ...] = (
    Feature("overview", OVERVIEW_ROUTES),
    Feature("events", EVENT_FEED_ROUTES),
    Feature("explorer", EXPLORER_ROUTES),
    Feature("flows", (*PORTABLE_ROUTES, *FLOW_ROUTES), setup=setup_flows),
    Feature("bootstrap", BOOTSTRAP_ROUTES, setup=setup_bootstrap),
    Feature("dead-letters", DEAD_LETTER_ROUTES),
    Feature("audit", AUDIT_ROUTES),
)


@dataclass(frozen=True)
class AppSpec:
    """What makes one add-on: its name, settings class, title and its own features."""

    name: str
    settings_class: type[AddonSettings]
    title: str
    #: What only this add-on does, after the core features.
    features: Sequence[Feature] = field(default_factory=tuple)

    def all_features(self) -> tuple[Feature, ...]:
        return (*CORE_FEATURES, *self.features)


def create_addon_app(
    spec: AppSpec,
    settings: AddonSettings,
    *,
    manifest: Manifest | None = None,
    clockify_transport: httpx.AsyncBaseTransport | None = None,
) -> Litestar:
    """Build the app; raise `ConfigError` if the settings cannot work.

    `clockify_transport` carries every call to Clockify (a fake one in tests), else the network.
    """
    manifest = manifest or load_manifest(spec.name)
    runtime = build_runtime(settings, manifest, http_transport=clockify_transport)
    features = spec.all_features()
    for feature in features:
        if feature.setup is not None:
            feature.setup(runtime)
    sections = [section for feature in spec.features for section in feature.page_sections]

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await runtime.open()
        try:
            yield
        finally:
            await runtime.close()

    return Litestar(
        route_handlers=[
            serve_manifest,
            page_router(settings, sections),
            livez,
            readyz,
            healthz,
            metrics,
            receive_clockify_webhook,
            refuse_unknown_event,
            *build_lifecycle_handlers(runtime),
            *(route for feature in features for route in feature.routes),
        ],
        dependencies=_dependencies(),
        exception_handlers={AddonError: handle_addon_error, HTTPException: handle_http_exception,
                            Exception: handle_unexpected_error},
        before_request=refuse_ids_out_of_range,
        middleware=[
            lambda app: with_request_id(app, runtime.addon_key),
            lambda app: timed(app, runtime),
            lambda app: idempotent(app, runtime),
        ],
        lifespan=[lifespan],
        template_config=template_config(),
        state=State({"runtime": runtime, "spec": spec}),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        openapi_config=openapi_config(spec.title, _version()),
        debug=False,
    )  # fmt: skip


def _dependencies() -> dict[str, Provide]:
    return {
        "runtime": Provide(provide_runtime, sync_to_thread=False),
        "sessions": Provide(provide_sessions, sync_to_thread=False),
        "caller": Provide(provide_caller),
    }


def _version() -> str:
    try:
        return metadata.version("clockify-addons")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0"


@get(["/manifest", "/manifest.json"], name="manifest", sync_to_thread=False)
def serve_manifest(runtime: Runtime) -> dict[str, Any]:
    """Serve the manifest with `baseUrl` and `key` from the settings."""
    return runtime.manifest.render(base_url=runtime.settings.base_url, key=runtime.addon_key)


def _error_response(
    status_code: int, detail: str, extra: Any = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    content: dict[str, Any] = {"status_code": status_code, "detail": redact_text(detail)}
    if extra:
        content["extra"] = redact(extra)
    return Response(content, status_code=status_code, media_type=MediaType.JSON, headers=headers)


def handle_addon_error(request: Request[Any, Any, Any], exc: AddonError) -> Response[Any]:
    if isinstance(exc, DatabaseUnavailableError):
        runtime: AddonRuntime = request.app.state.runtime
        runtime.metrics.database_errors.labels(runtime.addon_key, "request").inc()
    level = logging.WARNING if exc.status_code >= 500 else logging.INFO
    log.log(level, "%s %s -> %d: %s", request.method, request.url.path, exc.status_code, exc.detail)
    return _error_response(exc.status_code, exc.detail, exc.extra, exc.headers)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _error_response(exc.status_code, exc.detail, _as_object(exc.extra))


def _as_object(extra: Any) -> Any:
    """Give Litestar's list of parameter errors the shape of ours: `{"errors": [...]}`."""
    if not isinstance(extra, list):
        return extra or None
    errors = [
        {"field": str(item.get("key", "")), "message": str(item.get("message", ""))}
        if isinstance(item, dict)
        else {"field": "", "message": str(item)}
        for item in extra
    ]
    return {"errors": errors} if errors else None


def handle_unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _error_response(500, "internal error; the details are in the server log")


def timed(app: ASGIApp, runtime: AddonRuntime) -> ASGIApp:
    """Measure each HTTP request by route template (bounded), method and status class."""
    histogram = runtime.metrics.request_duration
    addon = runtime.addon_key
    children: dict[tuple[str, str, int], Any] = {}  # label children, looked up once

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            key = (scope.get("method", "GET"), scope.get("path_template") or "unmatched", status)
            child = children.get(key)
            if child is None:
                child = children[key] = histogram.labels(
                    addon, key[0], key[1], f"{status // 100}xx"
                )
            child.observe(time.perf_counter() - started)

    return middleware
