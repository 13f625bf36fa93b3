"""Commands that run or describe an app: serve, migrate, manifest, openapi, generate-key, sandbox.

Each imports what it uses when it runs, so `--help` stays fast and imports no app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from addon_core.cli.main import APP, APPS, app_settings, fail, main, variable

if TYPE_CHECKING:
    from addon_core.settings import AddonSettings


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
    import gc

    # Start-up allocates hundreds of thousands of objects that all stay alive: collecting
    # them again and again while importing is wasted time (a third of the imports' on a
    # busy machine). serve_app collects once, freezes them and turns collection back on.
    gc.disable()
    from addon_core.app import create_addon_app
    from addon_core.apps import load_spec
    from addon_core.errors import ConfigError
    from addon_core.logs import configure_logging
    from addon_core.serving import check_workers_allowed, serve_app
    from addon_core.tracing import configure_tracing

    settings = app_settings(app, **({"port": port} if port else {}))
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        check_workers_allowed(settings, workers)
        configure_tracing(settings.app_name, settings.tracing, settings.env_name("tracing"))
        application = create_addon_app(load_spec(app), settings)
    except ConfigError as exc:
        fail(exc.detail)
    _migrate_or_fail(settings)
    if not serve_app(application, settings, host=host, workers=workers, fd=fd):
        sys.exit(1)


@main.command(help="Bring APP's database to the latest migration.")
@APP
def migrate(app: str) -> None:
    from addon_core.logs import configure_logging

    settings = app_settings(app)
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
        fail(
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

    settings = app_settings(app)
    document = load_manifest(app).render(base_url=settings.base_url, key=settings.addon_key)
    if not check:
        click.echo(json.dumps(document, indent=2))
        return
    version = str(document["schemaVersion"])
    if schema is None:
        schema = shipped_manifest_schema(version)
        if not schema.is_file():
            fail(f"no manifest schema {version} ships with the package; pass --schema FILE")
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
        fail(f"--schema {path}: cannot read it as JSON ({exc}): {expected}")
    if not isinstance(schema, dict):
        fail(f"--schema {path}: holds a JSON {type(schema).__name__}, not an object: {expected}")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        fail(f"--schema {path}: not a valid JSON Schema ({exc.message}): {expected}")
    return schema


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

    settings = app_settings(app)
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
