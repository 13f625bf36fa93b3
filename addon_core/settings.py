"""Typed settings of one add-on, read from the environment in one place.

Every variable is `{PREFIX}{FIELD}`; the prefix is `API_STUDIO_` or
`UNIVERSAL_WEBHOOK_`. docs/configuration.md lists them all.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from addon_core.clockify.hosts import check_entry
from addon_core.clockify.shipped_data import CATALOGUE_FILE, SHIPPED_DIR
from addon_core.errors import ConfigError

#: Clockify's official API hosts: api., reports.api., pto.api., locations.api.,
#: screenshots.api., the regional prefixes (euc1., use2., euw2., apse2.), workspace
#: subdomains and developer.clockify.me are all subdomains of clockify.me.
DEFAULT_ALLOWED_HOSTS = ("*.clockify.me",)
#: Where `openapi fetch` writes Clockify's OpenAPI document, inside the data directory.
FETCHED_OPENAPI_FILE = "clockify-openapi.json"

#: The origins allowed to frame the add-on's pages (CSP `frame-ancestors`): Clockify's web app.
DEFAULT_FRAME_ANCESTORS = ("https://*.clockify.me",)
_LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*")

_FRAME_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:([0-9]{1,5}|\*))?")

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
CommaList = Annotated[tuple[str, ...], NoDecode]
SecretList = Annotated[tuple[SecretStr, ...], NoDecode]


class AddonSettings(BaseSettings):
    """Settings shared by both add-ons; each app subclasses it with its prefix."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", validate_default=True)

    #: the app this settings class belongs to (`api-studio` / `universal-webhook`)
    app_name: ClassVar[str]
    default_port: ClassVar[int]

    environment: Literal["development", "test", "production"] = "development"
    addon_key: str = ""
    port: int = Field(default=0, ge=0, le=65535)
    base_url: str = ""
    data_dir: Path = Path("var")
    database_url: str = ""
    clockify_public_key_file: Path | None = None
    clockify_api_allowed_hosts: CommaList = DEFAULT_ALLOWED_HOSTS
    allow_insecure_http: bool = False
    clockify_openapi_file: Path | None = None
    clockify_openapi_url: str = "https://docs.clockify.me/openapi.json"
    encryption_keys: SecretList = ()
    token_leeway_seconds: int = Field(default=30, ge=0, le=60)
    token_cache_size: int = Field(default=10_000, ge=0)
    #: origins allowed to embed the pages (scheme://host[:port], `*.` wildcards allowed)
    ui_frame_ancestors: CommaList = DEFAULT_FRAME_ANCESTORS
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    #: arrays and objects nested in any JSON body; redaction shows deeper stored parts as a marker
    max_json_depth: int = Field(default=64, ge=8, le=128)
    # --- clients (docs/configuration.md, "Clients") ---
    max_header_count: int = Field(default=100, ge=10, le=1000)
    max_header_bytes: int = Field(default=32 * 1024, ge=4096, le=1024 * 1024)
    client_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    client_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    keep_alive_timeout_seconds: int = Field(default=5, ge=1, le=300)
    max_connections: int = Field(default=1000, ge=10, le=100_000)
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] = "text"
    #: OpenTelemetry spans over OTLP (needs the `otel` extra); the endpoint comes from
    #: the standard OTEL_EXPORTER_OTLP_* variables, read by the exporter itself
    tracing: Literal["off", "otlp"] = "off"
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=300)
    intake_batch_size: int = Field(default=256, ge=1, le=5000)
    dedupe_window_seconds: int = Field(default=600, ge=1)
    # --- the Clockify client (docs/configuration.md, "Clockify client") ---
    clockify_rate_limit: int = Field(default=50, ge=1, le=1000)
    clockify_burst: int = Field(default=50, ge=1, le=1000)
    clockify_retry_attempts: int = Field(default=4, ge=1, le=10)
    clockify_backoff_seconds: float = Field(default=0.2, ge=0, le=60)
    clockify_backoff_max_seconds: float = Field(default=5.0, ge=0, le=300)
    clockify_max_retry_after_seconds: float = Field(default=30.0, ge=0, le=600)
    clockify_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # --- bootstrap ---
    bootstrap_enabled: bool = True
    #: list operationIds added to (reports, time off) or removed from the default set
    bootstrap_include: CommaList = ()
    bootstrap_exclude: CommaList = ()
    # --- background jobs ---
    job_workers: int = Field(default=4, ge=1, le=64)
    job_max_attempts: int = Field(default=8, ge=1, le=100)
    job_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    job_backoff_seconds: float = Field(default=1.0, ge=0, le=3600)
    job_backoff_max_seconds: float = Field(default=300.0, ge=0, le=86400)
    job_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    job_heartbeat_seconds: float = Field(default=2.0, gt=0, le=60)
    #: silence after which a worker is dead and its jobs are taken over
    job_worker_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    # --- flows ---
    flow_pause_after_failures: int = Field(default=5, ge=0, le=1000)
    #: the most one rendered template value, and all of one action's, may hold
    flow_template_max_value_chars: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    flow_template_max_request_chars: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    outbound_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: test only: let outbound http actions reach loopback and private addresses
    outbound_allow_private_networks: bool = False
    # --- custom inbound webhooks ---
    custom_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    custom_webhook_rate_limit_per_minute: int = Field(default=600, ge=1)
    secret_rotation_grace_seconds: int = Field(default=86400, ge=0)
    # --- quotas per workspace (defaults a normal workspace never meets) ---
    quota_flows: int = Field(default=500, ge=1)
    quota_flow_versions: int = Field(default=200, ge=1)
    quota_endpoints: int = Field(default=100, ge=1)
    quota_explorer_calls_per_minute: int = Field(default=300, ge=1)
    quota_dry_runs_per_minute: int = Field(default=120, ge=1)
    quota_outbound_per_minute: int = Field(default=1200, ge=1)
    #: events stored a UTC day; past it events are still stored, marked, and run no flow
    quota_events_per_day: int = Field(default=200_000, ge=1)
    # --- retention (days; 0 keeps forever) ---
    retention_events_days: int = Field(default=30, ge=0)
    retention_executions_days: int = Field(default=30, ge=0)
    retention_calls_days: int = Field(default=30, ge=0)
    retention_audit_days: int = Field(default=365, ge=0)
    retention_dead_jobs_days: int = Field(default=30, ge=0)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)

    @field_validator(
        "clockify_api_allowed_hosts",
        "ui_frame_ancestors",
        "encryption_keys",
        "bootstrap_include",
        "bootstrap_exclude",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("clockify_api_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one host (default: *.clockify.me)")
        return tuple(check_entry(entry) for entry in value)

    @field_validator("ui_frame_ancestors")
    @classmethod
    def _check_frame_ancestors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not _FRAME_ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"{origin!r} is not an origin; list origins such as "
                    "https://*.clockify.me or https://app.example.com:8443, comma-separated"
                )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an absolute http(s) URL such as https://addons.example.com")
        return value.rstrip("/")

    @field_validator("addon_key")
    @classmethod
    def _check_addon_key(cls, value: str) -> str:
        if value and not 2 <= len(value) <= 50:
            raise ValueError("must be 2 to 50 characters: the add-on key registered with Clockify")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must be a SQLAlchemy async URL: sqlite+aiosqlite:///path.db "
                "or postgresql+asyncpg://user:password@host/db"
            )
        return value

    @field_validator("job_worker_timeout_seconds")
    @classmethod
    def _check_worker_timeout(cls, value: float, info: ValidationInfo) -> float:
        # A live worker must be able to miss a beat or two without losing its jobs.
        beat = info.data.get("job_heartbeat_seconds")
        if beat is not None and value < 3 * beat:
            raise ValueError(
                f"must be at least three heartbeats ({3 * beat:g} s with "
                f"{cls.model_config.get('env_prefix', '')}JOB_HEARTBEAT_SECONDS at {beat:g}): "
                "raise it or beat more often"
            )
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> AddonSettings:
        # Frozen model: defaults that depend on other fields are set once, here.
        if not self.addon_key:
            object.__setattr__(self, "addon_key", self.app_name)
        if not self.port:
            object.__setattr__(self, "port", self.default_port)
        if not self.base_url:
            object.__setattr__(self, "base_url", f"http://localhost:{self.port}")
        if not self.database_url:
            path = (self.data_dir / f"{self.app_name}.db").as_posix()
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///{path}")
        return self

    @property
    def env_prefix(self) -> str:
        return str(self.model_config.get("env_prefix", ""))

    def env_name(self, field: str) -> str:
        """Name the environment variable behind a field."""
        return f"{self.env_prefix}{field.upper()}"

    @property
    def fetched_openapi_path(self) -> Path:
        """Where `openapi fetch` writes Clockify's OpenAPI document."""
        return self.data_dir / FETCHED_OPENAPI_FILE

    @property
    def openapi_path(self) -> Path:
        """Where the operation catalogue is read from, first match wins.

        `{P}CLOCKIFY_OPENAPI_FILE` if set, else a document `openapi fetch` wrote into the
        data directory, else the compact catalogue shipped with the package.
        """
        if self.clockify_openapi_file is not None:
            return self.clockify_openapi_file
        if self.fetched_openapi_path.is_file():
            return self.fetched_openapi_path
        return SHIPPED_DIR / CATALOGUE_FILE

    @property
    def frame_ancestors(self) -> tuple[str, ...]:
        """The origins that may frame the pages; loopback too when the app runs on loopback."""
        host = urlsplit(self.base_url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            return (*self.ui_frame_ancestors, *_LOOPBACK_ORIGINS)
        return self.ui_frame_ancestors

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


SettingsT = TypeVar("SettingsT", bound=AddonSettings)

_SECRET_FIELDS = frozenset({"encryption_keys", "database_url"})


def load_settings(settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
    """Read the settings from the environment, or raise one-line `ConfigError`."""
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(settings_class, exc)) from None


def describe_validation_error(settings_class: type[AddonSettings], exc: ValidationError) -> str:
    """Turn pydantic's report into one line naming the variable and what is expected."""
    error = exc.errors(include_url=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    prefix = settings_class.model_config.get("env_prefix", "")
    name = f"{prefix}{field.upper()}" if field else f"{prefix}*"
    message = str(error["msg"]).removeprefix("Value error, ")
    if field in _SECRET_FIELDS or "input" not in error:
        return f"{name}: {message}"
    return f"{name}: {message} (got {error['input']!r})"


#: Where Clockify's reference data (manifest schemas, OpenAPI document, samples) lives
#: for tools and tests; never copied into the project.
REFERENCE_DIR_VARIABLE = "CLOCKIFY_REFERENCE_DIR"


#: Prometheus client's multiprocess directory: set, metrics of every worker process of a
#: pod are written there and `/metrics` reads them all (addon_core.serving prepares it).
MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: Which app a `serve --workers N` worker process builds (set by the parent for its workers).
SERVED_APP_VARIABLE = "CLOCKIFY_ADDONS_SERVED_APP"


def reference_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """Return the configured reference-data folder, or None if the variable is unset."""
    value = (os.environ if environ is None else environ).get(REFERENCE_DIR_VARIABLE)
    return Path(value) if value else None
