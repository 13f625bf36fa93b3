"""What one running app holds: its settings and the objects built from them.

Built in two steps: `build_runtime` (pure configuration, fails fast with a
`ConfigError`) when the app is created, then `open`/`close` in the lifespan
for what holds connections and tasks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from addon_core.clockify.budget import PostgresBudget, open_shared_budget
from addon_core.clockify.catalogue import Catalogue, CatalogueError, load_catalogue
from addon_core.clockify.client import ClockifyClient
from addon_core.clockify.hosts import HostAllowlist
from addon_core.clockify.manifest import Manifest
from addon_core.clockify.pacing import Pacer
from addon_core.clockify.tokens import (
    Claims,
    TokenError,
    TokenKind,
    TokenVerifier,
    load_public_keys,
)
from addon_core.clockify.transport import create_http_client
from addon_core.flows.outbound import OutboundHttp
from addon_core.intake.writer import IntakeWriter
from addon_core.jobs.queue import JobQueue
from addon_core.metrics import Metrics
from addon_core.quotas import Quotas
from addon_core.settings import AddonSettings
from addon_core.storage.database import (
    create_engine,
    create_session_factory,
    for_writing,
    head_revision,
)
from addon_core.storage.encryption import KeyRing, load_key_ring
from addon_core.storage.models import Installation
from addon_core.storage.retention import RetentionPolicy
from addon_core.storage.retention_schedule import RetentionScheduler

#: Runs inside the transaction that applies an INSTALLED (or DELETED) event, after the
#: installation row is flushed: what it adds to the session commits with the event.
LifecycleHook = Callable[[AsyncSession, "AddonRuntime", Installation], Awaitable[None]]


@dataclass
class AddonRuntime:
    """The shared infrastructure of one app; domains keep their own look-ups.

    What `open` creates (engine, sessions, HTTP clients, queue, intake writer, retention)
    is read through properties that raise, naming the missing part, before `open`.
    """

    settings: AddonSettings
    manifest: Manifest
    verifier: TokenVerifier
    key_ring: KeyRing
    allowlist: HostAllowlist
    metrics: Metrics
    head_revision: str | None
    quotas: Quotas
    #: Job handlers by kind, installed on the queue when it opens.
    job_handlers: dict[str, Callable[..., Awaitable[None]]] = field(default_factory=dict)
    #: Action types flows may use here: `clockify` everywhere, `http` in Universal Webhook.
    flow_action_types: set[str] = field(default_factory=lambda: {"clockify"})
    on_installed: list[LifecycleHook] = field(default_factory=list)
    on_deleted: list[LifecycleHook] = field(default_factory=list)
    #: What Clockify calls go through: None for the network; `create_addon_app` passes a
    #: fake Clockify's transport in (tests) or a shared pool's.
    http_transport: httpx.AsyncBaseTransport | None = None
    _parts: _OpenParts | None = field(default=None, init=False, repr=False)
    _catalogue: Catalogue | None = field(default=None, init=False, repr=False)

    @property
    def addon_key(self) -> str:
        return self.settings.addon_key

    @property
    def engine(self) -> AsyncEngine:
        """The database engine (raw SQL, leases, probes)."""
        return self._opened("the database engine").engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """The session factory: `async with runtime.sessions.begin() as session: ...`."""
        return self._opened("the database session factory").sessions

    @property
    def http(self) -> httpx.AsyncClient:
        """The connection pool to Clockify."""
        return self._opened("the Clockify connection pool").http

    @property
    def clockify(self) -> ClockifyClient:
        """The paced, retrying Clockify API client."""
        return self._opened("the Clockify client").clockify

    @property
    def outbound(self) -> OutboundHttp:
        """The client of flows' `http` actions."""
        return self._opened("the outbound http client").outbound

    @property
    def jobs(self) -> JobQueue:
        """The durable job queue."""
        return self._opened("the job queue").jobs

    @property
    def intake(self) -> IntakeWriter:
        """The coalescing writer of webhook deliveries."""
        return self._opened("the webhook intake writer").intake

    @property
    def retention(self) -> RetentionScheduler:
        """The scheduler that deletes what outlived its retention."""
        return self._opened("the retention scheduler").retention

    @property
    def catalogue(self) -> Catalogue:
        """Clockify's operations, read on first use from `settings.openapi_path`.

        Raises `CatalogueError` (503, naming the file and the setting) when it is unusable.
        """
        if self._catalogue is None:
            try:
                self._catalogue = load_catalogue(self.settings.openapi_path)
            except CatalogueError as exc:
                raise CatalogueError(_catalogue_hint(self.settings, exc.detail)) from None
        return self._catalogue

    def _opened(self, what: str) -> _OpenParts:
        if self._parts is None:
            raise RuntimeError(
                f"{what} is not open yet: it is created when the app's lifespan starts "
                "(AddonRuntime.open)"
            )
        return self._parts

    async def open(self, *, start_workers: bool = True) -> None:
        """Create the engine and clients; start the background workers unless told not to.

        `start_workers=False` opens everything a one-shot command or a test needs and
        leaves jobs to `jobs.run_until_idle()`.
        """
        parts = self._parts = _open_parts(self)
        await parts.intake.start()
        if start_workers:
            await parts.jobs.start()
            await parts.retention.start()

    async def close(self) -> None:
        """Finish queued work, stop the workers and close connections (engine last)."""
        parts = self._parts
        if parts is None:
            return
        grace = self.settings.shutdown_grace_seconds
        await parts.intake.stop(grace)
        await parts.jobs.stop(grace)
        await parts.retention.stop()
        await parts.http.aclose()
        await parts.outbound.aclose()
        if parts.budget is not None:
            await parts.budget.aclose()
        await parts.engine.dispose()

    def add_job_handler(self, kind: str, handler: Callable[..., Awaitable[None]]) -> None:
        """Handle jobs of `kind` (call before `open`)."""
        self.job_handlers[kind] = handler

    def verify_token(self, token: str | None, kind: TokenKind) -> Claims:
        """Verify a Clockify token, counting a refusal by kind and reason."""
        try:
            return self.verifier.verify(token, kind)
        except TokenError as exc:
            self.metrics.verification_failures.labels(self.addon_key, kind.value, exc.reason).inc()
            raise

    # The four methods below remain for modules outside this change (jobs/dead_letters.py,
    # universal_webhook/registration.py, benchmarks/flow_latency.py); new code uses the
    # properties above and `addon_core.installations.context`.


