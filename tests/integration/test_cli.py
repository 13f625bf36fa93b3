"""The installed `clockify-addons` console script, run as operators run it: a subprocess."""

from __future__ import annotations

import asyncio
import functools
import http.server
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy import insert

from addon_core.app import create_addon_app
from addon_core.clockify.manifest import load_manifest, schema_path
from addon_core.clockify.tokens import TokenSigner
from addon_core.settings import REFERENCE_DIR_VARIABLE
from addon_core.storage.database import create_engine, head_revision
from addon_core.storage.encryption import KeyRing, decode_key, generate_key
from addon_core.storage.models import Endpoint, Flow
from addon_core.storage.vault import INSTALLATION_PURPOSE, token_context
from tests.db import fetch_all
from tests.fake_clockify import Clockify, Workspace
from tests.harness import SCRIPT, free_port, run_cli
from universal_webhook.app import SPEC, UniversalWebhookSettings

PREFIXES = ("UNIVERSAL_WEBHOOK_", "API_STUDIO_")
APP_TABLES = {"installations", "webhook_registrations", "events", "lifecycle_audit"}
BASE_URL = "https://addons.example.com/uw"
SERVE_START_TIMEOUT = 20
GRACE_SECONDS = 3


async def run_cli_async(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, *args, env=env)


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the subprocesses keep compiled bytecode, so that only the first one compiles."""
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def cli_env(tmp_path: Path, bytecode_cache: Path) -> dict[str, str]:
    """The environment plus test settings for both apps, without stray add-on variables."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(PREFIXES)
        and name not in {REFERENCE_DIR_VARIABLE, "PYTHONDONTWRITEBYTECODE"}
    }
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    for prefix in PREFIXES:
        env[f"{prefix}DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
        env[f"{prefix}DATA_DIR"] = str(tmp_path / "data")
        env[f"{prefix}ENCRYPTION_KEYS"] = generate_key()
    return env


async def table_names(database_url: str) -> set[str]:
    if database_url.startswith("sqlite"):
        rows = await fetch_all(database_url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = await fetch_all(
            database_url,
            "SELECT table_name AS name FROM information_schema.tables "
            "WHERE table_schema = current_schema()",
        )
    return {row["name"] for row in rows}


# --- help and keys ----------------------------------------------------------------------


def test_help_lists_every_command(cli_env: dict[str, str]) -> None:
    result = run_cli("--help", env=cli_env)

    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "manifest", "rotate-keys", "generate-key", "jobs"):
        assert command in result.stdout


COMMANDS = [
    "serve",
    "migrate",
    "manifest",
    "rotate-keys",
    "generate-key",
    "retention",
    "sandbox",
    "openapi fetch",
    "jobs dead",
    "jobs replay",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_exits_zero_and_names_real_variables(
    command: str, cli_env: dict[str, str]
) -> None:
    result = run_cli(*command.split(), "--help", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: clockify-addons {command} ")
    assert "{P}" not in result.stdout


def test_version_prints_the_package_version(cli_env: dict[str, str]) -> None:
    result = run_cli("--version", env=cli_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clockify-addons, version " + version("clockify-addons")


def test_unknown_app_is_refused(cli_env: dict[str, str]) -> None:
    result = run_cli("migrate", "no-such-app", env=cli_env)

    assert result.returncode != 0
    assert "api-studio" in result.stderr
    assert "universal-webhook" in result.stderr


def test_generate_key_prints_a_usable_key(cli_env: dict[str, str]) -> None:
    first = run_cli("generate-key", env=cli_env)
    second = run_cli("generate-key", env=cli_env)

    assert first.returncode == 0, first.stderr
    assert len(decode_key(first.stdout.strip())) == 32
    assert first.stdout.strip() != second.stdout.strip()


# --- manifest ---------------------------------------------------------------------------


def test_manifest_prints_json_with_configured_base_url(cli_env: dict[str, str]) -> None:
    env = {**cli_env, "API_STUDIO_BASE_URL": "https://studio.example.org/base"}

    result = run_cli("manifest", "api-studio", env=env)

    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["baseUrl"] == "https://studio.example.org/base"
    assert manifest["key"] == "api-studio"
    assert manifest["name"] == "API Studio"


def test_manifest_check_passes_with_schema_file(
    cli_env: dict[str, str], reference_dir: Path
) -> None:
    version = load_manifest("universal-webhook").schema_version
    schema = schema_path(reference_dir, version)

    result = run_cli(
        "manifest", "universal-webhook", "--check", "--schema", str(schema), env=cli_env
    )

    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_manifest_check_uses_the_schema_shipped_in_the_package(cli_env: dict[str, str]) -> None:
    # cli_env has no CLOCKIFY_REFERENCE_DIR: nothing but the package is needed.
    result = run_cli("manifest", "universal-webhook", "--check", env=cli_env)

    assert result.returncode == 0, result.stderr
    version = load_manifest("universal-webhook").schema_version
    assert (
        result.stdout.strip()
        == f"universal-webhook: manifest valid against manifest-schema-{version}.json"
    )


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("schema: yes\n", "cannot read it as JSON"),
        ("[1, 2]", "not an object"),
        ('{"type": 5}', "not a valid JSON Schema"),
    ],
)
def test_manifest_check_with_an_unusable_schema_file_fails_in_one_line(
    cli_env: dict[str, str], tmp_path: Path, content: str, complaint: str
) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(content)

    result = run_cli("manifest", "api-studio", "--check", "--schema", str(schema), env=cli_env)

    assert result.returncode == 2
    [line] = stderr_lines(result)
    assert line.startswith(f"error: --schema {schema}: ")
    assert complaint in line
    assert result.stdout == ""


def test_manifest_check_fails_on_schema_violation(
    cli_env: dict[str, str], reference_dir: Path, tmp_path: Path
) -> None:
    version = load_manifest("universal-webhook").schema_version
    schema = json.loads(schema_path(reference_dir, version).read_text())
    schema["required"] = [*schema["required"], "iconPath"]
    strict = tmp_path / "strict-schema.json"
    strict.write_text(json.dumps(schema))

    result = run_cli(
        "manifest", "universal-webhook", "--check", "--schema", str(strict), env=cli_env
    )

    assert result.returncode == 1
    assert "iconPath" in result.stderr


# --- migrate ----------------------------------------------------------------------------


async def test_migrate_creates_the_tables(empty_database_url: str, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "UNIVERSAL_WEBHOOK_DATABASE_URL": empty_database_url}

    result = await run_cli_async("migrate", "universal-webhook", env=env)

    assert result.returncode == 0, result.stderr
    assert f"database at revision {head_revision()}" in result.stdout
    assert await table_names(empty_database_url) >= APP_TABLES


async def test_migrate_twice_stays_at_head(
    empty_database_url: str, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "UNIVERSAL_WEBHOOK_DATABASE_URL": empty_database_url}

    await run_cli_async("migrate", "universal-webhook", env=env)
    again = await run_cli_async("migrate", "universal-webhook", env=env)

    assert again.returncode == 0, again.stderr
    assert f"database at revision {head_revision()}" in again.stdout


# --- configuration errors ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "serve"])
def test_invalid_setting_stops_with_one_line_naming_it(
    command: str, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "UNIVERSAL_WEBHOOK_TOKEN_LEEWAY_SECONDS": "500"}

    port = ["--port", str(free_port())] if command == "serve" else []

    result = run_cli(command, "universal-webhook", *port, env=env)

    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "UNIVERSAL_WEBHOOK_TOKEN_LEEWAY_SECONDS" in lines[0]
    assert "Traceback" not in result.stderr


def production_without_keys(cli_env: dict[str, str]) -> dict[str, str]:
    env = {**cli_env, "UNIVERSAL_WEBHOOK_ENVIRONMENT": "production"}
    del env["UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS"]
    return env


def test_production_without_encryption_keys_stops_with_one_line(cli_env: dict[str, str]) -> None:
    env = production_without_keys(cli_env)

    result = run_cli("serve", "universal-webhook", "--port", str(free_port()), env=env)

    assert result.returncode != 0
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS" in lines[0]


async def test_production_without_encryption_keys_leaves_the_database_alone(
    cli_env: dict[str, str],
) -> None:
    env = production_without_keys(cli_env)

    result = await asyncio.to_thread(
        run_cli, "serve", "universal-webhook", "--port", str(free_port()), env=env
    )

    assert result.returncode != 0
    assert not APP_TABLES & await table_names(env["UNIVERSAL_WEBHOOK_DATABASE_URL"])


# --- serve ------------------------------------------------------------------------------


def test_serve_answers_ready_then_exits_zero_on_sigterm(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {**cli_env, "UNIVERSAL_WEBHOOK_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(  # noqa: S603
            [str(SCRIPT), "serve", "universal-webhook", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = wait_until_ready(f"http://127.0.0.1:{port}", server, log_path)
        assert ready.json()["database"]["revision"] == head_revision()

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=GRACE_SECONDS + 15)

        assert code == 0, log_path.read_text()
        assert "Traceback" not in log_path.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def wait_until_ready(base: str, server: subprocess.Popen[bytes], log_path: Path) -> httpx.Response:
    """Poll /readyz until it answers 200; fail if the server dies or the deadline passes."""
    deadline = time.monotonic() + SERVE_START_TIMEOUT
    last: str = "no answer"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}: {log_path.read_text()}")
        try:
            response = httpx.get(f"{base}/readyz", timeout=2)
        except httpx.TransportError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                return response
            last = f"{response.status_code} {response.text}"
        time.sleep(0.2)
    pytest.fail(f"/readyz not 200 within {SERVE_START_TIMEOUT} s ({last}): {log_path.read_text()}")


# --- rotate-keys ------------------------------------------------------------------------


def app_with_keys(
    database_url: str, keys: tuple[str, ...], public_key_file: Path, data_dir: Path
) -> Litestar:
    settings = UniversalWebhookSettings(
        environment="test",
        database_url=database_url,
        clockify_public_key_file=public_key_file,
        encryption_keys=tuple(SecretStr(key) for key in keys),
        base_url=BASE_URL,
        data_dir=data_dir,
    )
    return create_addon_app(SPEC, settings)


async def stored_tokens(database_url: str) -> list[tuple[str, str]]:
    """(encryption context, ciphertext) of every stored token of Universal Webhook."""
    installations = await fetch_all(
        database_url,
        "SELECT workspace_id, auth_token FROM installations "
        "WHERE addon_key = 'universal-webhook' AND auth_token IS NOT NULL",
    )
    webhooks = await fetch_all(
        database_url,
        "SELECT workspace_id, path, auth_token FROM webhook_registrations "
        "WHERE addon_key = 'universal-webhook'",
    )
    return [
        (
            token_context("universal-webhook", r["workspace_id"], INSTALLATION_PURPOSE),
            r["auth_token"],
        )
        for r in installations
    ] + [
        (token_context("universal-webhook", r["workspace_id"], r["path"]), r["auth_token"])
        for r in webhooks
    ]


async def install_with_key(
    database_url: str, key: str, public_key_file: Path, data_dir: Path, workspace: Workspace
) -> None:
    app = app_with_keys(database_url, (key,), public_key_file, data_dir)
    async with AsyncTestClient(app=app) as client:
        await Clockify.for_app(client, "universal-webhook").install(workspace)


async def test_rotate_keys_re_encrypts_every_token_under_the_new_key(
    database_url: str,
    cli_env: dict[str, str],
    public_key_file: Path,
    signer: Callable[[str], TokenSigner],
    tmp_path: Path,
) -> None:
    old_key, new_key = generate_key(), generate_key()
    workspace = Workspace(signer("universal-webhook"))
    await install_with_key(database_url, old_key, public_key_file, tmp_path / "data", workspace)
    new_ring = KeyRing([decode_key(new_key)])
    before = await stored_tokens(database_url)
    assert len(before) == 1 + len(load_manifest("universal-webhook").webhook_events)
    assert not any(new_ring.is_current(ciphertext) for _, ciphertext in before)

    env = {
        **cli_env,
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": f"{new_key},{old_key}",
    }
    rotated = await run_cli_async("rotate-keys", "universal-webhook", env=env)
    again = await run_cli_async("rotate-keys", "universal-webhook", env=env)

    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == f"re-encrypted {len(before)} secret(s)"
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "re-encrypted 0 secret(s)"
    old_ring = KeyRing([decode_key(old_key)])
    plaintexts = {old_ring.decrypt(ciphertext, context) for context, ciphertext in before}
    after = await stored_tokens(database_url)
    assert {new_ring.decrypt(ciphertext, context) for context, ciphertext in after} == plaintexts
    # The operator's rotation is in the workspace's audit trail, once (the second changed nothing).
    entries = await fetch_all(database_url, "SELECT actor, kind, workspace_id FROM audit_log")
    assert [e for e in entries if e["kind"] == "keys.rotated"] == [
        {"actor": "operator", "kind": "keys.rotated", "workspace_id": workspace.workspace_id}
    ]


async def test_rotate_keys_re_encrypts_endpoint_and_flow_secrets(
    database_url: str, cli_env: dict[str, str]
) -> None:
    old_key, new_key = generate_key(), generate_key()
    old_ring, new_ring = KeyRing([decode_key(old_key)]), KeyRing([decode_key(new_key)])

    def sealed(purpose: str, secret: str) -> str:
        return old_ring.encrypt(secret, token_context("universal-webhook", "ws-1", purpose))

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(Endpoint).values(
                    id="ep1",
                    addon_key="universal-webhook",
                    workspace_id="ws-1",
                    name="CRM",
                    secret=sealed("endpoint:ep1", "whsec_new"),
                    previous_secret=sealed("endpoint:ep1", "whsec_old"),
                )
            )
            await connection.execute(
                insert(Flow).values(
                    id="fl1",
                    addon_key="universal-webhook",
                    workspace_id="ws-1",
                    name="F",
                    document={},
                    signing_secret=sealed("flow:fl1", "whsec_flow"),
                )
            )
    finally:
        await engine.dispose()
    env = {
        **cli_env,
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": f"{new_key},{old_key}",
    }

    rotated = await run_cli_async("rotate-keys", "universal-webhook", env=env)

    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "re-encrypted 3 secret(s)"
    [endpoint] = await fetch_all(database_url, "SELECT secret, previous_secret FROM endpoints")
    [flow] = await fetch_all(database_url, "SELECT signing_secret FROM flows")
    context = functools.partial(token_context, "universal-webhook", "ws-1")
    assert new_ring.decrypt(endpoint["secret"], context("endpoint:ep1")) == "whsec_new"
    assert new_ring.decrypt(endpoint["previous_secret"], context("endpoint:ep1")) == "whsec_old"
    assert new_ring.decrypt(flow["signing_secret"], context("flow:fl1")) == "whsec_flow"


async def test_workspace_keeps_receiving_webhooks_after_the_old_key_is_retired(
    database_url: str,
    cli_env: dict[str, str],
    public_key_file: Path,
    signer: Callable[[str], TokenSigner],
    tmp_path: Path,
) -> None:
    old_key, new_key = generate_key(), generate_key()
    workspace = Workspace(signer("universal-webhook"))
    data_dir = tmp_path / "data"
    await install_with_key(database_url, old_key, public_key_file, data_dir, workspace)
    env = {
        **cli_env,
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": f"{new_key},{old_key}",
    }
    rotated = await run_cli_async("rotate-keys", "universal-webhook", env=env)
    assert rotated.returncode == 0, rotated.stderr

    async with AsyncTestClient(
        app=app_with_keys(database_url, (new_key,), public_key_file, data_dir)
    ) as client:
        response = await Clockify.for_app(client, "universal-webhook").send_webhook(
            workspace,
            "NEW_TIME_ENTRY",
            {"id": "te1", "workspaceId": workspace.workspace_id, "description": "rotated"},
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}


@pytest.fixture
async def token_under_unknown_key(
    database_url: str,
    cli_env: dict[str, str],
    public_key_file: Path,
    signer: Callable[[str], TokenSigner],
    tmp_path: Path,
) -> dict[str, str]:
    """A database with a workspace under key A, then one under a key nobody configures;
    returns the environment of a rotation from A to B."""
    old_key, new_key = generate_key(), generate_key()
    for key in (old_key, generate_key()):
        workspace = Workspace(signer("universal-webhook"))
        await install_with_key(database_url, key, public_key_file, tmp_path / "data", workspace)
    return {
        **cli_env,
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": f"{new_key},{old_key}",
    }


async def test_rotate_keys_changes_nothing_if_one_token_cannot_be_decrypted(
    database_url: str, token_under_unknown_key: dict[str, str]
) -> None:
    before = await stored_tokens(database_url)

    result = await run_cli_async("rotate-keys", "universal-webhook", env=token_under_unknown_key)

    assert result.returncode != 0
    assert await stored_tokens(database_url) == before


async def test_rotate_keys_explains_an_undecryptable_token_in_one_line(
    token_under_unknown_key: dict[str, str],
) -> None:
    result = await run_cli_async("rotate-keys", "universal-webhook", env=token_under_unknown_key)

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "ENCRYPTION_KEYS" in lines[0]


# --- openapi fetch --------------------------------------------------------------------------


@pytest.fixture
def document_server(reference_dir: Path) -> Iterator[str]:
    """A local HTTP server publishing Clockify's OpenAPI document, as Clockify's docs do."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(reference_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_openapi_fetch_downloads_the_document_into_the_data_dir(
    cli_env: dict[str, str], document_server: str, tmp_path: Path
) -> None:
    env = {
        **cli_env,
        "UNIVERSAL_WEBHOOK_CLOCKIFY_OPENAPI_URL": f"{document_server}/openapi.json",
    }

    result = run_cli("openapi", "fetch", "universal-webhook", env=env)

    assert result.returncode == 0, result.stderr
    fetched = tmp_path / "data" / "clockify-openapi.json"
    assert result.stdout.strip() == f"{fetched}: 170 operations"
    assert fetched.stat().st_size > 500_000


@pytest.mark.parametrize("form", ["path", "file-url"])
def test_openapi_fetch_copies_a_local_document_which_then_takes_precedence(
    cli_env: dict[str, str], reference_dir: Path, tmp_path: Path, form: str
) -> None:
    document = reference_dir / "openapi.json"
    source = str(document) if form == "path" else document.as_uri()
    fetched = tmp_path / "data" / "clockify-openapi.json"
    settings = UniversalWebhookSettings(data_dir=tmp_path / "data")
    assert settings.openapi_path != fetched  # the shipped catalogue, before

    result = run_cli("openapi", "fetch", "universal-webhook", source, env=cli_env)

    assert result.returncode == 0, result.stderr
    assert fetched.read_bytes() == document.read_bytes()
    assert settings.openapi_path == fetched
    assert result.stderr == ""


def test_openapi_fetch_says_when_the_file_setting_still_wins(
    cli_env: dict[str, str], reference_dir: Path, tmp_path: Path
) -> None:
    env = {**cli_env, "API_STUDIO_CLOCKIFY_OPENAPI_FILE": str(reference_dir / "openapi.json")}

    result = run_cli("openapi", "fetch", "api-studio", str(reference_dir / "openapi.json"), env=env)

    assert result.returncode == 0, result.stderr
    assert "API_STUDIO_CLOCKIFY_OPENAPI_FILE is set and still takes precedence" in result.stderr


@pytest.mark.parametrize("source", ["missing.json", "PLATFORM.md"])
def test_openapi_fetch_of_a_bad_local_source_fails_in_one_line_and_writes_nothing(
    cli_env: dict[str, str], reference_dir: Path, tmp_path: Path, source: str
) -> None:
    result = run_cli("openapi", "fetch", "api-studio", str(reference_dir / source), env=cli_env)

    assert result.returncode == 1
    [line] = stderr_lines(result)
    assert line.startswith("error: ")
    assert source in line
    assert not (tmp_path / "data").exists()


def test_openapi_fetch_into_an_unusable_data_dir_fails_in_one_line(
    cli_env: dict[str, str], reference_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**cli_env, "API_STUDIO_DATA_DIR": str(blocker / "data")}

    result = run_cli("openapi", "fetch", "api-studio", str(reference_dir / "openapi.json"), env=env)

    assert result.returncode == 1
    [line] = stderr_lines(result)
    assert line == f"error: Not a directory: {blocker / 'data'}"


def test_openapi_fetch_of_something_else_fails_in_one_line_and_writes_nothing(
    cli_env: dict[str, str], document_server: str, tmp_path: Path
) -> None:
    target = tmp_path / "data" / "clockify-openapi.json"
    env = {
        **cli_env,
        "UNIVERSAL_WEBHOOK_CLOCKIFY_OPENAPI_URL": f"{document_server}/PLATFORM.md",
    }

    result = run_cli("openapi", "fetch", "universal-webhook", env=env)

    assert result.returncode == 1
    assert len(stderr_lines(result)) == 1
    assert not target.exists()
