"""The `clockify-addons` command line: serve, migrate, manifest, keys, openapi, sandbox, jobs.

Each command imports what it uses when it runs, so `--help` stays fast, and an error
reaches the operator as one line.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from addon_core.settings import AddonSettings

T = TypeVar("T")

#: APP → (environment prefix, default port); kept here so `--help` imports no app
#: (tests/unit/test_cli_help.py checks it against the apps' settings classes).
APPS: dict[str, tuple[str, int]] = {
    "api-studio": ("API_STUDIO_", 8100),
    "universal-webhook": ("UNIVERSAL_WEBHOOK_", 8200),
}
APP = click.argument("app", type=click.Choice(list(APPS)), metavar="APP")


def variable(field: str) -> str:
    """Name a setting's variable for both apps, for help text."""
    return " / ".join(f"{prefix}{field}" for prefix, _ in APPS.values())


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings(app: str, **overrides: Any) -> AddonSettings:
    from addon_core.apps import load_spec
    from addon_core.errors import ConfigError
    from addon_core.settings import load_settings

    try:
        return load_settings(load_spec(app).settings_class, **overrides)
    except ConfigError as exc:
        _fail(exc.detail)


class _OneLineErrors(click.Group):
    """Report what went wrong in one line, never a traceback (`--traceback` shows it)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if ctx.params.get("traceback"):
                raise
            _fail(describe_error(exc), code=1)


def describe_error(exc: BaseException) -> str:
    """Say in one line, with secrets masked, what an unexpected error was."""
    from addon_core.errors import AddonError
    from addon_core.redaction import redact_text

    if isinstance(exc, AddonError):
        return exc.detail
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    first = (redact_text(str(exc)).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} (run again with --traceback for the details)"


@click.group(
    cls=_OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Run and operate the Clockify add-ons API Studio and Universal Webhook.\n\n"
    "APP is `api-studio` or `universal-webhook`. Configuration comes from the environment "
    "(API_STUDIO_* or UNIVERSAL_WEBHOOK_*); see docs/configuration.md.",
)
@click.version_option(package_name="clockify-addons", prog_name="clockify-addons")
@click.option("--traceback", is_flag=True, hidden=True, help="Show the traceback of an error.")
def main(traceback: bool) -> None:
    """The `clockify-addons` group; its help text is the `help` argument above."""


@main.command(help="Migrate the database to the latest revision, then serve APP until SIGTERM.")
@APP
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=int, default=None, help=f"Port (default: {variable('PORT')}, else 8100 / 8200)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes sharing the port (more than 1 needs PostgreSQL).",
)
@click.option("--fd", type=int, default=None, hidden=True, help="Serve on this inherited socket.")
def serve(app: str, host: str, port: int | None, workers: int, fd: int | None) -> None:
    from addon_core.app import create_addon_app
    from addon_core.apps import load_spec
    from addon_core.errors import ConfigError
    from addon_core.logs import configure_logging
    from addon_core.serving import check_workers_allowed, serve_app
    from addon_core.tracing import configure_tracing

    settings = _settings(app, **({"port": port} if port else {}))
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        check_workers_allowed(settings, workers)
        configure_tracing(settings.app_name, settings.tracing, settings.env_name("tracing"))
        application = create_addon_app(load_spec(app), settings)
    except ConfigError as exc:
        _fail(exc.detail)
    _migrate_or_fail(settings)
    if not serve_app(application, settings, host=host, workers=workers, fd=fd):
        sys.exit(1)


@main.command(help="Bring APP's database to the latest migration.")
@APP
def migrate(app: str) -> None:
    from addon_core.logs import configure_logging

    settings = _settings(app)
    configure_logging(settings.log_level_number, settings.log_format)
    revision = _migrate_or_fail(settings)
    click.echo(f"database at revision {revision}")


def _migrate_or_fail(settings: AddonSettings) -> str | None:
    import asyncio

    from addon_core.redaction import redact_text
    from addon_core.storage.database import DATABASE_ERRORS

    try:
        return asyncio.run(_migrate(settings.database_url))
    except DATABASE_ERRORS as exc:
        _fail(
            f"{settings.env_name('database_url')}: cannot migrate the database "
            f"({type(exc).__name__}: {redact_text(str(exc)).splitlines()[0]})"
        )


async def _migrate(url: str) -> str | None:
    from addon_core.storage.database import create_engine, current_revision, upgrade_to_head

    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@main.command(
    help="Print APP's manifest as served; with --check, validate it and exit 1 if invalid."
)
@APP
@click.option("--check", is_flag=True, help="Validate against Clockify's manifest schema.")
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Schema file (default: the schema of the manifest's version, shipped in the package).",
)
def manifest(app: str, check: bool, schema: Path | None) -> None:
    import json

    from addon_core.clockify.manifest import load_manifest, validate_against_schema
    from addon_core.clockify.shipped_data import shipped_manifest_schema

    settings = _settings(app)
    document = load_manifest(app).render(base_url=settings.base_url, key=settings.addon_key)
    if not check:
        click.echo(json.dumps(document, indent=2))
        return
    version = str(document["schemaVersion"])
    if schema is None:
        schema = shipped_manifest_schema(version)
        if not schema.is_file():
            _fail(f"no manifest schema {version} ships with the package; pass --schema FILE")
    errors = validate_against_schema(document, _read_schema(schema, version))
    for error in errors:
        click.echo(f"invalid: {error}", err=True)
    if errors:
        sys.exit(1)
    click.echo(f"{app}: manifest valid against {schema.name}")


def _read_schema(path: Path, version: str) -> dict[str, Any]:
    import json

    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    expected = f"expected Clockify's manifest JSON Schema {version}"
    try:
        schema = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        _fail(f"--schema {path}: cannot read it as JSON ({exc}): {expected}")
    if not isinstance(schema, dict):
        _fail(f"--schema {path}: holds a JSON {type(schema).__name__}, not an object: {expected}")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        _fail(f"--schema {path}: not a valid JSON Schema ({exc.message}): {expected}")
    return schema


@main.command(
    "rotate-keys",
    help=f"Re-encrypt APP's stored tokens with the first key of {variable('ENCRYPTION_KEYS')}.",
)
@APP
def rotate_keys(app: str) -> None:
    import asyncio

    from addon_core.errors import AddonError
    from addon_core.logs import configure_logging

    settings = _settings(app)
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        count = asyncio.run(_rotate(settings))
    except AddonError as exc:
        _fail(f"{exc.detail}; nothing was changed")
    click.echo(f"re-encrypted {count} secret(s)")


async def _rotate(settings: AddonSettings) -> int:
    from sqlalchemy import insert

    from addon_core import audit
    from addon_core.runtime import key_ring_from
    from addon_core.storage.database import create_engine, for_writing
    from addon_core.storage.models import AuditEntry
    from addon_core.storage.vault import rotate_secrets

    ring = key_ring_from(settings)
    engine = create_engine(settings.database_url)
    try:
        async with for_writing(engine).begin() as conn:
            touched: set[str] = set()
            count = await rotate_secrets(conn, settings.addon_key, ring, touched)
            for workspace_id in sorted(touched):
                entry = audit.values(
                    settings.addon_key, workspace_id, audit.OPERATOR, "keys.rotated"
                )
                await conn.execute(insert(AuditEntry).values(**entry))
            return count
    finally:
        await engine.dispose()


@main.group()
def openapi() -> None:
    """Clockify's OpenAPI document, which the operation catalogue is built from."""


