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
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from addon_core.clockify.budget import PostgresBudget, open_shared_budget
from addon_core.clockify.catalogue import Catalogue, CatalogueError, load_catalogue
from addon_core.clockify.client import ClockifyClient, InstallationContext, create_http_client
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
from addon_core.errors import ConflictError, NotFoundError
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
from addon_core.storage.retention import RetentionPolicy, RetentionScheduler
from addon_core.storage.vault import INSTALLATION_PURPOSE, token_context

#: Runs inside the transaction that applies an INSTALLED (or DELETED) event, after the
#: installation row is flushed: what it adds to the session commits with the event.
LifecycleHook = Callable[[AsyncSession, "AddonRuntime", Installation], Awaitable[None]]


@dataclass
class AddonRuntime:
    settings: AddonSettings
    manifest: Manifest
    verifier: TokenVerifier
    key_ring: KeyRing
    allowlist: HostAllowlist
    metrics: Metrics
    head_revision: str | None
    quotas: Quotas
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    intake: IntakeWriter | None = None
    jobs: JobQueue | None = None
    clockify: ClockifyClient | None = None
    outbound: OutboundHttp | None = None
    budget: PostgresBudget | None = None
    retention: RetentionScheduler | None = None
    #: Job handlers by kind, installed on the queue when it opens.
    job_handlers: dict[str, Callable[..., Awaitable[None]]] = field(default_factory=dict)
    #: Action types flows may use here: `clockify` everywhere, `http` in Universal Webhook.
    flow_action_types: set[str] = field(default_factory=lambda: {"clockify"})
    on_installed: list[LifecycleHook] = field(default_factory=list)
    on_deleted: list[LifecycleHook] = field(default_factory=list)
    #: What Clockify calls go through: None for the network; `create_addon_app` passes a
    #: fake Clockify's transport in (tests) or a shared pool's.
    http_transport: httpx.AsyncBaseTransport | None = None
    http: httpx.AsyncClient | None = None
    _catalogue: Catalogue | None = None

    @property
    def addon_key(self) -> str:
        return self.settings.addon_key

    async def open(self, *, start_workers: bool = True) -> None:
        """Create the engine and clients; start the background workers unless told not to.

        `start_workers=False` opens everything a one-shot command or a test needs and
        leaves jobs to `jobs.run_until_idle()`.
        """
        settings = self.settings
        self.engine = create_engine(settings.database_url)
        # Sessions write on what they read (lifecycle, flows): see `for_writing`.
        self.sessions = create_session_factory(for_writing(self.engine))
        self.http = create_http_client(
            self.http_transport, timeout_seconds=settings.clockify_timeout_seconds
        )
        self.budget = open_shared_budget(
            self.engine,
            self.addon_key,
            settings.clockify_rate_limit,
            # A held slot outlives the longest call: a timeout on each of its retries.
            hold_seconds=settings.clockify_timeout_seconds + 5.0,
        )
        self.clockify = ClockifyClient(
            allowlist=self.allowlist,
            metrics=self.metrics,
            pacer=Pacer(settings.clockify_rate_limit, settings.clockify_burst, shared=self.budget),
            http=self.http,
            attempts=settings.clockify_retry_attempts,
            backoff_base=settings.clockify_backoff_seconds,
            backoff_max=settings.clockify_backoff_max_seconds,
            max_retry_after=settings.clockify_max_retry_after_seconds,
        )
        self.outbound = OutboundHttp.from_settings(settings)
        self.jobs = JobQueue(
            self.engine,
            self.sessions,
            self.addon_key,
            self.metrics,
            workers=settings.job_workers,
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            backoff_seconds=settings.job_backoff_seconds,
            backoff_max_seconds=settings.job_backoff_max_seconds,
            poll_seconds=settings.job_poll_seconds,
            heartbeat_seconds=settings.job_heartbeat_seconds,
            worker_timeout_seconds=settings.job_worker_timeout_seconds,
        )
        for kind, handler in self.job_handlers.items():
            self.jobs.register(kind, handler)
        self.intake = IntakeWriter(
            self.engine,
            self.addon_key,
            self.metrics,
            batch_size=settings.intake_batch_size,
            dedupe_window=timedelta(seconds=settings.dedupe_window_seconds),
            job_attempts=settings.job_max_attempts,
            on_stored=self.jobs.wake,
        )
        self.retention = RetentionScheduler(
            self.engine,
            self.addon_key,
            RetentionPolicy.from_settings(settings),
            interval_seconds=settings.retention_interval_seconds,
            metrics=self.metrics,
        )
        await self.intake.start()
        if start_workers:
            await self.jobs.start()
            await self.retention.start()

    async def close(self) -> None:
        """Finish queued work, stop the workers and close connections (engine last)."""
        grace = self.settings.shutdown_grace_seconds
        if self.intake is not None:
            await self.intake.stop(grace)
        if self.jobs is not None:
            await self.jobs.stop(grace)
        if self.retention is not None:
            await self.retention.stop()
        if self.http is not None:
            await self.http.aclose()
        if self.outbound is not None:
            await self.outbound.aclose()
        if self.budget is not None:
            await self.budget.aclose()
        if self.engine is not None:
            await self.engine.dispose()

    def add_job_handler(self, kind: str, handler: Callable[..., Awaitable[None]]) -> None:
        """Handle jobs of `kind` (call before `open`)."""
        self.job_handlers[kind] = handler

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

    def queue(self) -> JobQueue:
        if self.jobs is None:
            raise RuntimeError("the app's lifespan has not started")
        return self.jobs

    def client(self) -> ClockifyClient:
        if self.clockify is None:
            raise RuntimeError("the app's lifespan has not started")
        return self.clockify

    async def installation(self, session: AsyncSession, workspace_id: str) -> Installation:
        """This add-on's live installation in a workspace, or 404."""
        installation = await session.scalar(
            select(Installation).where(
                Installation.addon_key == self.addon_key,
                Installation.workspace_id == workspace_id,
            )
        )
        if installation is None or installation.status == "DELETED":
            raise NotFoundError(f"the add-on is not installed in workspace {workspace_id}")
        return installation

    def installation_context(self, installation: Installation) -> InstallationContext:
        """What the Clockify client needs to call for an installation (token decrypted)."""
        if not installation.auth_token:
            raise ConflictError(
                f"the installation in workspace {installation.workspace_id} has no token; "
                "reinstall the add-on"
            )
        token = self.key_ring.decrypt(
            installation.auth_token,
            token_context(self.addon_key, installation.workspace_id, INSTALLATION_PURPOSE),
        )
        return InstallationContext(
            workspace_id=installation.workspace_id,
            token=token,
            base_urls=dict(installation.api_urls),
        )

    async def context_for(self, workspace_id: str) -> InstallationContext:
        """Read the installation of a workspace and build its call context."""
        _engine, sessions = self.db()
        async with sessions() as session:
            return self.installation_context(await self.installation(session, workspace_id))

    def verify_token(self, token: str | None, kind: TokenKind) -> Claims:
        """Verify a Clockify token, counting a refusal by kind and reason."""
        try:
            return self.verifier.verify(token, kind)
        except TokenError as exc:
            self.metrics.verification_failures.labels(self.addon_key, kind.value, exc.reason).inc()
            raise

    def db(self) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
        if self.engine is None or self.sessions is None:
            raise RuntimeError("the app's lifespan has not started")
        return self.engine, self.sessions


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


#: How handlers ask for the runtime: `runtime: Runtime`.
Runtime = NamedDependency[AddonRuntime]
