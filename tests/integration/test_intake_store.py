"""The intake's batch store on SQLite and PostgreSQL: what a batch reports it stored.

The writer wakes the job claimer only when a batch queued `flow.dispatch` jobs, so the
count the store reports must be the jobs it inserted: one per new event of a workspace
with a live flow, none for redeliveries, none where no flow is live.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.intake.store import EventStore, Registry, StoreOptions, open_event_store
from addon_core.storage.models import Flow, Installation, Job, WebhookRegistration

ADDON = "universal-webhook"
PATH = "/webhooks/clockify/new-time-entry"


@pytest.fixture
async def store(engine: AsyncEngine) -> AsyncIterator[EventStore]:
    store = open_event_store(engine, StoreOptions(dedupe_window=timedelta(minutes=10)))
    yield store
    await store.close()


async def install(engine: AsyncEngine, workspace_id: str) -> None:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(Installation).values(
                addon_key=ADDON, workspace_id=workspace_id, addon_id="a1", status="ACTIVE"
            )
        )
        await conn.execute(
            insert(WebhookRegistration).values(
                installation_id=result.inserted_primary_key[0],
                addon_key=ADDON,
                workspace_id=workspace_id,
                path=PATH,
                event_type="NEW_TIME_ENTRY",
                token_digest=hashlib.sha256(b"token").digest(),
                auth_token="sealed",
            )
        )


async def add_flow(engine: AsyncEngine, workspace_id: str) -> str:
    flow_id = uuid.uuid4().hex
    async with engine.begin() as conn:
        await conn.execute(
            insert(Flow).values(id=flow_id, addon_key=ADDON, workspace_id=workspace_id, name="f")
        )
    return flow_id


def planned(workspace_id: str, *entries: str) -> Any:
    """A planner storing one NEW_TIME_ENTRY row per entry id (EVENT_COLUMNS order)."""

    def plan(registry: Registry) -> list[tuple[Any, ...]]:
        assert workspace_id in registry
        return [
            (ADDON, workspace_id, "NEW_TIME_ENTRY", "clockify", f"{workspace_id}-{entry}",
             f'{{"id": "{entry}"}}', "{}", None)
            for entry in entries
        ]  # fmt: skip

    return plan


async def jobs_in(engine: AsyncEngine, workspace_id: str) -> int:
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count()).select_from(Job).where(Job.workspace_id == workspace_id)
        )
    return int(count or 0)


async def test_a_batch_reports_the_dispatch_jobs_it_queued(
    engine: AsyncEngine, store: EventStore
) -> None:
    await install(engine, "ws-flow")
    await add_flow(engine, "ws-flow")

    stored = await store.write(ADDON, ["ws-flow"], [PATH], planned("ws-flow", "e1", "e2"))

    assert stored.keys == {"ws-flow-e1", "ws-flow-e2"}
    assert stored.jobs == 2 == await jobs_in(engine, "ws-flow")


async def test_no_job_is_reported_without_a_live_flow_or_for_a_redelivery(
    engine: AsyncEngine, store: EventStore
) -> None:
    await install(engine, "ws-none")
    stored = await store.write(ADDON, ["ws-none"], [PATH], planned("ws-none", "e1"))
    assert (stored.keys, stored.jobs) == ({"ws-none-e1"}, 0)

    flow_id = await add_flow(engine, "ws-none")
    async with engine.begin() as conn:
        await conn.execute(update(Flow).where(Flow.id == flow_id).values(paused_reason="failing"))
    stored = await store.write(ADDON, ["ws-none"], [PATH], planned("ws-none", "e2"))
    assert (stored.keys, stored.jobs) == ({"ws-none-e2"}, 0)

    async with engine.begin() as conn:
        await conn.execute(update(Flow).where(Flow.id == flow_id).values(paused_reason=None))
    stored = await store.write(ADDON, ["ws-none"], [PATH], planned("ws-none", "e2", "e3"))
    assert (stored.keys, stored.jobs) == ({"ws-none-e3"}, 1)  # e2 is a redelivery
    assert await jobs_in(engine, "ws-none") == 1
