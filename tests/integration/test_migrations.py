"""The one Alembic history: upgrade, downgrade and upgrade again on SQLite and PostgreSQL.

Also what every connection is opened with (SQLite pragmas).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.storage.database import (
    POOLED_SQLITE_CACHE_KIB,
    alembic_config,
    create_engine,
    current_revision,
    downgrade_to,
    head_revision,
    upgrade_to_head,
)
from addon_core.storage.models import Base

APP_TABLES = {
    "installations",
    "webhook_registrations",
    "events",
    "lifecycle_audit",
    "workers",
    "coverage_gaps",
}


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url)
    yield engine
    await engine.dispose()


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)


def schema_differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "render_as_batch": connection.dialect.name == "sqlite"},
    )
    return list(compare_metadata(context, Base.metadata))


def test_migration_history_has_a_head() -> None:
    assert head_revision() is not None


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert head_revision() == script.get_current_head()
    assert head_revision() in {revision.revision for revision in script.walk_revisions()}


async def test_serving_on_a_migrated_database_does_not_import_alembic(
    engine: AsyncEngine, empty_database_url: str
) -> None:
    await upgrade_to_head(engine)
    # `serve` migrates at each start: at the head that is one read. The check runs in a
    # fresh interpreter, since this one has imported Alembic for the tests.
    code = (
        "import asyncio, sys; import universal_webhook.app; "
        "from addon_core.storage.database import create_engine, upgrade_to_head; "
        "engine = create_engine(sys.argv[1]); asyncio.run(upgrade_to_head(engine)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))"
    )
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code, empty_database_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout.strip() == "[]"
    assert await current_revision(engine) == head_revision()


async def test_fresh_database_is_at_no_revision(engine: AsyncEngine) -> None:
    assert await current_revision(engine) is None
    assert not APP_TABLES & await table_names(engine)


async def test_upgrade_creates_every_table_at_head(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)

    assert await table_names(engine) >= APP_TABLES
    assert await current_revision(engine) == head_revision()


async def test_upgrade_downgrade_upgrade_round_trips(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)
    await downgrade_to(engine, "base")

    assert not APP_TABLES & await table_names(engine)
    assert await current_revision(engine) is None

    await upgrade_to_head(engine)

    assert await table_names(engine) >= APP_TABLES
    assert await current_revision(engine) == head_revision()


async def test_upgrade_at_head_is_a_no_op(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)
    await upgrade_to_head(engine)

    assert await current_revision(engine) == head_revision()


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    await upgrade_to_head(engine)

    async with engine.connect() as conn:
        differences = await conn.run_sync(schema_differences)

    assert differences == []


async def test_schema_comparison_sees_tables_an_unmigrated_database_lacks(
    engine: AsyncEngine,
) -> None:
    # The comparison above is only meaningful if it can see a difference at all.
    async with engine.connect() as conn:
        differences = await conn.run_sync(schema_differences)

    added = {diff[1].name for diff in differences if diff[0] == "add_table"}
    assert added == set(Base.metadata.tables)


async def test_pooled_sqlite_connections_keep_a_small_page_cache(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}")
    try:
        async with engine.connect() as conn:
            cache = (await conn.execute(text("PRAGMA cache_size"))).scalar_one()
            synchronous = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert cache == -POOLED_SQLITE_CACHE_KIB
    assert synchronous == 2  # FULL: the durable commits are kept
