"""Hostile input on both apps: deep JSON, ids past 64 bits, foreign cursors, bad bytes.

Each answers a 4xx in the usual error shape (`status_code`, `detail`), stores nothing and
runs nothing; what was stored before the bounds existed is still shown, never a 500.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.intake.standard_webhooks import signature_headers
from addon_core.redaction import TOO_DEEP
from tests.db import count, fetch_all
from tests.fake_clockify import Clockify, Workspace
from tests.harness import (
    InstallApp,
    assert_refused,
    execute,
    refusing_clockify,
    tag_meetings,
    time_entry,
)

BEYOND_64_BITS = "99999999999999999999"
WEBHOOK_EVENT = "NEW_TIME_ENTRY"


def deep(levels: int) -> Any:
    """Arrays and objects nested `levels` deep, alternately."""
    value: Any = "bottom"
    for level in range(levels):
        value = {"inner": value} if level % 2 else [value]
    return value


def deep_bytes(levels: int) -> bytes:
    return json.dumps({"description": "x", "nested": deep(levels)}).encode()


@dataclass
class Target:
    client: AsyncTestClient[Litestar]
    clockify: Clockify
    workspace: Workspace
    app_name: str
    database_url: str

    def auth(self) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self.workspace.user_token('OWNER')}",
            "content-type": "application/json",
        }

    async def post(self, path: str, content: bytes) -> httpx.Response:
        return await self.client.post(path, content=content, headers=self.auth())

    async def flow_id(self) -> str:
        response = await self.post("/api/flows", json.dumps(tag_meetings()).encode())
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
async def target(app_name: str, install_app: InstallApp) -> AsyncIterator[Target]:
    async with install_app(app_name, clockify_transport=refusing_clockify()) as api:
        yield Target(api.client, api.clockify, api.workspace, app_name, api.database_url)


# --- deep JSON -----------------------------------------------------------------------------


async def test_a_500_deep_clockify_webhook_is_refused_and_not_stored(target: Target) -> None:
    response = await target.clockify.send_webhook(target.workspace, WEBHOOK_EVENT, deep_bytes(500))

    error = assert_refused(response, 400)
    assert "more than 64 levels deep" in error["detail"]
    assert await count(target.database_url, "events") == 0


async def test_a_webhook_within_the_depth_bound_is_stored(target: Target) -> None:
    response = await target.clockify.send_webhook(target.workspace, WEBHOOK_EVENT, deep_bytes(30))

    assert response.status_code == 200, response.text
    assert await count(target.database_url, "events") == 1


async def test_a_deep_lifecycle_body_is_refused(target: Target, signer: Callable[..., Any]) -> None:
    newcomer = Workspace(signer(target.app_name))
    body = {**newcomer.installed_body(target.clockify.events), "extra": deep(200)}

    response = await target.clockify.lifecycle(newcomer, "INSTALLED", body)

    assert_refused(response, 400)
    assert await count(target.database_url, "installations") == 1  # the fixture's only


async def test_a_deep_flow_save_and_dry_run_are_refused(target: Target) -> None:
    document = tag_meetings(description=deep(200))
    response = await target.post("/api/flows", json.dumps(document).encode())
    assert_refused(response, 400)
    assert await count(target.database_url, "flows") == 0

    flow_id = await target.flow_id()
    dry_run = {"eventType": WEBHOOK_EVENT, "event": {**time_entry(), "deep": deep(200)}}
    response = await target.post(f"/api/flows/{flow_id}/test", json.dumps(dry_run).encode())
    assert_refused(response, 400)


async def test_a_deep_explorer_execute_is_refused_and_not_recorded(target: Target) -> None:
    body = json.dumps({"params": {"projectId": "p1"}, "body": deep(200)}).encode()

    response = await target.post("/api/operations/getProject/execute", body)

    assert_refused(response, 400)
    assert await count(target.database_url, "api_calls") == 0


async def test_events_stored_before_the_bound_are_listed_with_the_deep_part_cut(
    target: Target,
) -> None:
    # Written straight to the table, as the intake stored it before depth was bounded.
    await execute(
        target.database_url,
        "INSERT INTO events (addon_key, workspace_id, event_type, source, dedupe_key, payload, "
        "headers, received_at) VALUES (:key, :ws, :type, 'clockify', :dedupe, :payload, '{}', "
        ":at)",
        key=target.app_name,
        ws=target.workspace.workspace_id,
        type=WEBHOOK_EVENT,
        dedupe=uuid.uuid4().hex,
        payload=json.dumps({"authToken": "secret", "nested": deep(500)}),
        at=datetime.now(UTC),
    )

    response = await target.client.get("/api/events", headers=target.auth())

    assert response.status_code == 200, response.text
    [event] = response.json()["items"]
    assert event["payload"]["authToken"] == "[redacted]"
    assert TOO_DEEP in json.dumps(event["payload"])
    one = await target.client.get(f"/api/events/{event['id']}", headers=target.auth())
    assert one.status_code == 200, one.text


# --- ids, cursors, bytes ---------------------------------------------------------------------


async def test_integer_ids_past_64_bits_answer_400_on_every_route(target: Target) -> None:
    flow_id = await target.flow_id()
    routes = [
        ("GET", f"/api/flows/{flow_id}/versions/{BEYOND_64_BITS}"),
        ("GET", f"/api/executions/{BEYOND_64_BITS}"),
        ("GET", f"/api/events/{BEYOND_64_BITS}"),
        ("POST", f"/api/events/{BEYOND_64_BITS}/replay"),
        ("POST", f"/api/jobs/{BEYOND_64_BITS}/replay"),
        ("GET", f"/api/calls/{BEYOND_64_BITS}"),
        ("GET", f"/api/calls/{BEYOND_64_BITS}/action"),
    ]
    for method, path in routes:
        response = await target.client.request(method, path, headers=target.auth())
        error = assert_refused(response, 400)
        assert "out of range" in error["detail"], path


async def test_string_ids_of_any_size_answer_404(target: Target) -> None:
    paths = [f"/api/flows/{BEYOND_64_BITS}", f"/api/flows/{'9' * 5000}"]
    if target.app_name == "universal-webhook":
        paths.append(f"/api/endpoints/{BEYOND_64_BITS}")
    for path in paths:
        response = await target.client.get(path, headers=target.auth())
        assert_refused(response, 404)


async def test_foreign_or_huge_cursors_answer_400_on_every_list(target: Target) -> None:
    flow_id = await target.flow_id()
    lists = [
        "/api/flows",
        "/api/events",
        f"/api/flows/{flow_id}/versions",
        f"/api/flows/{flow_id}/executions",
        "/api/calls",
        "/api/jobs/dead",
        "/api/operations",
    ]
    if target.app_name == "universal-webhook":
        lists.append("/api/endpoints")
    beyond = base64.urlsafe_b64encode(BEYOND_64_BITS.encode()).decode()
    cursors = [beyond, "not base64 at all!", "A" * 5000, base64.b64encode("²".encode()).decode()]
    for path in lists:
        for cursor in cursors:
            response = await target.client.get(
                path, params={"cursor": cursor}, headers=target.auth()
            )
            error = assert_refused(response, 400)
            assert "cursor" in error["detail"], (path, cursor)
        for limit in (BEYOND_64_BITS, "-1", "many"):
            response = await target.client.get(path, params={"limit": limit}, headers=target.auth())
            assert_refused(response, 400)


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff"}', b"\xff\xfe", b'{"name": 1' + b"9" * 5000 + b"}", b'{"n": 1e999}'],
    ids=["invalid-utf8", "binary", "huge-integer", "huge-float"],
)
async def test_bad_bytes_and_huge_numbers_answer_400_on_every_json_body(
    target: Target, body: bytes
) -> None:
    flow_id = await target.flow_id()
    paths = [
        "/api/flows",
        f"/api/flows/{flow_id}/test",
        "/api/operations/getProject/execute",
        "/api/events/1/replay",
    ]
    if target.app_name == "universal-webhook":
        paths.append("/api/endpoints")
    for path in paths:
        response = await target.post(path, body)
        assert_refused(response, 400)
    response = await target.client.put(f"/api/flows/{flow_id}", content=body, headers=target.auth())
    assert_refused(response, 400)
    webhook = await target.clockify.send_webhook(target.workspace, WEBHOOK_EVENT, body)
    assert_refused(webhook, 400)
    assert await count(target.database_url, "events") == 0


# --- custom webhooks (Universal Webhook) ------------------------------------------------------


@pytest.mark.parametrize("app_name", ["universal-webhook"])
async def test_a_deep_or_undecodable_custom_webhook_is_refused_and_not_stored(
    target: Target,
) -> None:
    created = await target.post("/api/endpoints", b'{"name": "billing"}')
    assert created.status_code == 201, created.text
    endpoint = created.json()
    path = endpoint["url"][endpoint["url"].index("/webhooks/") :]
    for body in (deep_bytes(500), b'{"a": "\xff"}'):
        headers = {
            "content-type": "application/json",
            **signature_headers(endpoint["secret"], body),
        }
        response = await target.client.post(path, content=body, headers=headers)
        assert_refused(response, 400)
    assert await fetch_all(target.database_url, "SELECT id FROM events") == []
