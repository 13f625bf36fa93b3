"""Idempotency keys and count quotas hold across two app processes on one PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from addon_core.sandbox import Sandbox, Sizes
from tests.db import fetch_all
from tests.harness import ServeApp, bearer
from tests.served_app import FLOW, install_with_flow

pytestmark = pytest.mark.sandbox(seed=17, sizes=Sizes(projects=5))


async def test_one_key_and_the_last_quota_place_are_taken_once_across_processes(
    database_kind: str,
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    if database_kind != "postgres":
        pytest.skip("several processes share one database on PostgreSQL only")
    apps = await serve_app(2, QUOTA_FLOWS="3")
    workspace = await install_with_flow(sandbox, apps[0])  # flow 1 of 3
    owner = bearer(workspace.user_token("OWNER"))

    async with httpx.AsyncClient(timeout=30.0) as client:
        # One key sent to both processes at once: one flow, the same answer twice.
        keyed = {**owner, "Idempotency-Key": "create-once"}
        first, second = await asyncio.gather(
            *(client.post(f"{app.url}/api/flows", json=FLOW, headers=keyed) for app in apps)
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses in ([201, 201], [201, 409]), (first.text, second.text)
        if statuses == [201, 201]:
            assert first.json() == second.json()
            assert "true" in (first.headers.get("idempotent-replay"),
                              second.headers.get("idempotent-replay"))  # fmt: skip
        rows = await fetch_all(database_url, "SELECT COUNT(*) AS n FROM flows")
        assert rows[0]["n"] == 2

        # The last place of the quota (3 flows), asked for by both processes at once.
        answers = await asyncio.gather(
            *(client.post(f"{app.url}/api/flows", json=FLOW, headers=owner) for app in apps * 2)
        )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409]
    rows = await fetch_all(database_url, "SELECT COUNT(*) AS n FROM flows")
    assert rows[0]["n"] == 3
