"""The pages' server side: the sidebar shell and its headers, and the JSON the pages read."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import insert

from addon_core.clockify.tokens import TokenSigner
from addon_core.storage.database import create_engine
from addon_core.storage.models import BootstrapProgress
from tests.fake_clockify import Clockify, Workspace
from tests.harness import bearer

EVENT = "NEW_PROJECT"


class Installed:
    def __init__(
        self, client: AsyncTestClient[Litestar], clockify: Clockify, ws: Workspace, url: str
    ) -> None:
        self.client = client
        self.clockify = clockify
        self.workspace = ws
        self.database_url = url

    def headers(self, role: str = "OWNER") -> dict[str, str]:
        return bearer(self.workspace.user_token(role))

    async def get(self, path: str, role: str = "OWNER", **params: Any) -> Any:
        response = await self.client.get(path, headers=self.headers(role), params=params or None)
        assert response.status_code == 200, response.text
        return response.json()

    async def webhook(self, payload: dict[str, Any], event: str = EVENT) -> None:
        response = await self.clockify.send_webhook(self.workspace, event, payload)
        assert response.status_code == 200, response.text


@pytest.fixture
async def installed(
    app_name: str,
    make_app: Callable[..., Litestar],
    reference_dir: Path,
    signer: Callable[[str], TokenSigner],
    database_url: str,
) -> AsyncIterator[Installed]:
    app = make_app(
        app_name,
        clockify_openapi_file=reference_dir / "openapi.json",
        bootstrap_enabled=False,
        base_url="http://127.0.0.1:8100",
    )
    async with AsyncTestClient(app=app) as client:
        clockify = Clockify.for_app(client, app_name)
        workspace = Workspace(signer(app_name))
        await clockify.install(workspace)
        yield Installed(client, clockify, workspace, database_url)


async def test_the_sidebar_answers_with_the_security_headers(installed: Installed) -> None:
    token = installed.workspace.user_token()
    response = await installed.client.get("/ui/sidebar", params={"auth_token": token})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors https://*.clockify.me http://127.0.0.1:* http://localhost:*" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in response.headers["cache-control"]
    assert token not in response.text  # the script reads it from the URL, never the markup
    assert '<html lang="en" data-theme="light">' in response.text
    assert "<script>" not in response.text  # no inline script: the CSP would block it


async def test_static_files_carry_the_security_headers(installed: Installed) -> None:
    page = await installed.client.get(
        "/ui/sidebar", params={"auth_token": installed.workspace.user_token()}
    )
    script = re.search(r'<script type="module" src="([^"]+)"', page.text)
    assert script is not None
    assert re.fullmatch(r"/ui/static/[0-9a-f]{12}/app\.js", script.group(1))
    response = await installed.client.get(script.group(1))
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "javascript" in response.headers["content-type"]


async def test_a_page_without_or_with_a_bad_token_is_refused_in_html(installed: Installed) -> None:
    missing = await installed.client.get("/ui/sidebar")
    assert missing.status_code == 401
    assert "opens from Clockify" in missing.text
    assert missing.headers["referrer-policy"] == "no-referrer"
    forged = await installed.client.get("/ui/sidebar", params={"auth_token": "not.a.token"})
    assert forged.status_code == 401
    assert "frame-ancestors" in forged.headers["content-security-policy"]


async def test_a_user_gets_no_write_controls_and_dark_theme_is_honoured(
    installed: Installed,
) -> None:
    owner = await installed.client.get(
        "/ui/sidebar", params={"auth_token": installed.workspace.user_token("OWNER")}
    )
    assert 'id="fl-new"' in owner.text
    assert 'data-can-write="true"' in owner.text
    user = await installed.client.get(
        "/ui/sidebar",
        params={"auth_token": installed.workspace.user_token("USER", theme="DARK")},
    )
    assert user.status_code == 200
    assert 'data-can-write="false"' in user.text
    assert 'data-theme="dark"' in user.text
    for control in ('id="fl-new"', 'id="fl-save"', 'id="ev-replay"', 'id="ov-bootstrap-run"'):
        assert control not in user.text


@pytest.mark.parametrize("app_name", ["universal-webhook"])
async def test_universal_webhook_shows_its_own_sections(installed: Installed) -> None:
    page = await installed.client.get(
        "/ui/sidebar", params={"auth_token": installed.workspace.user_token()}
    )
    assert 'data-sections="overview,events,flows,explorer,endpoints,coverage,audit"' in page.text


@pytest.mark.parametrize("app_name", ["api-studio"])
async def test_api_studio_shows_the_core_sections_only(installed: Installed) -> None:
    page = await installed.client.get(
        "/ui/sidebar", params={"auth_token": installed.workspace.user_token()}
    )
    assert 'data-sections="overview,events,flows,explorer,audit"' in page.text
    user = await installed.client.get(
        "/ui/sidebar", params={"auth_token": installed.workspace.user_token("USER")}
    )
    assert 'data-sections="overview,events,flows,explorer"' in user.text  # no audit


async def test_frame_ancestors_are_configurable(
    app_name: str, make_app: Callable[..., Litestar]
) -> None:
    app = make_app(app_name, ui_frame_ancestors="https://app.example.com")
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/ui/sidebar")
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors https://app.example.com;" in policy + ";"
    assert "127.0.0.1" not in policy  # not a loopback base URL


async def test_the_overview_counts_events_jobs_and_flows(installed: Installed) -> None:
    await installed.webhook({"id": "p1", "name": "One"})
    await installed.webhook({"id": "p2", "name": "Two"})
    overview = await installed.get("/api/overview", role="USER")
    assert overview["installation"]["status"] == "ACTIVE"
    assert overview["events"]["total"] == 2
    assert overview["events"]["perHour"][-1] == 2
    assert len(overview["events"]["perHour"]) == 24
    assert overview["flows"] == {
        "total": 0, "enabled": 0, "runs24h": 0, "failures24h": 0, "byStatus": {}, "paused": []
    }  # fmt: skip
    assert overview["canWrite"] is False
    assert set(overview["jobs"]) >= {"depth", "dead", "oldestAgeSeconds"}
    assert overview["deadJobs"] == []
    assert overview["bootstrap"]["items"] == []  # bootstrap is off in these tests


async def test_the_overview_needs_a_user_token(installed: Installed) -> None:
    response = await installed.client.get("/api/overview")
    assert response.status_code == 401


async def test_event_types_sample_and_since_filter(installed: Installed) -> None:
    types = await installed.get("/api/event-types")
    declared = [item["eventType"] for item in types["items"] if item["declared"]]
    assert EVENT in declared
    missing = await installed.get(f"/api/event-types/{EVENT}/sample")
    assert missing["event"] is None
    assert "no NEW_PROJECT event" in missing["detail"]
    await installed.webhook({"id": "p1", "name": "One"})
    sample = await installed.get(f"/api/event-types/{EVENT}/sample")
    assert sample["event"]["payload"] == {"id": "p1", "name": "One"}
    recent = await installed.get("/api/events", since="2000-01-01T00:00:00Z")
    assert len(recent["items"]) == 1
    future = await installed.get("/api/events", since="2999-01-01T00:00:00Z")
    assert future["items"] == []
    naive = await installed.client.get(
        "/api/events", headers=installed.headers(), params={"since": "2000-01-01T00:00:00"}
    )
    assert naive.status_code == 400
    assert "UTC offset" in naive.json()["detail"]


async def test_an_event_lists_the_executions_it_caused(installed: Installed) -> None:
    # No actions: the run needs no Clockify, only the engine.
    flow = {"name": "Count projects", "trigger": {"source": "clockify", "events": [EVENT]}}
    created = await installed.client.post(
        "/api/flows", content=json.dumps(flow), headers=installed.headers()
    )
    assert created.status_code == 201, created.text
    await installed.webhook({"id": "p1", "name": "One"})
    events = await installed.get("/api/events")
    event_id = events["items"][0]["id"]
    executions: dict[str, Any] = {"items": []}
    for _ in range(400):  # the background workers run the flow
        executions = await installed.get(f"/api/events/{event_id}/executions", role="USER")
        if executions["items"] and executions["items"][0]["finishedAt"]:
            break
        await asyncio.sleep(0.05)
    assert [item["flowId"] for item in executions["items"]] == [created.json()["id"]]
    assert executions["items"][0]["eventId"] == event_id
    other = await installed.client.get("/api/events/999999/executions", headers=installed.headers())
    assert other.status_code == 404


async def test_the_event_stream_sends_new_events_until_the_token_expires(
    installed: Installed,
) -> None:
    await installed.webhook({"id": "p0", "name": "Before"})
    events = await installed.get("/api/events")
    first_id = events["items"][0]["id"]
    await installed.webhook({"id": "p1", "name": "After"})
    token = installed.workspace.user_token(expires_in=2)
    response = await installed.client.get(
        "/api/events/stream", headers=bearer(token), params={"after": first_id}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.text.replace("\r\n", "\n")
    assert "event: ready" in body
    received = [
        json.loads(line.removeprefix("data: "))
        for block in body.split("\n\n")
        if "event: received" in block
        for line in block.splitlines()
        if line.startswith("data: ")
    ]
    assert [item["payload"]["name"] for item in received] == ["After"]
    assert body.rstrip().endswith("data: the token expired; reconnect")


async def test_the_event_stream_refuses_a_bad_last_event_id(installed: Installed) -> None:
    response = await installed.client.get(
        "/api/events/stream", headers={**installed.headers(), "Last-Event-ID": "abc"}
    )
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize("app_name", ["universal-webhook"])
async def test_a_test_delivery_passes_the_endpoint_intake_and_is_listed(
    installed: Installed,
) -> None:
    created = await installed.client.post(
        "/api/endpoints",
        content=json.dumps({"name": "Shop", "eventTypeHeader": "X-Event-Type"}),
        headers=installed.headers(),
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    refused = await installed.client.post(
        f"/api/endpoints/{endpoint_id}/test", headers=installed.headers("USER")
    )
    assert refused.status_code == 403
    sent = await installed.client.post(
        f"/api/endpoints/{endpoint_id}/test", headers=installed.headers()
    )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == 200
    deliveries = await installed.get(f"/api/endpoints/{endpoint_id}/deliveries", role="USER")
    assert [item["eventType"] for item in deliveries["items"]] == ["test.delivery"]
    assert deliveries["items"][0]["endpointId"] == endpoint_id
    unknown = await installed.client.get(
        "/api/endpoints/nope/deliveries", headers=installed.headers()
    )
    assert unknown.status_code == 404


async def test_one_failed_bootstrap_list_is_retried_alone(
    installed: Installed, app_name: str
) -> None:
    engine = create_engine(installed.database_url)
    try:
        async with engine.begin() as connection:
            for operation, status in (("getTags", "failed"), ("getClients", "done")):
                await connection.execute(
                    insert(BootstrapProgress).values(
                        addon_key=app_name,
                        workspace_id=installed.workspace.workspace_id,
                        operation_id=operation,
                        run=1,
                        status=status,
                        next_page=3,
                        last_error="Clockify answered 500" if status == "failed" else None,
                        updated_at=datetime.now(UTC),
                    )
                )
    finally:
        await engine.dispose()
    path = "/api/bootstrap/{}/retry"
    refused = await installed.client.post(path.format("getTags"), headers=installed.headers("USER"))
    assert refused.status_code == 403
    done = await installed.client.post(path.format("getClients"), headers=installed.headers())
    assert done.status_code == 409
    assert "only a failed list is retried" in done.json()["detail"]
    unknown = await installed.client.post(path.format("getNothing"), headers=installed.headers())
    assert unknown.status_code == 404
    retried = await installed.client.post(path.format("getTags"), headers=installed.headers())
    assert retried.status_code == 202, retried.text
    rows = {item["operation"]: item for item in retried.json()["items"]}
    assert rows["getTags"]["status"] == "pending"
    assert rows["getTags"]["lastError"] is None
    assert rows["getClients"]["status"] == "done"
