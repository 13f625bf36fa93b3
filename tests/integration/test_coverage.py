"""Event coverage beyond the manifest, against the sandbox Clockify over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES, webhook_path
from addon_core.clockify.manifest import load_manifest
from addon_core.errors import ConfigError
from addon_core.sandbox import Sandbox, Sizes, Workspace
from addon_core.sandbox.driver import deliver
from addon_core.sandbox.loopback import serving
from addon_core.sandbox.store import MAX_USER_WEBHOOKS
from addon_core.settings import load_settings
from tests.db import fetch_all
from tests.harness import bearer, free_port, sandbox_settings
from universal_webhook.app import UniversalWebhookSettings
from universal_webhook.coverage_order import NOT_IN_WEBHOOKS_API, PRIORITY, wanted_event_types
from universal_webhook.registration import JOB_KIND

ADDON_KEY = "universal-webhook"
SEEDED_WEBHOOKS = 2  # made by the workspace owner, whom the installation token acts as


pytestmark = pytest.mark.sandbox(seed=11, sizes=Sizes(projects=3, webhooks=SEEDED_WEBHOOKS))


@pytest.fixture
def workspace(sandbox: Sandbox) -> Workspace:
    return sandbox.create_workspace(ADDON_KEY)


@pytest.fixture
def make_uw(
    make_app: Callable[..., Litestar], sandbox: Sandbox, tmp_path: Path
) -> Callable[..., tuple[Litestar, int]]:
    """The app with its base URL on a free loopback port, trusting the sandbox."""

    def build(**overrides: Any) -> tuple[Litestar, int]:
        port = free_port()
        settings: dict[str, Any] = {
            "base_url": f"http://127.0.0.1:{port}",
            **sandbox_settings(sandbox, tmp_path),
            "job_poll_seconds": 0.05,
            "job_backoff_seconds": 0.05,
            **overrides,
        }
        return make_app(ADDON_KEY, **settings), port

    return build


async def _job_settled(database_url: str, *, count: int = 1) -> list[dict[str, Any]]:
    """Wait until `count` coverage jobs have finished (done or dead)."""
    for _ in range(400):
        jobs = await fetch_all(
            database_url,
            "SELECT status, last_error FROM jobs WHERE kind = :kind ORDER BY id",
            kind=JOB_KIND,
        )
        if len(jobs) >= count and all(job["status"] in ("done", "dead") for job in jobs):
            return jobs
        await asyncio.sleep(0.05)
    raise AssertionError(f"the coverage job did not finish: {jobs}")


async def _install(
    sandbox: Sandbox, app_url: str, workspace: Workspace, database_url: str
) -> dict[str, Any]:
    """Install the served app in `workspace`, wait for its coverage job; return the manifest."""
    manifest = await sandbox.fetch_manifest(app_url)
    installed = await sandbox.install(app_url, manifest, workspace)
    assert installed.status_code == 200, installed.text
    await _job_settled(database_url)
    return manifest


def _ours(sandbox: Sandbox, workspace: Workspace, app_url: str) -> list[dict[str, Any]]:
    return [
        hook
        for hook in sandbox.store.entities(workspace.workspace_id, "webhooks")
        if hook["url"].startswith(app_url)
    ]


async def _registrations(database_url: str) -> list[dict[str, Any]]:
    return await fetch_all(
        database_url,
        "SELECT path, event_type, source, clockify_webhook_id, token_digest, auth_token "
        "FROM webhook_registrations WHERE source = 'api' ORDER BY path",
    )


def _deleted_body(workspace: Workspace) -> dict[str, Any]:
    return {"workspaceId": workspace.workspace_id, "addonId": workspace.addon_id}


def test_the_priority_order_names_every_event_type_once() -> None:
    assert sorted(PRIORITY) == sorted(CLOCKIFY_EVENT_TYPES - NOT_IN_WEBHOOKS_API)
    manifest = set(load_manifest(ADDON_KEY).webhook_events.values())
    # The manifest's own come last, so the first ones are all beyond the manifest.
    assert set(PRIORITY[-len(manifest) :]) == manifest


async def test_install_registers_uncovered_events_and_uninstall_deletes_them(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw()
    wanted = wanted_event_types(app.state.runtime)
    manifest_events = set(load_manifest(ADDON_KEY).webhook_events.values())
    assert wanted == [e for e in PRIORITY if e not in manifest_events]  # no cap assumed
    room = MAX_USER_WEBHOOKS - SEEDED_WEBHOOKS  # Clockify's per-admin limit counts the seeded
    async with serving(app, port=port) as app_url:
        manifest = await _install(sandbox, app_url, workspace, database_url)

        # In Clockify: one webhook per registered type, on the type's own path.
        hooks = _ours(sandbox, workspace, app_url)
        assert sorted(h["webhookEvent"] for h in hooks) == sorted(wanted[:room])
        for hook in hooks:
            assert hook["url"] == app_url + webhook_path(hook["webhookEvent"])
            assert hook["triggerSourceType"] == "WORKSPACE_ID"
        posts = [
            r for r in sandbox.requests if r.method == "POST" and r.route.endswith("/webhooks")
        ]
        assert [r.status for r in posts] == [201] * room + [400]  # stopped at Clockify's limit

        # Stored: each token encrypted, with its digest and Clockify's id.
        rows = await _registrations(database_url)
        by_id = {hook["id"]: hook for hook in hooks}
        assert {row["clockify_webhook_id"] for row in rows} == set(by_id)
        for row in rows:
            token = by_id[row["clockify_webhook_id"]]["authToken"]
            assert bytes(row["token_digest"]) == hashlib.sha256(token.encode()).digest()
            assert token not in row["auth_token"]
            assert token.split(".")[1] not in row["auth_token"]
            assert row["path"] == webhook_path(row["event_type"])

        # A delivery to an API-registered webhook, signed with its token, is accepted...
        event = wanted[0]
        [delivered] = await sandbox.fire_registered(workspace, event, {"id": "x1"})
        assert delivered.status_code == 200, delivered.text
        assert delivered.json() == {"status": "accepted"}
        stored = await fetch_all(
            database_url, "SELECT event_type, source FROM events WHERE event_type = :e", e=event
        )
        assert stored == [{"event_type": event, "source": "clockify"}]
        # ... and one with another valid webhook token of the workspace is refused.
        forged = await deliver(
            sandbox.http,
            app_url + webhook_path(event),
            workspace.webhook_token("NEW_TIME_ENTRY"),
            event,
            {"id": "x2"},
        )
        assert forged.status_code == 403, forged.text

        # A redelivered INSTALLED re-runs the job, which creates nothing twice.
        before = len(sandbox.requests)
        assert (await sandbox.install(app_url, manifest, workspace)).status_code == 200
        await _job_settled(database_url, count=2)
        again = sandbox.requests[before:]
        assert [r.method for r in again if r.method != "GET"] == ["POST"]  # the refused one
        assert len(_ours(sandbox, workspace, app_url)) == room

        # Uninstall deletes them in Clockify, and the stored tokens with the workspace.
        deleted = await sandbox.lifecycle(
            app_url, manifest, workspace, "DELETED", _deleted_body(workspace)
        )
        assert deleted.status_code == 200, deleted.text
    assert _ours(sandbox, workspace, app_url) == []
    removed = {r.route.rsplit("/", 1)[1] for r in sandbox.requests if r.method == "DELETE"}
    assert removed == set(by_id)
    assert len(sandbox.store.entities(workspace.workspace_id, "webhooks")) == SEEDED_WEBHOOKS
    assert await _registrations(database_url) == []


async def test_coverage_lists_every_event_type_and_how_it_arrives(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw()
    wanted = wanted_event_types(app.state.runtime)
    room = MAX_USER_WEBHOOKS - SEEDED_WEBHOOKS
    manifest_events = set(load_manifest(ADDON_KEY).webhook_events.values())
    async with serving(app, port=port) as app_url, httpx.AsyncClient(base_url=app_url) as http:
        await _install(sandbox, app_url, workspace, database_url)
        auth = bearer(workspace.user_token("USER"))
        response = await http.get("/api/coverage", headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        other = sandbox.create_workspace(ADDON_KEY)
        not_installed = await http.get("/api/coverage", headers=bearer(other.user_token()))
    items = {item["eventType"]: item for item in body["items"]}
    assert set(items) == CLOCKIFY_EVENT_TYPES
    assert body["next"] is None
    for event_type, item in items.items():
        assert item["path"] == webhook_path(event_type)
        if event_type in manifest_events:
            expected = "manifest"
        elif event_type in wanted[:room]:
            expected = "api"
        else:
            expected = "none"
        assert item["delivery"] == expected, item
        assert ("reason" in item) == (expected == "none")
    assert body["summary"] == {
        "manifest": len(manifest_events),
        "api": room,
        "none": len(CLOCKIFY_EVENT_TYPES) - len(manifest_events) - room,
    }
    assert "webhooks API does not offer" in items["TIME_OFF_REQUEST_STARTED"]["reason"]
    # The refused type carries what Clockify said; the ones after it say why none was tried.
    refused = items[wanted[room]]["reason"]
    assert refused.startswith("Clockify refused its webhook: 400 ")
    assert f"at most {MAX_USER_WEBHOOKS} webhooks" in refused
    for later in wanted[room + 1 :]:
        assert f"Clockify refused {wanted[room]}" in items[later]["reason"], later
    assert not_installed.status_code == 404


async def test_a_clockify_host_outside_the_allowlist_gets_no_request(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw()
    async with serving(app, port=port) as app_url:
        manifest = await _install(sandbox, app_url, workspace, database_url)
    registered = len(await _registrations(database_url))
    assert registered > 0

    # The same installation, served by a process whose allowlist no longer has the sandbox.
    narrowed, narrowed_port = make_uw(clockify_api_allowed_hosts=("api.clockify.me",))
    before = len(sandbox.requests)
    async with serving(narrowed, port=narrowed_port) as narrowed_url:
        await narrowed.state.runtime.jobs.enqueue(
            JOB_KIND, workspace.workspace_id, {"addon_id": workspace.addon_id}
        )
        jobs = await _job_settled(database_url, count=2)
        assert jobs[-1]["status"] == "dead"
        assert "127.0.0.1" in jobs[-1]["last_error"]
        deleted = await sandbox.lifecycle(
            narrowed_url, manifest, workspace, "DELETED", _deleted_body(workspace)
        )
        assert deleted.status_code == 200, deleted.text  # the uninstall goes on without Clockify
    assert len(sandbox.requests) == before
    assert len(_ours(sandbox, workspace, f"http://127.0.0.1:{port}")) == registered


async def test_an_unreachable_clockify_does_not_hold_up_the_uninstall(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw()
    async with serving(app, port=port) as app_url:
        manifest = await _install(sandbox, app_url, workspace, database_url)
        sandbox.inject(500, times=None, method="DELETE")
        deleted = await sandbox.lifecycle(
            app_url, manifest, workspace, "DELETED", _deleted_body(workspace)
        )
        assert deleted.status_code == 200, deleted.text
    assert await _registrations(database_url) == []
    statuses = {r.status for r in sandbox.requests if r.method == "DELETE"}
    assert statuses == {500}


async def test_webhooks_of_ours_already_in_clockify_are_adopted_not_duplicated(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw()
    wanted = wanted_event_types(app.state.runtime)
    base = f"http://127.0.0.1:{port}"
    # Left from an earlier run whose tokens were not stored: one wanted, one no longer wanted.
    async with httpx.AsyncClient(
        base_url=f"{sandbox.base_urls()['backendUrl']}/v1/workspaces/{workspace.workspace_id}",
        headers={"X-Addon-Token": workspace.installation_token()},
    ) as api:
        for event in (wanted[0], "NEW_TIME_ENTRY"):
            created = await api.post(
                "/webhooks",
                json={
                    "url": base + webhook_path(event),
                    "webhookEvent": event,
                    "triggerSourceType": "WORKSPACE_ID",
                    "triggerSource": [workspace.workspace_id],
                },
            )
            assert created.status_code == 201, created.text
    leftover = {h["webhookEvent"]: h for h in _ours(sandbox, workspace, base)}
    async with serving(app, port=port) as app_url:
        await _install(sandbox, app_url, workspace, database_url)
    hooks = _ours(sandbox, workspace, base)
    events = [h["webhookEvent"] for h in hooks]
    assert len(events) == len(set(events))
    assert "NEW_TIME_ENTRY" not in events  # the manifest covers it: ours was removed
    kept = next(h for h in hooks if h["webhookEvent"] == wanted[0])
    assert kept["id"] == leftover[wanted[0]]["id"]
    rows = {row["event_type"]: row for row in await _registrations(database_url)}
    assert rows[wanted[0]]["clockify_webhook_id"] == kept["id"]
    assert json.dumps(sorted(rows)) == json.dumps(sorted(events))


async def test_coverage_registers_as_many_webhooks_as_clockify_allows_not_ten(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="universal_webhook.registration")
    sandbox.store.webhooks_per_user = 25  # this Clockify allows more than the docs say
    room = 25 - SEEDED_WEBHOOKS
    app, port = make_uw(bootstrap_enabled=False)
    wanted = wanted_event_types(app.state.runtime)
    async with serving(app, port=port) as app_url, httpx.AsyncClient(base_url=app_url) as http:
        await _install(sandbox, app_url, workspace, database_url)
        [job] = await _job_settled(database_url)
        auth = bearer(workspace.user_token("USER"))
        body = (await http.get("/api/coverage", headers=auth)).json()

    assert job["status"] == "done"
    assert sorted(h["webhookEvent"] for h in _ours(sandbox, workspace, app_url)) == sorted(
        wanted[:room]
    )
    posts = [r.status for r in sandbox.requests if r.method == "POST" and "/webhooks" in r.route]
    assert posts == [201] * room + [400]  # registered until Clockify refused, then stopped
    assert body["summary"]["api"] == room
    items = {item["eventType"]: item for item in body["items"]}
    assert "at most 25 webhooks" in items[wanted[room]]["reason"]
    # An expected limit is information, not a warning.
    refusals = [r for r in caplog.records if "refused a webhook" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.INFO]
    coverage_logs = [r for r in caplog.records if r.name == "universal_webhook.registration"]
    assert not [r for r in coverage_logs if r.levelno >= logging.WARNING]


async def test_the_coverage_priority_setting_registers_its_event_types_first(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    first = ("BALANCE_UPDATED", "NEW_INVOICE", "COST_RATE_UPDATED")
    app, port = make_uw(coverage_priority=first)
    wanted = wanted_event_types(app.state.runtime)
    assert tuple(wanted[: len(first)]) == first
    room = MAX_USER_WEBHOOKS - SEEDED_WEBHOOKS
    async with serving(app, port=port) as app_url:
        await _install(sandbox, app_url, workspace, database_url)
        registered = {h["webhookEvent"] for h in _ours(sandbox, workspace, app_url)}
    assert registered == set(wanted[:room])
    assert set(first) <= registered


def test_a_coverage_priority_naming_an_unknown_event_type_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(UniversalWebhookSettings, coverage_priority="NEW_TASK,NEW_TASKS")
    message = str(caught.value)
    assert message.startswith("UNIVERSAL_WEBHOOK_COVERAGE_PRIORITY: NEW_TASKS cannot be")
    assert "NEW_TASK," not in message.split(":", 1)[1].split("cannot")[0]


def test_a_coverage_priority_is_read_comma_separated_in_any_case() -> None:
    settings = load_settings(UniversalWebhookSettings, coverage_priority=" new_task , TAG_UPDATED")
    assert settings.coverage_priority == ("NEW_TASK", "TAG_UPDATED")


async def test_a_changed_priority_takes_the_place_of_the_lowest_registered_type(
    sandbox: Sandbox,
    workspace: Workspace,
    make_uw: Callable[..., tuple[Litestar, int]],
    database_url: str,
) -> None:
    app, port = make_uw(bootstrap_enabled=False)
    wanted = wanted_event_types(app.state.runtime)
    room = MAX_USER_WEBHOOKS - SEEDED_WEBHOOKS
    async with serving(app, port=port) as app_url:
        await _install(sandbox, app_url, workspace, database_url)
    assert {h["webhookEvent"] for h in _ours(sandbox, workspace, app_url)} == set(wanted[:room])

    # The operator moves a type that did not fit to the front, and the job runs again.
    promoted = wanted[room + 3]
    again, _ = make_uw(bootstrap_enabled=False, coverage_priority=(promoted,), base_url=app_url)
    async with serving(again, port=port) as again_url, httpx.AsyncClient() as http:
        await again.state.runtime.jobs.enqueue(
            JOB_KIND, workspace.workspace_id, {"addon_id": workspace.addon_id}
        )
        jobs = await _job_settled(database_url, count=2)
        auth = bearer(workspace.user_token("USER"))
        body = (await http.get(f"{again_url}/api/coverage", headers=auth)).json()

    assert jobs[-1]["status"] == "done"
    dropped = wanted[room - 1]  # the lowest in the old order
    expected = {promoted, *wanted[: room - 1]}
    assert {h["webhookEvent"] for h in _ours(sandbox, workspace, app_url)} == expected
    assert {row["event_type"] for row in await _registrations(database_url)} == expected
    items = {item["eventType"]: item for item in body["items"]}
    assert items[promoted]["delivery"] == "api"
    assert items[dropped]["delivery"] == "none"
    # Tried again in its new place, after the others: refused, and the ones after it not tried.
    assert items[dropped]["reason"].startswith("Clockify refused its webhook: 400 ")
    assert f"Clockify refused {dropped}" in items[wanted[room]]["reason"]
