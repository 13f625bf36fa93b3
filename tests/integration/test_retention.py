"""Retention on SQLite and PostgreSQL: each table's window, batches, scope, kept events,
and the scheduler that runs it under a lease."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.metrics import Metrics
from addon_core.settings import AddonSettings
from addon_core.storage.database import create_engine
from addon_core.storage.leases import acquire_lease
from addon_core.storage.models import (
    ApiCall,
    Base,
    Event,
    EventDayCount,
    EventDedupe,
    Execution,
    ExecutionStep,
    Flow,
    Installation,
    Job,
    Lease,
)
from addon_core.storage.retention import (
    COUNTED,
    RetentionPolicy,
    run_retention,
    workspace_days,
)
from addon_core.storage.retention_schedule import RetentionScheduler, run_once

ADDON = "universal-webhook"
OTHER = "api-studio"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)

#: distinct windows, so that a table read with another's window fails its test
POLICY = RetentionPolicy(
    events_days=10,
    executions_days=20,
    calls_days=30,
    dead_jobs_days=40,
    done_jobs_days=2,
    dedupe_window_seconds=3 * 86400,
    batch_size=100,
)
WINDOWS = {
    "events": timedelta(days=10),
    "executions": timedelta(days=20),
    "api_calls": timedelta(days=30),
    "dead_jobs": timedelta(days=40),
    "done_jobs": timedelta(days=2),
    "event_dedupe": timedelta(days=3),
}
TABLES = {
    "events": Event,
    "event_dedupe": EventDedupe,
    "executions": Execution,
    "execution_steps": ExecutionStep,
    "api_calls": ApiCall,
    "dead_jobs": Job,
    "done_jobs": Job,
}


# --- seeding -------------------------------------------------------------------------------


async def add(engine: AsyncEngine, model: type[Base], **values: Any) -> Any:
    """Insert one row; return its primary key's first column."""
    async with engine.begin() as conn:
        result = await conn.execute(insert(model).values(**values))
    return result.inserted_primary_key[0] if result.inserted_primary_key else None


async def add_event(engine: AsyncEngine, at: datetime, addon_key: str = ADDON) -> int:
    event_id: int = await add(
        engine,
        Event,
        addon_key=addon_key,
        workspace_id="ws-1",
        event_type="NEW_TAG",
        source="clockify",
        dedupe_key=uuid.uuid4().hex,
        payload="{}",
        headers="{}",
        received_at=at,
    )
    return event_id


async def add_execution(
    engine: AsyncEngine,
    at: datetime,
    addon_key: str = ADDON,
    *,
    event_id: int | None = None,
    steps: int = 1,
) -> int:
    flow_id = uuid.uuid4().hex
    await add(engine, Flow, id=flow_id, addon_key=addon_key, workspace_id="ws-1", name="flow")
    execution_id: int = await add(
        engine,
        Execution,
        addon_key=addon_key,
        workspace_id="ws-1",
        flow_id=flow_id,
        flow_version=1,
        event_id=event_id,
        status="succeeded",
        created_at=at,
    )
    for position in range(steps):
        await add(
            engine,
            ExecutionStep,
            execution_id=execution_id,
            position=position,
            step_id=f"s{position}",
            status="succeeded",
            started_at=at,
        )
    return execution_id


async def add_job(
    engine: AsyncEngine,
    status: str,
    at: datetime,
    addon_key: str = ADDON,
    payload: dict[str, Any] | None = None,
    kind: str = "flow.dispatch",
) -> int:
    job_id: int = await add(
        engine,
        Job,
        addon_key=addon_key,
        workspace_id="ws-1",
        kind=kind,
        payload=payload or {},
        status=status,
        created_at=at,
        updated_at=at,
    )
    return job_id


