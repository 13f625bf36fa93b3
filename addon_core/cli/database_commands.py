"""Commands that work on an app's database while it runs: rotate-keys, retention, jobs.

Each opens its own engine, does its work in one go and disposes of the engine; a database
error reaches the operator as one line naming the variable to check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from addon_core.cli.main import APP, app_settings, fail, main, variable

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from addon_core.settings import AddonSettings

T = TypeVar("T")


@main.command(
    "rotate-keys",
    help=f"Re-encrypt APP's stored tokens with the first key of {variable('ENCRYPTION_KEYS')}.",
)
@APP
def rotate_keys(app: str) -> None:
    import asyncio

    from addon_core.errors import AddonError
    from addon_core.logs import configure_logging

    settings = app_settings(app)
    configure_logging(settings.log_level_number, settings.log_format)
    try:
        count = asyncio.run(_rotate(settings))
    except AddonError as exc:
        fail(f"{exc.detail}; nothing was changed")
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


@main.command()
@APP
def retention(app: str) -> None:
    """Delete rows older than their retention window once, and print the counts."""
    import asyncio

    from addon_core.storage.retention_schedule import run_once

    deleted = asyncio.run(run_once(app_settings(app)))
    for table, count in deleted.items():
        click.echo(f"{table}: {count} deleted")


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

    settings = app_settings(app)
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

    settings = app_settings(app)
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
        fail(exc.detail, code=1)
    except DATABASE_ERRORS as exc:
        fail(
            f"{settings.env_name('database_url')}: cannot read the database "
            f"({type(exc).__name__}: {redact_text(str(exc)).splitlines()[0]})",
            code=1,
        )
