"""kill -9 in the middle of background work: after a restart it resumes with no duplicate effect.

Bootstrap, coverage registration and retention are each killed part-way.

The app runs as a real process (`clockify-addons serve`, tests.served_app) against the
sandbox; a flow step killed mid-flight is covered by tests/integration/test_durability.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import insert

from addon_core.sandbox import Sandbox, Sizes
from addon_core.storage.database import create_engine
from addon_core.storage.models import Event
from tests.db import fetch_all
from tests.harness import ServeApp
from tests.served_app import wait_until_idle

PROJECTS = 1150  # six pages of 200
PAGE_LATENCY = 0.4
KILL_TIMEOUT = 60.0

pytestmark = [
    pytest.mark.outage,
    pytest.mark.sandbox(seed=17, sizes=Sizes(projects=PROJECTS, webhooks=0)),
]


def project_pages(sandbox: Sandbox, workspace_id: str, *, since: int = 0) -> Counter[int]:
    """How often each page of the projects list was answered (from request number `since`)."""
    prefix = f"/api/v1/workspaces/{workspace_id}/projects"
    pages: Counter[int] = Counter()
    for request in sandbox.requests[since:]:
        split = urlsplit(request.path)
        if request.method == "GET" and split.path == prefix and 200 <= request.status < 300:
            pages[int(parse_qs(split.query).get("page", ["1"])[0])] += 1
    return pages


async def test_a_bootstrap_killed_mid_list_resumes_and_caches_each_entity_once(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    [app] = await serve_app(BOOTSTRAP_ENABLED="true", BOOTSTRAP_INCLUDE="getProjects,getTags")
    sandbox.inject(None, times=None, method="GET", path_contains="/projects", latency=PAGE_LATENCY)
    manifest = await sandbox.fetch_manifest(app.url)
    workspace = sandbox.create_workspace(str(manifest["key"]))
    assert (await sandbox.install(app.url, manifest, workspace)).is_success

    async def stored_up_to() -> int:
        rows = await fetch_all(
            database_url,
            "SELECT next_page, status FROM bootstrap_progress "
            "WHERE workspace_id = :ws AND operation_id = 'getProjects'",
            ws=workspace.workspace_id,
        )
        return int(rows[0]["next_page"]) if rows and rows[0]["status"] != "done" else 0

    # Kill once a page or two are committed, with later ones still to come.
    deadline = time.monotonic() + KILL_TIMEOUT
    while await stored_up_to() < 2:
        assert time.monotonic() < deadline, "bootstrap never stored a page of projects"
        await asyncio.sleep(0.02)
    app.kill()
    await app.wait_dead()
    next_page = await stored_up_to()
    assert 2 <= next_page <= 6, "the kill landed after the list was done"
    before_restart = len(sandbox.requests)

    await app.start()
    await wait_until_idle(database_url)
    progress = await fetch_all(
        database_url,
        "SELECT operation_id, status, pages, items, errors FROM bootstrap_progress "
        "WHERE workspace_id = :ws",
        ws=workspace.workspace_id,
    )
    rows = {row["operation_id"]: row for row in progress}
    expected = sandbox.store.entities(workspace.workspace_id, "projects")
    assert len(expected) == PROJECTS
    projects = rows["getProjects"]
    # Counted once each: a page cut short by the kill is not counted twice.
    assert (projects["status"], projects["items"], projects["errors"]) == ("done", PROJECTS, 0)
    cached = await fetch_all(
        database_url,
        "SELECT entity_id FROM entity_cache WHERE workspace_id = :ws "
        "AND entity_type = 'getProjects'",
        ws=workspace.workspace_id,
    )
    assert sorted(row["entity_id"] for row in cached) == sorted(p["id"] for p in expected)
    # Resumed, not restarted: no page stored before the kill was fetched again (pages in
    # flight, answered or not, may have been).
    pages = project_pages(sandbox, workspace.workspace_id)
    assert set(pages) >= set(range(1, 7))  # pages are fetched ahead: 7 may be asked for too
    after = project_pages(sandbox, workspace.workspace_id, since=before_restart)
    assert after, "the restart fetched nothing"
    assert min(after) >= next_page, (next_page, after)
    assert await app.stop() == 0, app.log()


async def test_coverage_registration_killed_mid_way_leaves_one_webhook_per_event(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    [app] = await serve_app()
    # Each webhook creation is slow, so the kill lands between two of them.
    sandbox.inject(None, times=None, method="POST", path_contains="/webhooks", latency=0.3)
    manifest = await sandbox.fetch_manifest(app.url)
    workspace = sandbox.create_workspace(str(manifest["key"]))
    assert (await sandbox.install(app.url, manifest, workspace)).is_success

    def created() -> int:
        return sum(
            1
            for request in sandbox.requests
            if request.method == "POST"
            and request.route.endswith("/webhooks")
            and 200 <= request.status < 300
        )

    deadline = time.monotonic() + KILL_TIMEOUT
    while created() < 2:
        assert time.monotonic() < deadline, "coverage never created a webhook"
        await asyncio.sleep(0.02)
    app.kill()
    await app.wait_dead()
    at_kill = created()

    await app.start()
    await wait_until_idle(database_url)
    ours = [
        hook
        for hook in sandbox.store.entities(workspace.workspace_id, "webhooks")
        if hook["url"].startswith(app.url)
    ]
    urls = Counter(hook["url"] for hook in ours)
    assert urls, "no webhook was registered"
    assert max(urls.values()) == 1, urls  # one webhook per event path, none twice
    assert created() > at_kill, "the restart did not finish the registration"
    stored = await fetch_all(
        database_url,
        "SELECT path, clockify_webhook_id FROM webhook_registrations WHERE source = 'api'",
    )
    assert {row["clockify_webhook_id"] for row in stored} == {hook["id"] for hook in ours}
    dead = await fetch_all(database_url, "SELECT id, last_error FROM jobs WHERE status = 'dead'")
    assert dead == []
    assert await app.stop() == 0, app.log()


OLD_EVENTS = 3000
FRESH_EVENTS = 50


async def seed_events(database_url: str) -> None:
    """Old events past the 30-day retention and fresh ones, for a workspace with no jobs."""
    now = datetime.now(UTC)
    rows = [
        {
            "addon_key": "universal-webhook",
            "workspace_id": "ws-retention",
            "event_type": "NEW_PROJECT",
            "source": "clockify",
            "dedupe_key": f"{n:064d}",
            "payload": json.dumps({"n": n}),
            "headers": "{}",
            "received_at": now - timedelta(days=60 if n < OLD_EVENTS else 1),
        }
        for n in range(OLD_EVENTS + FRESH_EVENTS)
    ]
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(insert(Event), rows)
    await engine.dispose()


async def test_retention_killed_mid_run_resumes_and_deletes_only_what_is_due(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    await seed_events(database_url)
    [app] = await serve_app(RETENTION_INTERVAL_SECONDS="1", RETENTION_BATCH_SIZE="10")

    async def remaining() -> list[int]:
        rows = await fetch_all(database_url, "SELECT payload FROM events")
        return sorted(json.loads(row["payload"])["n"] for row in rows)

    deadline = time.monotonic() + KILL_TIMEOUT
    while len(await remaining()) == OLD_EVENTS + FRESH_EVENTS:
        assert time.monotonic() < deadline, "retention never started"
        await asyncio.sleep(0.01)
    app.kill()
    await app.wait_dead()
    at_kill = await remaining()
    assert FRESH_EVENTS < len(at_kill) < OLD_EVENTS + FRESH_EVENTS, "the kill missed the run"

    await app.start()  # the killed holder's lease (2 intervals) expires, then the run resumes
    deadline = time.monotonic() + KILL_TIMEOUT
    while len(left := await remaining()) > FRESH_EVENTS:
        assert time.monotonic() < deadline, f"{len(left)} events left after the restart"
        await asyncio.sleep(0.2)
    assert left == list(range(OLD_EVENTS, OLD_EVENTS + FRESH_EVENTS))  # the fresh ones, all
    assert await app.stop() == 0, app.log()