async def seed(engine: AsyncEngine, table: str, at: datetime, addon_key: str = ADDON) -> None:
    """Add one row to `table` (as `run_retention` names it) stamped `at`."""
    if table == "events":
        await add_event(engine, at, addon_key)
    elif table == "executions":
        await add_execution(engine, at, addon_key)
    elif table == "api_calls":
        await add(
            engine,
            ApiCall,
            addon_key=addon_key,
            workspace_id="ws-1",
            operation_id="getTags",
            method="GET",
            url="https://api.clockify.me/api/v1/workspaces/ws-1/tags",
            at=at,
        )
    elif table in ("dead_jobs", "done_jobs"):
        await add_job(engine, table.removesuffix("_jobs"), at, addon_key, kind="bootstrap")
    elif table == "event_dedupe":
        await add(
            engine,
            EventDedupe,
            addon_key=addon_key,
            dedupe_key=uuid.uuid4().hex,
            workspace_id="ws-1",
            seen_at=at,
        )
    else:
        raise AssertionError(table)


async def remaining(engine: AsyncEngine, table: str, addon_key: str = ADDON) -> int:
    model = TABLES[table]
    query = select(func.count()).select_from(model)
    if table == "execution_steps":
        query = query.join(Execution).where(Execution.addon_key == addon_key)
    else:
        query = query.where(model.addon_key == addon_key)  # type: ignore[attr-defined]
    if table in ("dead_jobs", "done_jobs"):
        query = query.where(Job.status == table.removesuffix("_jobs"))
    async with engine.connect() as conn:
        return int((await conn.execute(query)).scalar_one())


# --- windows -------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(WINDOWS))
async def test_rows_older_than_the_window_go_and_younger_rows_stay(
    engine: AsyncEngine, table: str
) -> None:
    window = WINDOWS[table]
    await seed(engine, table, NOW - window + SECOND)
    await seed(engine, table, NOW - window - SECOND)

    deleted = await run_retention(engine, ADDON, POLICY, now=NOW)

    assert deleted[table] == 1
    assert await remaining(engine, table) == 1
    assert {k: v for k, v in deleted.items() if v} == (
        {"executions": 1, "execution_steps": 1} if table == "executions" else {table: 1}
    )


async def test_a_row_exactly_at_the_window_stays(engine: AsyncEngine) -> None:
    await seed(engine, "events", NOW - WINDOWS["events"])

    await run_retention(engine, ADDON, POLICY, now=NOW)

    assert await remaining(engine, "events") == 1


async def test_dedupe_keys_are_kept_a_day_when_the_window_is_shorter(engine: AsyncEngine) -> None:
    policy = RetentionPolicy(dedupe_window_seconds=600)
    await seed(engine, "event_dedupe", NOW - timedelta(days=1) + SECOND)
    await seed(engine, "event_dedupe", NOW - timedelta(days=1) - SECOND)

    deleted = await run_retention(engine, ADDON, policy, now=NOW)

    assert deleted["event_dedupe"] == 1
    assert await remaining(engine, "event_dedupe") == 1