@openapi.command(
    "fetch",
    help="Store Clockify's OpenAPI document in APP's data directory; the catalogue is read "
    "from it afterwards instead of the one shipped in the package (delete the file to return "
    "to that). SOURCE is an http(s) URL, a file:// URL or a path; default: "
    f"{variable('CLOCKIFY_OPENAPI_URL')}.",
)
@APP
@click.argument("source", required=False)
def openapi_fetch(app: str, source: str | None) -> None:
    from addon_core.clockify.catalogue import copy_openapi, load_catalogue

    settings = _settings(app)
    path = copy_openapi(source or settings.clockify_openapi_url, settings.fetched_openapi_path)
    click.echo(f"{path}: {len(load_catalogue(path))} operations")
    if settings.clockify_openapi_file is not None:
        click.echo(
            f"note: {settings.env_name('clockify_openapi_file')} is set and still takes "
            "precedence; unset it to use this document",
            err=True,
        )


@main.command(
    "generate-key", help=f"Print a new random encryption key for {variable('ENCRYPTION_KEYS')}."
)
def generate_key_command() -> None:
    from addon_core.storage.encryption import generate_key

    click.echo(generate_key())


@main.command()
@APP
def retention(app: str) -> None:
    """Delete rows older than their retention window once, and print the counts."""
    import asyncio

    from addon_core.storage.retention import run_once

    deleted = asyncio.run(run_once(_settings(app)))
    for table, count in deleted.items():
        click.echo(f"{table}: {count} deleted")


