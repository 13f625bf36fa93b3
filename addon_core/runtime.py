"""What one running app holds: its settings and the objects built from them.

Built in two steps: `build_runtime` (pure configuration, fails fast with a
`ConfigError`) when the app is created, then `open`/`close` in the lifespan
for what holds connections and tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from addon_core.database import (
    create_engine,
    create_session_factory,
    for_writing,
    head_revision,
)
from addon_core.encryption import KeyRing, load_key_ring
from addon_core.hosts import HostAllowlist
from addon_core.intake import IntakeWriter
from addon_core.manifest import Manifest
from addon_core.metrics import Metrics
from addon_core.security import Claims, TokenError, TokenKind, TokenVerifier, load_public_keys
from addon_core.settings import AddonSettings


@dataclass
class AddonRuntime:
    settings: AddonSettings
    manifest: Manifest
    verifier: TokenVerifier
    key_ring: KeyRing
    allowlist: HostAllowlist
    metrics: Metrics
    head_revision: str | None
    engine: AsyncEngine | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
    intake: IntakeWriter | None = None

    @property
    def addon_key(self) -> str:
        return self.settings.addon_key

    async def open(self) -> None:
        """Create the engine and start the background workers."""
        self.engine = create_engine(self.settings.database_url)
        # Sessions write on what they read (lifecycle, later flows): see `for_writing`.
        self.sessions = create_session_factory(for_writing(self.engine))
        self.intake = IntakeWriter(
            self.engine,
            self.addon_key,
            self.metrics,
            batch_size=self.settings.intake_batch_size,
            dedupe_window=timedelta(seconds=self.settings.dedupe_window_seconds),
        )
        await self.intake.start()

    async def close(self) -> None:
        """Finish queued work, stop the workers and close connections."""
        if self.intake is not None:
            await self.intake.stop(self.settings.shutdown_grace_seconds)
        if self.engine is not None:
            await self.engine.dispose()

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


def build_runtime(settings: AddonSettings, manifest: Manifest) -> AddonRuntime:
    """Check and build everything the settings describe, without touching the network."""
    keys = load_public_keys(
        settings.clockify_public_key_file, variable=settings.env_name("clockify_public_key_file")
    )
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
        metrics=Metrics(settings.addon_key),
        head_revision=head_revision(),
    )


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
