"""The database goes away mid-burst: refused deliveries answer 503, nothing acknowledged is lost.

PostgreSQL is stopped as a crash stops it and started again; SQLite's disk fills up and is
freed. Either way the app itself is never restarted: it must recover on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from addon_core.app import create_addon_app
from addon_core.sandbox import Sandbox
from addon_core.sandbox.loopback import serving
from addon_core.storage.database import create_engine, upgrade_to_head
from tests.outage.conftest import SANDBOX, PostgresCluster, SmallDisk, app_settings
from tests.served_app import (
    WORKERS,
    assert_exactly_once,
    burst_payloads,
    fire_all,
    install_with_flow,
    wait_until_idle,
)
from universal_webhook.app import SPEC

pytestmark = [pytest.mark.outage, SANDBOX]

BURST = 90
RECOVERY_TIMEOUT = 60.0


async def migrated(database_url: str) -> str:
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return database_url


async def readiness(app_url: str) -> int:
    async with httpx.AsyncClient(timeout=10.0) as client:
        return (await client.get(f"{app_url}/readyz")).status_code


async def wait_ready(app_url: str) -> float:
    """Poll /readyz until 200; return how long it took."""
    started = time.monotonic()
    while await readiness(app_url) != 200:
        if time.monotonic() - started > RECOVERY_TIMEOUT:
            pytest.fail(f"the app did not become ready within {RECOVERY_TIMEOUT} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def burst_through_an_outage(
    database_url: str,
    sandbox: Sandbox,
    settings_dir: Path,
    reference_dir: Path,
    *,
    break_storage: Callable[[], None],
    mend_storage: Callable[[], None],
) -> None:
    """Fire a burst, break the storage a third of the way in, mend it, deliver again."""
    app = create_addon_app(SPEC, app_settings(database_url, sandbox, settings_dir, reference_dir))
    async with serving(app) as app_url:
        workspace = await install_with_flow(sandbox, SimpleNamespace(url=app_url))  # type: ignore[arg-type]
        payloads = burst_payloads(sandbox, workspace, BURST)
        broken = False

        def break_mid_burst(acknowledged: int) -> None:
            nonlocal broken
            if acknowledged >= BURST // 3 and not broken:
                broken = True
                break_storage()

        answers = await fire_all(
            sandbox, lambda _n: app_url, workspace, payloads, on_answer=break_mid_burst
        )
        acknowledged = {key for key, status in answers.items() if status and status < 300}
        refused = {key: status for key, status in answers.items() if not status or status >= 300}
        assert BURST // 3 <= len(acknowledged) < BURST, "the outage did not land mid-burst"
        # Clockify retries a 503; a cut connection or any other answer would be a broken promise.
        assert set(refused.values()) == {503}, refused
        assert await readiness(app_url) == 503

        mend_storage()
        await wait_ready(app_url)
        # Clockify delivers the refused events again; the acknowledged ones are duplicates.
        again = await fire_all(sandbox, lambda _n: app_url, workspace, payloads)
        assert all(status and status < 300 for status in again.values()), again
        await wait_until_idle(database_url)
        await assert_exactly_once(
            database_url, sandbox, workspace, payloads, set(payloads), in_flight_bound=WORKERS
        )


async def test_postgres_down_mid_burst_refuses_with_503_and_recovers_without_a_restart(
    postgres_cluster: PostgresCluster, sandbox: Sandbox, tmp_path: Path, reference_dir: Path
) -> None:
    database_url = await migrated(await postgres_cluster.create_database())
    await burst_through_an_outage(
        database_url,
        sandbox,
        tmp_path,
        reference_dir,
        break_storage=postgres_cluster.stop,
        mend_storage=postgres_cluster.start,
    )


async def test_sqlite_on_a_full_disk_refuses_with_503_and_recovers_when_space_is_freed(
    small_disk: SmallDisk, sandbox: Sandbox, tmp_path: Path, reference_dir: Path
) -> None:
    database_url = await migrated(f"sqlite+aiosqlite:///{small_disk.folder / 'addons.db'}")
    await burst_through_an_outage(
        database_url,
        sandbox,
        tmp_path,
        reference_dir,
        break_storage=small_disk.fill,
        mend_storage=small_disk.free,
    )
