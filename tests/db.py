"""Reading the database behind an app under test, to assert what was (not) stored."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from addon_core.storage.database import create_engine


async def fetch_all(database_url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Run one SELECT on its own connection and return the rows as dicts."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(row._mapping) for row in result]
    finally:
        await engine.dispose()


async def count(database_url: str, table: str) -> int:
    rows = await fetch_all(database_url, f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608
    return int(rows[0]["n"])
