"""Shared fixtures: Clockify's reference data, a per-run RSA key, databases and apps.

PostgreSQL runs when ADDONS_TEST_POSTGRES_URL names a server (`.ci/run` starts one);
every database test then runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from addon_core.app import AppSpec, create_addon_app
from addon_core.clockify.manifest import Manifest
from addon_core.clockify.tokens import TokenSigner
from addon_core.sandbox import Sandbox
from addon_core.settings import REFERENCE_DIR_VARIABLE, AddonSettings
from addon_core.storage.database import create_engine, upgrade_to_head
from addon_core.storage.encryption import generate_key
from api_studio.app import SPEC as API_STUDIO
from tests.fake_clockify import Clockify, Workspace
from tests.harness import Api, InstallApp, ServeApp, answer_clockify
from tests.served_app import AppProcess, app_environment
from universal_webhook.app import SPEC as UNIVERSAL_WEBHOOK

REPO = Path(__file__).resolve().parent.parent
POSTGRES_VARIABLE = "ADDONS_TEST_POSTGRES_URL"
SPECS = {"api-studio": API_STUDIO, "universal-webhook": UNIVERSAL_WEBHOOK}


# --- no network --------------------------------------------------------------------------

#: The only hosts a test may resolve: servers the tests start themselves.
LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Refuse to resolve any host but loopback, so no test can reach the real Clockify.

    Apps installed with the fake Clockify's `Workspace` name https://api.clockify.me as
    their base URL; their background jobs (bootstrap, coverage) fail fast on this instead
    of calling out.
    """
    resolve = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and name not in LOCAL_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"tests make no network calls ({name})")
        return resolve(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", loopback_only)
        yield


# --- reference data ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """Clockify's reference data: $CLOCKIFY_REFERENCE_DIR, else ../shared/clockify."""
    folder = Path(os.environ.get(REFERENCE_DIR_VARIABLE) or REPO.parent / "shared" / "clockify")
    if not (folder / "manifest-schema-1.6.json").is_file():
        pytest.fail(
            f"Clockify's reference data is not in {folder}: set {REFERENCE_DIR_VARIABLE} "
            "to the folder holding openapi.json, manifest-schema-*.json and webhook-samples.json",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def webhook_samples(reference_dir: Path) -> dict[str, dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = json.loads(
        (reference_dir / "webhook-samples.json").read_text()
    )
    return samples


# --- keys ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def public_key_file(
    private_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("keys") / "clockify-test-key.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return generate_key()


# --- databases -----------------------------------------------------------------------------


def _postgres_url() -> str | None:
    return os.environ.get(POSTGRES_VARIABLE) or None


async def create_postgres_database(admin_url: str) -> str:
    """Create an empty database on the test server and return its URL."""
    name = f"addons_test_{uuid.uuid4().hex[:12]}"
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not _postgres_url():
        pytest.skip(f"{POSTGRES_VARIABLE} is not set")
    return str(request.param)


@pytest.fixture
async def empty_database_url(database_kind: str, tmp_path: Path) -> str:
    """A database with no tables, on SQLite or PostgreSQL."""
    if database_kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'addons.db'}"
    admin = _postgres_url()
    assert admin is not None
    return await create_postgres_database(admin)


@pytest.fixture
async def database_url(empty_database_url: str) -> str:
    """A database at the latest migration."""
    engine = create_engine(empty_database_url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return empty_database_url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database at the latest migration, disposed after the test."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


# --- apps ----------------------------------------------------------------------------------


@pytest.fixture
def make_settings(
    database_url: str, public_key_file: Path, encryption_key: str, tmp_path: Path
) -> Callable[..., AddonSettings]:
    def build(app_name: str = "universal-webhook", **overrides: Any) -> AddonSettings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "clockify_public_key_file": public_key_file,
            "encryption_keys": (encryption_key,),
            "base_url": "https://addons.example.com/uw",
            "data_dir": tmp_path / "data",
            **overrides,
        }
        return SPECS[app_name].settings_class(**values)

    return build


@pytest.fixture
def make_app(make_settings: Callable[..., AddonSettings]) -> Callable[..., Litestar]:
    """Build an app on the test's database; `clockify_transport` is the Clockify it calls."""

    def build(
        app_name: str = "universal-webhook",
        *,
        manifest: Manifest | None = None,
        clockify_transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> Litestar:
        spec: AppSpec = SPECS[app_name]
        return create_addon_app(
            spec,
            make_settings(app_name, **overrides),
            manifest=manifest,
            clockify_transport=clockify_transport,
        )

    return build


@pytest.fixture(params=["api-studio", "universal-webhook"])
def app_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def signer(private_key: rsa.RSAPrivateKey) -> Callable[[str], TokenSigner]:
    def for_key(addon_key: str) -> TokenSigner:
        return TokenSigner(private_key, addon_key)

    return for_key


@pytest.fixture
async def client(make_app: Callable[..., Litestar]) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The Universal Webhook app, running, on the parametrised database."""
    async with AsyncTestClient(app=make_app("universal-webhook")) as test_client:
        yield test_client


@pytest.fixture
def clockify(client: AsyncTestClient[Litestar]) -> Clockify:
    return Clockify.for_app(client, "universal-webhook")


@pytest.fixture
def workspace(signer: Callable[[str], TokenSigner]) -> Workspace:
    return Workspace(signer("universal-webhook"))


@pytest.fixture
def fresh_workspace(signer: Callable[[str], TokenSigner]) -> Callable[[], Workspace]:
    """Make further workspaces, each with its own ids and tokens."""
    return lambda: Workspace(signer("universal-webhook"))


@pytest.fixture
def processes() -> Iterator[list[AppProcess]]:
    """App processes (`clockify-addons serve`) a test starts; any still running is killed."""
    started: list[AppProcess] = []
    yield started
    for app in started:
        app.kill()
        if app.process is not None:
            app.process.wait(30)


@pytest.fixture
def serve_app(
    database_url: str,
    sandbox: Sandbox,
    tmp_path: Path,
    reference_dir: Path,
    processes: list[AppProcess],
) -> ServeApp:
    """Start `count` served Universal Webhook processes against the sandbox, one environment.

    Keywords are settings (without the prefix) for `app_environment`; the processes are
    killed at the end of the test if still running.
    """

    async def start(count: int = 1, **settings: str) -> list[AppProcess]:
        environment = app_environment(database_url, sandbox, tmp_path, reference_dir, **settings)
        apps = [AppProcess(environment, tmp_path / f"serve-{n}.log") for n in range(count)]
        processes.extend(apps)
        for app in apps:
            await app.start()
        return apps

    return start


@pytest.fixture
def install_app(
    make_app: Callable[..., Litestar],
    reference_dir: Path,
    database_url: str,
    signer: Callable[[str], TokenSigner],
) -> InstallApp:
    """Run an app (shipped catalogue, no bootstrap) installed in a fresh workspace.

    Its Clockify is `answer_clockify` recording into `Api.sent`, unless `clockify_transport`
    names another; further keywords override settings.
    """

    @asynccontextmanager
    async def start(
        app_name: str = "universal-webhook",
        *,
        clockify_transport: httpx.AsyncBaseTransport | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Api]:
        sent: list[httpx.Request] = []
        app = make_app(
            app_name,
            clockify_transport=clockify_transport or answer_clockify(sent),
            **{
                "clockify_openapi_file": reference_dir / "openapi.json",
                "bootstrap_enabled": False,
                **overrides,
            },
        )
        async with AsyncTestClient(app=app) as client:
            clockify = Clockify.for_app(client, app_name)
            workspace = Workspace(signer(app_name))
            await clockify.install(workspace)
            yield Api(client, clockify, workspace, database_url, app_name, sent)

    return start


@pytest.fixture
async def api(app_name: str, install_app: InstallApp) -> AsyncIterator[Api]:
    """Each app in turn, installed in one workspace."""
    async with install_app(app_name) as installed:
        yield installed


@pytest.fixture
async def uw(install_app: InstallApp) -> AsyncIterator[Api]:
    """Universal Webhook only (signing secrets, http actions), installed in one workspace."""
    async with install_app("universal-webhook") as installed:
        yield installed


# --- the sandbox ---------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sandbox(seed=..., sizes=Sizes(...), **options): how the `sandbox` fixture seeds "
        "its Clockify (options go to `Sandbox.running`)",
    )


@pytest.fixture
async def sandbox(
    request: pytest.FixtureRequest, private_key: rsa.RSAPrivateKey, reference_dir: Path
) -> AsyncIterator[Sandbox]:
    """A local Clockify over HTTP, seeded as the test module's `sandbox` mark says."""
    marker = request.node.get_closest_marker("sandbox")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    async with Sandbox.running(
        private_key=private_key, reference_dir=reference_dir, **options
    ) as running:
        yield running