@main.command()
@APP
@click.option("--sandbox-port", type=int, default=8300, show_default=True)
@click.option("--port", "app_port", type=int, default=None, help="App port (default 8100 / 8200).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/sandbox"),
    show_default=True,
)
@click.option("--seed", type=int, default=0, show_default=True)
def sandbox(app: str, sandbox_port: int, app_port: int | None, data_dir: Path, seed: int) -> None:
    """Run APP against a local Clockify sandbox: install, then a signed webhook."""
    from addon_core.sandbox.launcher import run_demo

    port = app_port or APPS[app][1]
    sys.exit(run_demo(app, sandbox_port=sandbox_port, app_port=port, data_dir=data_dir, seed=seed))


@main.group()
def jobs() -> None:
    """Background jobs: list dead ones, replay one (the running app picks it up)."""


@jobs.command("dead")
@APP
@click.option("--workspace", help="Only this workspace's dead jobs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line instead of a table.")
def jobs_dead(app: str, workspace: str | None, limit: int, as_json: bool) -> None:
    """List APP's dead jobs, newest first, with their last error (secrets masked)."""
    import json

    from addon_core.jobs.dead_letters import render_job
    from addon_core.jobs.rows import list_dead_jobs

    settings = _settings(app)
    rows = _run_on_database(
        settings,
        lambda sessions: list_dead_jobs(sessions, settings.addon_key, workspace, limit=limit),
    )
    if as_json:
        for job in rows:
            click.echo(json.dumps({**render_job(job), "workspaceId": job.workspace_id}))
        return
    if not rows:
        click.echo("no dead jobs")
        return
    table = [("ID", "WORKSPACE", "KIND", "ATTEMPTS", "UPDATED", "LAST ERROR")]
    for job in rows:
        rendered = render_job(job)
        error = " ".join((rendered["lastError"] or "").split())
        table.append(
            (
                str(job.id),
                job.workspace_id,
                job.kind,
                str(job.attempts),
                rendered["updatedAt"][:19],
                error if len(error) <= 80 else error[:79] + "…",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        click.echo("  ".join([*cells, row[-1]]).rstrip())


@jobs.command("replay")
@APP
@click.argument("job_id", type=int)
def jobs_replay(app: str, job_id: int) -> None:
    """Queue APP's dead job JOB_ID again with fresh attempts; exit 1 if it is not dead."""
    from addon_core.jobs.rows import replay_job

    settings = _settings(app)
    job = _run_on_database(
        settings, lambda sessions: replay_job(sessions, settings.addon_key, job_id)
    )
    click.echo(f"job {job.id} ({job.kind}, workspace {job.workspace_id}) queued again")


def _run_on_database(
    settings: AddonSettings,
    work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]],
) -> T:
    """Run `work` with a session factory on the configured database; fail in one line."""
    import asyncio

    from addon_core.errors import AddonError
    from addon_core.logs import configure_logging
    from addon_core.redaction import redact_text
    from addon_core.storage.database import (
        DATABASE_ERRORS,
        create_engine,
        create_session_factory,
        for_writing,
    )

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            return await work(create_session_factory(for_writing(engine)))
        finally:
            await engine.dispose()

    configure_logging(settings.log_level_number, settings.log_format)
    try:
        return asyncio.run(run())
    except AddonError as exc:
        _fail(exc.detail, code=1)
    except DATABASE_ERRORS as exc:
        _fail(
            f"{settings.env_name('database_url')}: cannot read the database "
            f"({type(exc).__name__}: {redact_text(str(exc)).splitlines()[0]})",
            code=1,
        )