async def test_daily_event_counts_older_than_two_days_go(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for days_ago in (0, 1, 2, 3):
            day = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%d")
            await connection.execute(
                insert(EventDayCount).values(addon_key=ADDON, workspace_id="w", day=day, events=1)
            )

    deleted = await run_retention(engine, ADDON, POLICY, now=NOW)

    assert deleted["event_day_counts"] == 1
    async with engine.connect() as connection:
        days = (await connection.execute(select(EventDayCount.day))).scalars().all()
    assert sorted(days) == ["2025-05-30", "2025-05-31", "2025-06-01"]


async def test_zero_days_keeps_a_table_forever(engine: AsyncEngine) -> None:
    policy = RetentionPolicy(
        events_days=0, executions_days=0, calls_days=0, dead_jobs_days=0, done_jobs_days=0
    )
    long_ago = NOW - timedelta(days=3650)
    for table in WINDOWS:
        await seed(engine, table, long_ago)

    deleted = await run_retention(engine, ADDON, policy, now=NOW)

    # Dedupe keys are no record of anything: they go once past the dedupe window.
    assert {k: v for k, v in deleted.items() if v} == {"event_dedupe": 1}
    for table in ("events", "executions", "execution_steps", "api_calls", "dead_jobs", "done_jobs"):
        assert await remaining(engine, table) == 1, table


async def test_other_add_ons_rows_are_untouched(engine: AsyncEngine) -> None:
    long_ago = NOW - timedelta(days=3650)
    for table in WINDOWS:
        await seed(engine, table, long_ago, addon_key=OTHER)
        await seed(engine, table, long_ago)

    deleted = await run_retention(engine, ADDON, POLICY, now=NOW)

    assert all(deleted[table] == 1 for table in WINDOWS)
    for table in WINDOWS:
        assert await remaining(engine, table) == 0, table
        assert await remaining(engine, table, addon_key=OTHER) == 1, table


async def test_the_result_names_every_table_even_when_nothing_was_old(engine: AsyncEngine) -> None:
    assert await run_retention(engine, ADDON, POLICY, now=NOW) == dict.fromkeys(COUNTED, 0)


# --- batches and metrics -------------------------------------------------------------------


async def test_batches_smaller_than_the_rows_delete_them_all(engine: AsyncEngine) -> None:
    old = NOW - timedelta(days=365)
    for _ in range(10):
        await add_event(engine, old)
    for _ in range(7):
        await add_execution(engine, old, steps=2)
    for _ in range(6):  # a multiple of the batch size: the last batch comes back empty
        await seed(engine, "event_dedupe", old)
    metrics = Metrics(ADDON)
    policy = RetentionPolicy(batch_size=3)

    deleted = await run_retention(engine, ADDON, policy, now=NOW, metrics=metrics)

    assert deleted["events"] == 10
    assert deleted["executions"] == 7
    assert deleted["execution_steps"] == 14
    assert deleted["event_dedupe"] == 6
    for table in ("events", "executions", "execution_steps", "event_dedupe"):
        assert await remaining(engine, table) == 0
        sample = metrics.registry.get_sample_value(
            "addon_retention_deletions_total", {"addon": ADDON, "table": table}
        )
        assert sample == deleted[table]


async def test_a_batch_larger_than_one_statement_deletes_it_whole(engine: AsyncEngine) -> None:
    # The drivers bind at most 32767 parameters: a larger batch goes in several statements.
    old = NOW - timedelta(days=365)
    rows = [
        {
            "addon_key": ADDON,
            "workspace_id": "ws-1",
            "event_type": "NEW_TAG",
            "source": "clockify",
            "dedupe_key": f"k{n}",
            "payload": "{}",
            "headers": "{}",
            "received_at": old,
        }
        for n in range(33_000)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(Event), rows)

    deleted = await run_retention(engine, ADDON, RetentionPolicy(batch_size=50_000), now=NOW)

    assert deleted["events"] == 33_000
    assert await remaining(engine, "events") == 0


# --- events still needed -------------------------------------------------------------------


async def test_events_an_unfinished_job_refers_to_survive(engine: AsyncEngine) -> None:
    old = NOW - timedelta(days=365)
    queued, running, done, dead, free = [await add_event(engine, old) for _ in range(5)]
    await add_job(engine, "queued", NOW, payload={"event_id": queued})
    await add_job(engine, "running", NOW, payload={"event_id": running})
    await add_job(engine, "done", NOW, payload={"event_id": done})
    await add_job(engine, "dead", NOW, payload={"event_id": dead})
    # An unfinished job naming no event must not hold every event back.
    await add_job(engine, "queued", NOW, kind="bootstrap")
    # Another add-on's job naming the same id does not keep this add-on's event.
    await add_job(engine, "queued", NOW, addon_key=OTHER, payload={"event_id": free})

    deleted = await run_retention(engine, ADDON, POLICY, now=NOW)

    assert deleted["events"] == 3
    async with engine.connect() as conn:
        kept = set((await conn.execute(select(Event.id))).scalars())
    assert kept == {queued, running}


async def test_executions_of_an_event_still_dispatching_survive(engine: AsyncEngine) -> None:
    # The execution row is what stops a retried dispatch from running the flow twice.
    old = NOW - timedelta(days=365)
    pending_event, finished_event = await add_event(engine, NOW), await add_event(engine, NOW)
    kept = await add_execution(engine, old, event_id=pending_event)
    await add_execution(engine, old, event_id=finished_event)
    await add_execution(engine, old)  # run by hand, with no event
    await add_job(engine, "running", NOW, payload={"event_id": pending_event})
    await add_job(engine, "done", NOW, payload={"event_id": finished_event})

    deleted = await run_retention(engine, ADDON, POLICY, now=NOW)

    assert deleted["executions"] == 2
    async with engine.connect() as conn:
        assert list((await conn.execute(select(Execution.id))).scalars()) == [kept]


# --- the scheduler and the CLI entry -------------------------------------------------------


def scheduler(engine: AsyncEngine, holder: str, interval: float = 3600.0) -> RetentionScheduler:
    return RetentionScheduler(engine, ADDON, POLICY, interval_seconds=interval, holder_id=holder)


async def test_only_the_lease_holder_runs_retention(engine: AsyncEngine) -> None:
    first, second = scheduler(engine, "replica-1"), scheduler(engine, "replica-2")
    await add_event(engine, NOW - timedelta(days=365))

    assert await first.tick(now=NOW) is not None
    await add_event(engine, NOW - timedelta(days=365))
    assert await second.tick(now=NOW + timedelta(seconds=10)) is None
    assert await remaining(engine, "events") == 1

    # The holder renews at its next tick; past the lease, a silent holder is replaced.
    assert await first.tick(now=NOW + timedelta(hours=1)) is not None
    assert await second.tick(now=NOW + timedelta(hours=2)) is None
    taken_over = await second.tick(now=NOW + timedelta(hours=3, seconds=1))
    assert taken_over is not None


async def test_the_lease_outlives_the_interval(engine: AsyncEngine) -> None:
    # A tick a little late must not hand the schedule to another replica.
    assert scheduler(engine, "replica-1").lease_seconds > 3600.0


async def wait_until(check: Callable[[], Any], what: str) -> None:
    """Poll a condition on the loop; fail, rather than hang, if it never comes."""
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_start_runs_at_once_and_stop_frees_the_lease(engine: AsyncEngine) -> None:
    await add_event(engine, datetime.now(UTC) - timedelta(days=365))
    running = scheduler(engine, "replica-1")

    await running.start()
    try:
        await wait_until(
            lambda: _no_rows(engine, "events"), "the scheduler's first run deleted the old event"
        )
        assert running.running
    finally:
        await running.stop()

    assert not running.running
    async with engine.connect() as conn:
        assert (await conn.execute(select(Lease.name))).first() is None
    assert await acquire_lease(engine, f"retention:{ADDON}", "replica-2", 60)


async def _no_rows(engine: AsyncEngine, table: str) -> bool:
    return await remaining(engine, table) == 0


async def test_a_failed_run_is_logged_and_the_schedule_goes_on(
    empty_database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # No tables at all: every run fails inside the database layer.
    broken = create_engine(empty_database_url)
    failing = scheduler(broken, "replica-1")
    caplog.set_level(logging.ERROR, logger="addon_core")
    try:
        await failing.start()

        async def logged() -> bool:
            return any("retention failed" in r.getMessage() for r in caplog.records)

        await wait_until(logged, "the failure was logged")
        assert failing.running
    finally:
        await failing.stop()
        await broken.dispose()


async def test_run_once_applies_the_settings(
    engine: AsyncEngine, make_settings: Callable[..., AddonSettings]
) -> None:
    settings = make_settings(ADDON, retention_events_days=5, retention_calls_days=0)
    await add_event(engine, datetime.now(UTC) - timedelta(days=6))
    await add_event(engine, datetime.now(UTC) - timedelta(days=4))
    await seed(engine, "api_calls", datetime.now(UTC) - timedelta(days=365))

    deleted = await run_once(settings)

    assert deleted["events"] == 1
    assert deleted["api_calls"] == 0
    assert await remaining(engine, "events") == 1


def test_the_policy_reads_the_settings(make_settings: Callable[..., AddonSettings]) -> None:
    settings = make_settings(
        ADDON,
        retention_events_days=1,
        retention_executions_days=2,
        retention_calls_days=3,
        retention_dead_jobs_days=0,
        retention_batch_size=7,
        dedupe_window_seconds=900,
    )

    assert RetentionPolicy.from_settings(settings) == RetentionPolicy(
        events_days=1,
        executions_days=2,
        calls_days=3,
        dead_jobs_days=0,
        done_jobs_days=0,  # jobs kept forever: the done ones too
        dedupe_window_seconds=900,
        batch_size=7,
    )


# --- a workspace's own eventRetentionDays ---------------------------------------------------


async def install(
    engine: AsyncEngine, workspace_id: str, days: Any, status: str = "ACTIVE"
) -> None:
    settings = [] if days is None else [{"id": "eventRetentionDays", "name": "Keep", "value": days}]
    await add(
        engine,
        Installation,
        addon_key=ADDON,
        workspace_id=workspace_id,
        addon_id=f"addon-{workspace_id}",
        status=status,
        settings=settings,
    )


async def add_rows(engine: AsyncEngine, workspace_id: str, at: datetime) -> None:
    """One event, one execution and one explorer call of a workspace, stamped `at`."""
    for table in ("events", "executions", "api_calls"):
        await seed(engine, table, at)
    for model in (Event, Execution, ApiCall):
        async with engine.begin() as conn:
            await conn.execute(
                model.__table__.update()  # type: ignore[attr-defined]
                .where(model.workspace_id == "ws-1")  # type: ignore[attr-defined]
                .values(workspace_id=workspace_id)
            )


async def left_of(engine: AsyncEngine, workspace_id: str) -> dict[str, int]:
    counts = {}
    for name, model in (("events", Event), ("executions", Execution), ("api_calls", ApiCall)):
        async with engine.connect() as conn:
            counts[name] = await conn.scalar(
                select(func.count()).select_from(model).where(model.workspace_id == workspace_id)
            )
    return counts


async def test_a_workspace_setting_shortens_its_own_retention_only(engine: AsyncEngine) -> None:
    await install(engine, "ws-short", 5)
    await install(engine, "ws-text", "5")  # a NUMBER setting may arrive as text
    await install(engine, "ws-plain", None)
    await install(engine, "ws-zero", 0)  # once meant "forever": the operator's window applies
    await install(engine, "ws-gone", 5, status="DELETED")
    six_days_ago = NOW - timedelta(days=6)
    for workspace in ("ws-short", "ws-text", "ws-plain", "ws-zero", "ws-gone"):
        await add_rows(engine, workspace, six_days_ago)

    await run_retention(engine, ADDON, POLICY, now=NOW)

    gone = {"events": 0, "executions": 0, "api_calls": 0}
    kept = {"events": 1, "executions": 1, "api_calls": 1}
    assert await left_of(engine, "ws-short") == gone
    assert await left_of(engine, "ws-text") == gone
    for workspace in ("ws-plain", "ws-zero", "ws-gone"):
        assert await left_of(engine, workspace) == kept, workspace


async def test_the_operator_window_is_the_ceiling(engine: AsyncEngine) -> None:
    await install(engine, "ws-long", 100)
    await add_rows(engine, "ws-long", NOW - timedelta(days=31))
    await add_rows(engine, "ws-long", NOW - timedelta(days=9))

    await run_retention(engine, ADDON, POLICY, now=NOW)

    # The operator keeps events 10 days, executions 20, calls 30: a longer wish changes nothing.
    assert await left_of(engine, "ws-long") == {"events": 1, "executions": 1, "api_calls": 1}


async def test_a_workspace_window_applies_when_the_operator_keeps_forever(
    engine: AsyncEngine,
) -> None:
    await install(engine, "ws-short", 5)
    await add_rows(engine, "ws-short", NOW - timedelta(days=6))
    await add_rows(engine, "ws-plain", NOW - timedelta(days=6))
    forever = RetentionPolicy(events_days=0, executions_days=0, calls_days=0, batch_size=10)

    await run_retention(engine, ADDON, forever, now=NOW)

    assert await left_of(engine, "ws-short") == {"events": 0, "executions": 0, "api_calls": 0}
    assert await left_of(engine, "ws-plain") == {"events": 1, "executions": 1, "api_calls": 1}


@pytest.mark.parametrize(
    ("value", "days"),
    [(7, 7), ("7", 7), (7.9, 7), (1, 1), (99999, 3650), (0, None), (-3, None), ("x", None),
     (True, None), (None, None)],
)  # fmt: skip
def test_workspace_days_are_bounded(value: Any, days: int | None) -> None:
    assert workspace_days([{"id": "eventRetentionDays", "value": value}]) == days
    assert workspace_days([{"id": "other", "value": 3}]) is None
