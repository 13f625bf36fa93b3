"""The `clockify-addons` command line: serve, migrate, manifest, jobs, rotate-keys, generate-key."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from addon_core.app import create_addon_app
from addon_core.apps import APP_SPECS
from addon_core.catalogue import fetch_openapi, load_catalogue
from addon_core.database import (
    DATABASE_ERRORS,
    create_engine,
    create_session_factory,
    current_revision,
    for_writing,
    upgrade_to_head,
)
from addon_core.dead_letters import render_job
from addon_core.encryption import generate_key
from addon_core.errors import AddonError, ConfigError
from addon_core.jobs import list_dead_jobs, replay_job
from addon_core.logs import configure_logging
from addon_core.manifest import load_manifest, schema_path, validate_against_schema
from addon_core.redaction import redact_text
from addon_core.runtime import key_ring_from
from addon_core.serving import server_config
from addon_core.settings import REFERENCE_DIR_VARIABLE, AddonSettings, load_settings, reference_dir
from addon_core.vault import rotate_secrets

T = TypeVar("T")

APP = click.argument("app", type=click.Choice(list(APP_SPECS)), metavar="APP")


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _settings(app: str, **overrides: Any) -> AddonSettings:
    try:
        return load_settings(APP_SPECS[app].settings_class, **overrides)
    except ConfigError as exc:
        _fail(exc.detail)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run and operate the Clockify add-ons API Studio and Universal Webhook.

    APP is `api-studio` or `universal-webhook`. Configuration comes from the
    environment (API_STUDIO_* or UNIVERSAL_WEBHOOK_*); see docs/configuration.md.
    """


@main.command()
@APP
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port (default: {P}PORT, 8100 / 8200).")
def serve(app: str, host: str, port: int | None) -> None:
    """Migrate the database to the latest revision, then serve APP until SIGTERM."""
    settings = _settings(app, **({"port": port} if port else {}))
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        application = create_addon_app(APP_SPECS[app], settings)
    except ConfigError as exc:
        _fail(exc.detail)
    _migrate_or_fail(settings)
    tune_garbage_collector()
    server = _GracefulServer(server_config(application, settings, host=host, port=settings.port))
    server.run()
    if not server.started:
        sys.exit(1)


def tune_garbage_collector() -> None:
    """Keep the cyclic GC off the request path's tail latency.

    Everything alive after start-up (modules, the app) is frozen out of collection,
    and young collections run less often: full collections over the whole heap were
    what set the webhook path's p99 (docs/performance.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)


class _GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown; here that shutdown exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


@main.command()
@APP
def migrate(app: str) -> None:
    """Bring APP's database to the latest migration."""
    settings = _settings(app)
    configure_logging(settings.log_level_number, settings.log_format)
    revision = _migrate_or_fail(settings)
    click.echo(f"database at revision {revision}")


def _migrate_or_fail(settings: AddonSettings) -> str | None:
    try:
        return asyncio.run(_migrate(settings.database_url))
    except DATABASE_ERRORS as exc:
        _fail(
            f"{settings.env_name('database_url')}: cannot migrate the database "
            f"({type(exc).__name__}: {redact_text(str(exc)).splitlines()[0]})"
        )


async def _migrate(url: str) -> str | None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@main.command()
@APP
@click.option("--check", is_flag=True, help="Validate against Clockify's manifest schema.")
@click.option(
    "--schema",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Schema file (default: manifest-schema-VERSION.json in ${REFERENCE_DIR_VARIABLE}).",
)
def manifest(app: str, check: bool, schema: Path | None) -> None:
    """Print APP's manifest as served; with --check, validate it and exit 1 if invalid."""
    settings = _settings(app)
    document = load_manifest(app).render(base_url=settings.base_url, key=settings.addon_key)
    if not check:
        click.echo(json.dumps(document, indent=2))
        return
    if schema is None:
        folder = reference_dir()
        if folder is None:
            _fail(
                f"pass --schema FILE (Clockify's manifest schema {document['schemaVersion']}) "
                f"or set {REFERENCE_DIR_VARIABLE} to the folder that holds it"
            )
        schema = schema_path(folder, str(document["schemaVersion"]))
        if not schema.is_file():
            _fail(f"{schema} does not exist; pass --schema FILE")
    errors = validate_against_schema(document, json.loads(schema.read_text()))
    for error in errors:
        click.echo(f"invalid: {error}", err=True)
    if errors:
        sys.exit(1)
    click.echo(f"{app}: manifest valid against {schema.name}")


@main.command("rotate-keys")
@APP
def rotate_keys(app: str) -> None:
    """Re-encrypt APP's stored tokens with the first key of {P}ENCRYPTION_KEYS."""
    settings = _settings(app)
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        count = asyncio.run(_rotate(settings))
    except AddonError as exc:
        _fail(f"{exc.detail}; nothing was changed")
    click.echo(f"re-encrypted {count} secret(s)")


async def _rotate(settings: AddonSettings) -> int:
    ring = key_ring_from(settings)
    engine = create_engine(settings.database_url)
    try:
        async with for_writing(engine).begin() as conn:
            return await rotate_secrets(conn, settings.addon_key, ring)
    finally:
        await engine.dispose()


@main.group()
def openapi() -> None:
    """Clockify's OpenAPI document, which the operation catalogue is built from."""


@openapi.command("fetch")
@APP
def openapi_fetch(app: str) -> None:
    """Download Clockify's published OpenAPI document to {P}CLOCKIFY_OPENAPI_FILE."""
    settings = _settings(app)
    try:
        path = fetch_openapi(settings.clockify_openapi_url, settings.openapi_path)
        count = len(load_catalogue(path))
    except AddonError as exc:
        _fail(exc.detail, code=1)
    click.echo(f"{path}: {count} operations")


@main.command("generate-key")
def generate_key_command() -> None:
    """Print a new random encryption key for {P}ENCRYPTION_KEYS."""
    click.echo(generate_key())


@main.command()
@APP
def retention(app: str) -> None:
    """Delete rows older than their retention window once, and print the counts."""
    from addon_core.retention import run_once

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

    port = app_port or APP_SPECS[app].settings_class.default_port
    sys.exit(run_demo(app, sandbox_port=sandbox_port, app_port=port, data_dir=data_dir, seed=seed))


@main.group()
@APP
@click.pass_context
def jobs(ctx: click.Context, app: str) -> None:
    """APP's background jobs: list dead ones, replay one (the running app picks it up)."""
    ctx.obj = app


@jobs.command("dead")
@click.option("--workspace", help="Only this workspace's dead jobs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line instead of a table.")
@click.pass_obj
def jobs_dead(app: str, workspace: str | None, limit: int, as_json: bool) -> None:
    """List dead jobs, newest first, with their last error (secrets masked)."""
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
@click.argument("job_id", type=int)
@click.pass_obj
def jobs_replay(app: str, job_id: int) -> None:
    """Queue dead job JOB_ID again with a fresh set of attempts; exit 1 if it is not dead."""
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
