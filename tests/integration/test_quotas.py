"""Quotas per workspace: counts refused with 409, rates with 429, versions pruned, all named."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.db import fetch_all
from tests.harness import EVENT, Api, InstallApp, tag_meetings

QUOTAS = {
    "quota_flows": 2,
    "quota_flow_versions": 2,
    "quota_endpoints": 1,
    "quota_explorer_calls_per_minute": 2,
    "quota_dry_runs_per_minute": 2,
    "quota_events_per_day": 3,
}


@pytest.fixture
async def small(install_app: InstallApp) -> AsyncIterator[Api]:
    """Universal Webhook with small quotas, installed in one workspace."""
    async with install_app("universal-webhook", **QUOTAS) as installed:
        yield installed


def quota_refusals(api: Api, quota: str) -> float:
    metric = api.runtime.metrics.quota_refusals.labels(api.app_name, quota)
    return float(metric._value.get())


async def test_flows_past_the_quota_are_refused_naming_it(small: Api) -> None:
    await small.create(tag_meetings(name="one"))
    await small.create(tag_meetings(name="two"))

    refused = await small.call("POST", "/api/flows", tag_meetings(name="three"))

    assert refused.status_code == 409
    body = refused.json()
    assert body["extra"] == {"quota": "flows", "limit": 2, "resetSeconds": None}
    assert "UNIVERSAL_WEBHOOK_QUOTA_FLOWS" in body["detail"]
    assert quota_refusals(small, "flows") == 1
    # Another workspace has its own count.
    other = await small.new_workspace(small.workspace.signer)
    elsewhere = await small.call("POST", "/api/flows", tag_meetings(), workspace=other)
    assert elsewhere.status_code == 201


async def test_concurrent_creates_cannot_both_take_the_last_place(small: Api) -> None:
    await small.create(tag_meetings(name="one"))

    answers = await asyncio.gather(
        *(small.call("POST", "/api/flows", tag_meetings(name=f"n{i}")) for i in range(4))
    )

    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409]
    rows = await fetch_all(small.database_url, "SELECT COUNT(*) AS n FROM flows")
    assert rows[0]["n"] == 2


async def test_only_the_newest_versions_are_kept(small: Api) -> None:
    created = await small.create(tag_meetings())
    for name in ("v2", "v3", "v4"):
        answer = await small.call("PUT", f"/api/flows/{created['id']}", tag_meetings(name=name))
        assert answer.status_code == 200

    versions = (await small.call("GET", f"/api/flows/{created['id']}/versions")).json()["items"]

    assert [item["version"] for item in versions] == [4, 3]


async def test_endpoints_past_the_quota_are_refused(small: Api) -> None:
    assert (await small.call("POST", "/api/endpoints", {"name": "a"})).status_code == 201
    refused = await small.call("POST", "/api/endpoints", {"name": "b"})
    assert refused.status_code == 409
    assert refused.json()["extra"]["quota"] == "endpoints"


async def test_explorer_calls_past_the_rate_get_429_with_rate_headers(small: Api) -> None:
    path = "/api/operations/getProject/execute"
    body = {"params": {"projectId": "5f11849d4e759e12c40733d5"}}
    answers = [await small.call("POST", path, body) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["extra"]["quota"] == "explorer_calls_per_minute"
    assert refused.json()["extra"]["resetSeconds"] >= 1
    assert quota_refusals(small, "explorer_calls_per_minute") == 1
    calls = await fetch_all(small.database_url, "SELECT COUNT(*) AS n FROM api_calls")
    assert calls[0]["n"] == 2  # the refused call reached neither Clockify nor the history


async def test_dry_runs_past_the_rate_get_429(small: Api) -> None:
    created = await small.create(tag_meetings())
    body = {"eventType": "NEW_TIME_ENTRY", "event": {"id": "x", "description": "standup"}}
    answers = [await small.call("POST", f"/api/flows/{created['id']}/test", body) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert answers[-1].json()["extra"]["quota"] == "dry_runs_per_minute"


async def test_events_past_the_daily_quota_are_stored_marked_and_run_no_flow(small: Api) -> None:
    await small.create(tag_meetings())
    entries = [{"id": f"entry-{i}", "description": "meeting", "projectId": "p1"} for i in range(5)]

    answers = [await small.clockify.send_webhook(small.workspace, EVENT, e) for e in entries]
    redelivered = await small.clockify.send_webhook(small.workspace, EVENT, entries[0])

    # Never refused: every delivery is acknowledged and stored; a redelivery is not counted.
    assert [answer.status_code for answer in [*answers, redelivered]] == [200] * 6
    events = (await small.call("GET", "/api/events")).json()["items"]
    skipped = {event["payload"]["id"]: event["flowsSkipped"] for event in events}
    assert list(skipped) == [f"entry-{i}" for i in reversed(range(5))]
    assert [skipped[f"entry-{i}"] is None for i in range(5)] == [True] * 3 + [False] * 2
    assert "quota events_per_day" in str(skipped["entry-4"])
    # Only the events within the quota got a flow job.
    jobs = await fetch_all(
        small.database_url, "SELECT payload FROM jobs WHERE kind = 'flow.dispatch'"
    )
    payloads = [row["payload"] for row in jobs]
    dispatched = {(p if isinstance(p, dict) else json.loads(p))["event_id"] for p in payloads}
    assert dispatched == {event["id"] for event in events if event["flowsSkipped"] is None}
    counted = await fetch_all(small.database_url, "SELECT events FROM event_day_counts")
    assert counted == [{"events": 5}]
    assert quota_refusals(small, "events_per_day") == 2
    # Another workspace has its own count.
    other = await small.new_workspace(small.workspace.signer)
    elsewhere = await small.clockify.send_webhook(other, EVENT, entries[0])
    assert elsewhere.status_code == 200
    mine = (await small.call("GET", "/api/events", workspace=other)).json()["items"]
    assert [event["flowsSkipped"] for event in mine] == [None]