@dataclass(frozen=True)
class _OpenParts:
    """What `AddonRuntime.open` creates, held together so it is all there or none of it."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    clockify: ClockifyClient
    outbound: OutboundHttp
    budget: PostgresBudget | None
    jobs: JobQueue
    intake: IntakeWriter
    retention: RetentionScheduler


def _open_parts(runtime: AddonRuntime) -> _OpenParts:
    """Create the engine, clients, queue, intake writer and retention scheduler."""
    settings, addon_key, metrics = runtime.settings, runtime.addon_key, runtime.metrics
    engine = create_engine(settings.database_url)
    # Sessions write on what they read (lifecycle, flows): see `for_writing`.
    sessions = create_session_factory(for_writing(engine))
    http = create_http_client(
        runtime.http_transport, timeout_seconds=settings.clockify_timeout_seconds
    )
    budget = open_shared_budget(
        engine,
        addon_key,
        settings.clockify_rate_limit,
        # A held slot outlives the longest call: a timeout on each of its retries.
        hold_seconds=settings.clockify_timeout_seconds + 5.0,
    )
    clockify = ClockifyClient(
        allowlist=runtime.allowlist,
        metrics=metrics,
        pacer=Pacer(settings.clockify_rate_limit, settings.clockify_burst, shared=budget),
        http=http,
        attempts=settings.clockify_retry_attempts,
        backoff_base=settings.clockify_backoff_seconds,
        backoff_max=settings.clockify_backoff_max_seconds,
        max_retry_after=settings.clockify_max_retry_after_seconds,
    )
    jobs = _job_queue(runtime, engine, sessions)
    intake = IntakeWriter(
        engine,
        addon_key,
        metrics,
        batch_size=settings.intake_batch_size,
        dedupe_window=timedelta(seconds=settings.dedupe_window_seconds),
        job_attempts=settings.job_max_attempts,
        events_per_day=settings.quota_events_per_day,
        on_jobs_queued=jobs.wake,
    )
    retention = RetentionScheduler(
        engine,
        addon_key,
        RetentionPolicy.from_settings(settings),
        interval_seconds=settings.retention_interval_seconds,
        metrics=metrics,
    )
    return _OpenParts(
        engine=engine,
        sessions=sessions,
        http=http,
        clockify=clockify,
        outbound=OutboundHttp.from_settings(settings),
        budget=budget,
        jobs=jobs,
        intake=intake,
        retention=retention,
    )


def _job_queue(
    runtime: AddonRuntime, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> JobQueue:
    """The durable queue, with the job handlers the features registered."""
    settings = runtime.settings
    jobs = JobQueue(
        engine,
        sessions,
        runtime.addon_key,
        runtime.metrics,
        workers=settings.job_workers,
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        backoff_seconds=settings.job_backoff_seconds,
        backoff_max_seconds=settings.job_backoff_max_seconds,
        poll_seconds=settings.job_poll_seconds,
        heartbeat_seconds=settings.job_heartbeat_seconds,
        worker_timeout_seconds=settings.job_worker_timeout_seconds,
    )
    for kind, handler in runtime.job_handlers.items():
        jobs.register(kind, handler)
    return jobs


def build_runtime(
    settings: AddonSettings,
    manifest: Manifest,
    *,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> AddonRuntime:
    """Check and build everything the settings describe, without touching the network."""
    keys = load_public_keys(
        settings.clockify_public_key_file, variable=settings.env_name("clockify_public_key_file")
    )
    metrics = Metrics(settings.addon_key)
    return AddonRuntime(
        settings=settings,
        manifest=manifest,
        verifier=TokenVerifier(
            keys,
            settings.addon_key,
            leeway_seconds=settings.token_leeway_seconds,
            cache_size=settings.token_cache_size,
        ),
        key_ring=key_ring_from(settings),
        allowlist=HostAllowlist.from_entries(
            settings.clockify_api_allowed_hosts,
            allow_insecure_http=settings.allow_insecure_http,
            prefix=settings.env_prefix,
        ),
        metrics=metrics,
        head_revision=head_revision(),
        quotas=Quotas(settings, metrics, settings.addon_key),
        http_transport=http_transport,
    )


def _catalogue_hint(settings: AddonSettings, detail: str) -> str:
    """Say which source of the catalogue failed and how to get back to a working one."""
    shipped = "to use the catalogue shipped with the package"
    if settings.clockify_openapi_file is not None:
        name = settings.env_name("clockify_openapi_file")
        return f"{name}: {detail}; correct the path, or unset it {shipped}"
    if settings.openapi_path == settings.fetched_openapi_path:
        fetch = f"clockify-addons openapi fetch {settings.app_name}"
        return f"{detail}; run `{fetch}` again, or delete the file {shipped}"
    return f"{detail}; the installation is damaged: reinstall the package"


def key_ring_from(settings: AddonSettings) -> KeyRing:
    """Build the key ring `{P}ENCRYPTION_KEYS` describes (a dev key outside production)."""
    return load_key_ring(
        [k.get_secret_value() for k in settings.encryption_keys],
        variable=settings.env_name("encryption_keys"),
        data_dir=settings.data_dir,
        app_name=settings.app_name,
        production=settings.is_production,
    )


def provide_runtime(state: State) -> AddonRuntime:
    runtime: AddonRuntime = state.runtime
    return runtime


def provide_sessions(state: State) -> async_sessionmaker[AsyncSession]:
    runtime: AddonRuntime = state.runtime
    return runtime.sessions


#: How handlers ask for the runtime: `runtime: Runtime`.
Runtime = NamedDependency[AddonRuntime]
#: How handlers ask for the session factory: `sessions: Sessions`. Each handler opens its
#: own transactions with it (`sessions.begin()`), so it commits before it answers.
Sessions = NamedDependency[async_sessionmaker[AsyncSession]]
