"""Idempotency-Key on the JSON API's writes: one run per key, the stored answer on retry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from addon_core.storage.database import create_engine
from addon_core.storage.models import IdempotencyRecord
from addon_core.storage.retention import RetentionPolicy, run_retention
from tests.db import count
from tests.fake_clockify import Clockify, Workspace
from tests.harness import bearer


def headers(workspace: Workspace, key: str | None = None, role: str = "OWNER") -> dict[str, str]:
    values = bearer(workspace.user_token(role))
    if key is not None:
        values["Idempotency-Key"] = key
    return values


@pytest.fixture
async def installed(clockify: Clockify, workspace: Workspace) -> Workspace:
    await clockify.install(workspace)
    return workspace


async def create(
    client: AsyncTestClient[Litestar], workspace: Workspace, key: str | None, name: str = "billing"
) -> Any:
    return await client.post("/api/endpoints", json={"name": name}, headers=headers(workspace, key))


async def test_a_retry_with_the_same_key_returns_the_first_answer_and_runs_once(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    first = await create(client, installed, "create-billing-1")
    again = await create(client, installed, "create-billing-1")

    assert first.status_code == 201
    assert "idempotent-replay" not in first.headers
    assert again.status_code == 201
    assert again.headers["idempotent-replay"] == "true"
    assert again.json() == first.json()
    assert await count(database_url, "endpoints") == 1


async def test_without_a_key_each_request_runs(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    await create(client, installed, None)
    await create(client, installed, None)
    assert await count(database_url, "endpoints") == 2


async def test_the_same_key_with_another_body_is_refused(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    await create(client, installed, "k1", name="billing")
    other = await create(client, installed, "k1", name="payroll")

    assert other.status_code == 422
    assert "different request" in other.json()["detail"]
    assert await count(database_url, "endpoints") == 1


async def test_keys_are_scoped_to_the_workspace(
    client: AsyncTestClient[Litestar],
    clockify: Clockify,
    installed: Workspace,
    fresh_workspace: Any,
    database_url: str,
) -> None:
    other = fresh_workspace()
    await clockify.install(other)

    mine = await create(client, installed, "shared-key")
    theirs = await create(client, other, "shared-key")

    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replay" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert await count(database_url, "endpoints") == 2


async def test_a_refused_request_is_replayed_as_refused(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    user = await client.post(
        "/api/endpoints", json={"name": "x"}, headers=headers(installed, "as-user", role="USER")
    )
    again = await client.post(
        "/api/endpoints", json={"name": "x"}, headers=headers(installed, "as-user", role="USER")
    )
    assert user.status_code == again.status_code == 403
    assert again.headers["idempotent-replay"] == "true"
    assert await count(database_url, "endpoints") == 0


async def test_concurrent_requests_with_one_key_run_once(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    answers = await asyncio.gather(*(create(client, installed, "burst") for _ in range(8)))

    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {201, 409}
    assert 201 in statuses
    for answer in answers:
        if answer.status_code == 409:
            assert answer.headers["retry-after"] == "1"
    assert await count(database_url, "endpoints") == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"])
async def test_a_malformed_key_is_refused_before_anything_runs(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str, key: str
) -> None:
    answer = await client.post(
        "/api/endpoints",
        json={"name": "x"},
        headers={
            **{name.encode(): value.encode() for name, value in headers(installed).items()},
            b"Idempotency-Key": key.encode(),
        },
    )
    assert answer.status_code == 400
    assert "Idempotency-Key" in answer.json()["detail"]
    assert await count(database_url, "endpoints") == 0


async def test_without_a_valid_token_the_route_answers_as_usual(
    client: AsyncTestClient[Litestar], installed: Workspace
) -> None:
    answer = await client.post(
        "/api/endpoints", json={"name": "x"}, headers={"Idempotency-Key": "k"}
    )
    assert answer.status_code == 401


async def _age_keys(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(IdempotencyRecord).values(created_at=datetime.now(UTC) - timedelta(days=2))
            )
    finally:
        await engine.dispose()


async def test_an_answer_older_than_a_day_runs_again_and_retention_removes_it(
    client: AsyncTestClient[Litestar], installed: Workspace, database_url: str
) -> None:
    # The app's own retention runs once at start-up, at a moment a loaded machine decides:
    # stop it, so the only retention run is the one this test makes.
    scheduler = client.app.state.runtime.retention
    assert scheduler is not None
    await asyncio.to_thread(client.blocking_portal.call, scheduler.stop)

    await create(client, installed, "old-key")
    await _age_keys(database_url)

    again = await create(client, installed, "old-key")
    assert again.status_code == 201
    assert "idempotent-replay" not in again.headers
    assert await count(database_url, "endpoints") == 2

    await _age_keys(database_url)
    assert await count(database_url, "idempotency_keys") == 1
    engine = create_engine(database_url)
    try:
        deleted = await run_retention(engine, "universal-webhook", RetentionPolicy())
    finally:
        await engine.dispose()
    assert deleted["idempotency_keys"] == 1
    assert await count(database_url, "idempotency_keys") == 0


async def test_uninstall_erases_the_workspace_keys(
    client: AsyncTestClient[Litestar], clockify: Clockify, installed: Workspace, database_url: str
) -> None:
    await create(client, installed, "to-erase")
    assert await count(database_url, "idempotency_keys") == 1

    deleted = {
        "addonId": installed.addon_id,
        "workspaceId": installed.workspace_id,
        "asUser": installed.owner_id,
    }
    answer = await clockify.lifecycle(installed, "DELETED", deleted)
    assert answer.status_code == 200

    assert await count(database_url, "idempotency_keys") == 0
