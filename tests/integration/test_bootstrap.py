"""Install-time bootstrap against the sandbox over HTTP: every list, resumable, scoped."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select

from addon_core.bootstrap import KIND
from addon_core.bootstrap.job import MAX_AHEAD
from addon_core.jobs.queue import DEAD, DONE, QUEUED
from addon_core.runtime import AddonRuntime
from addon_core.sandbox import Fault, Sandbox, Sizes, Workspace
from addon_core.sandbox.loopback import serving
from addon_core.sandbox.routes import LIST_OPERATIONS
from addon_core.sandbox.store import entity_id
from addon_core.storage.models import BootstrapProgress, CachedEntity, Job
from tests.harness import BOOTSTRAP_LISTS, bearer, eventually, sandbox_settings

ADDON_KEY = "api-studio"
#: Projects fill 11 pages of 200, long enough for pages to be fetched ahead; tags fill
#: exactly two, so their third page is empty.
PROJECTS = 2050
SIZES = Sizes(projects=PROJECTS, tags=400, clients=30, users=12, time_entries=60, expenses=40)
PROJECT_PAGES = PROJECTS // 200 + 1
DEFAULT_LISTS = set(BOOTSTRAP_LISTS)
#: The sandbox's collection behind each list it serves.
KINDS = {operation.operation_id: operation.kind for operation in LIST_OPERATIONS}
PROJECTS_PAGE_3 = "/projects?page=3&"

Starter = Callable[..., AbstractAsyncContextManager["Harness"]]


async def reached(fault: Fault) -> None:
    """Wait until a request meets `fault` (which then holds it for its latency)."""

    async def hit() -> bool:
        return fault.hits > 0

    await eventually(hit, "a request to reach the injected fault")


def assert_each_page_once(requested: Counter[str], needed: int) -> None:
    """Every page a list needs was requested once; the few requested ahead past its end too."""
    assert [requested[str(page)] for page in range(1, needed + 1)] == [1] * needed
    past_end = {page: count for page, count in requested.items() if int(page) > needed}
    assert len(past_end) < MAX_AHEAD
    assert set(past_end.values()) <= {1}


@dataclass
class Harness:
    """The app served on loopback against the sandbox, and what tests ask of both."""

    sandbox: Sandbox
    app: Litestar
    http: httpx.AsyncClient

    @property
    def runtime(self) -> AddonRuntime:
        runtime: AddonRuntime = self.app.state.runtime
        return runtime

    async def install(self) -> Workspace:
        workspace = self.sandbox.create_workspace(ADDON_KEY)
        manifest = await self.sandbox.fetch_manifest(str(self.http.base_url))
        installed = await self.sandbox.install(str(self.http.base_url), manifest, workspace)
        assert installed.status_code == 200, installed.text
        return workspace

    async def progress(self, workspace: Workspace, role: str = "USER") -> httpx.Response:
        return await self.http.get("/api/bootstrap", headers=bearer(workspace.user_token(role)))

    async def rerun(self, workspace: Workspace, role: str = "OWNER") -> httpx.Response:
        return await self.http.post("/api/bootstrap", headers=bearer(workspace.user_token(role)))

    async def rows(self, workspace: Workspace) -> dict[str, BootstrapProgress]:
        sessions = self.runtime.sessions
        async with sessions() as session:
            rows = await session.scalars(
                select(BootstrapProgress).where(
                    BootstrapProgress.workspace_id == workspace.workspace_id
                )
            )
            return {row.operation_id: row for row in rows}

    async def cached(self, workspace: Workspace) -> dict[str, list[str]]:
        """The cached entity ids of each list."""
        sessions = self.runtime.sessions
        async with sessions() as session:
            rows = await session.execute(
                select(CachedEntity.entity_type, CachedEntity.entity_id).where(
                    CachedEntity.workspace_id == workspace.workspace_id
                )
            )
            cached: dict[str, list[str]] = {}
            for entity_type, key in rows:
                cached.setdefault(entity_type, []).append(key)
            return cached

    async def jobs(self, workspace: Workspace) -> list[Job]:
        sessions = self.runtime.sessions
        async with sessions() as session:
            return list(
                await session.scalars(
                    select(Job)
                    .where(Job.kind == KIND, Job.workspace_id == workspace.workspace_id)
                    .order_by(Job.id)
                )
            )

    async def settle(self, workspace: Workspace, limit: float = 60.0) -> list[Job]:
        """Wait until no bootstrap job of the workspace is queued or running."""
        async with asyncio.timeout(limit):  # a guard against hanging, not a timing assert
            while True:
                jobs = await self.jobs(workspace)
                if jobs and all(job.status in (DONE, DEAD) for job in jobs):
                    return jobs
                await asyncio.sleep(0.05)

    def expected(self, workspace: Workspace, operation_id: str) -> list[str]:
        """The ids the sandbox holds for a list."""
        entities = self.sandbox.store.entities(workspace.workspace_id, KINDS[operation_id])
        if operation_id == "getInProgressTimeEntries":
            entities = [e for e in entities if e["timeInterval"]["end"] is None]
        return [entity_id(entity) for entity in entities]

    def page_requests(self, route_part: str) -> Counter[str]:
        """How often each page of a list was requested (whatever the answer)."""
        pages: Counter[str] = Counter()
        for request in self.sandbox.requests:
            if route_part in request.route and request.method == "GET":
                query = dict(
                    part.split("=", 1) for part in request.path.partition("?")[2].split("&") if part
                )
                pages[query.get("page", "1")] += 1
        return pages


pytestmark = pytest.mark.sandbox(seed=5, sizes=SIZES)


@pytest.fixture
def start(
    sandbox: Sandbox, make_app: Callable[..., Litestar], reference_dir: Path, tmp_path: Path
) -> Starter:
    """Serve the app against the sandbox, with settings overridden as given."""

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[Harness]:
        settings: dict[str, Any] = {
            **sandbox_settings(sandbox, tmp_path, reference_dir),
            "clockify_retry_attempts": 2,
            "clockify_backoff_seconds": 0,
            "clockify_backoff_max_seconds": 0,
            "job_backoff_seconds": 0.05,
            "job_backoff_max_seconds": 0.1,
        }
        app = make_app(ADDON_KEY, **{**settings, **overrides})
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
            yield Harness(sandbox, app, http)

    return serve


@pytest.fixture
async def harness(start: Starter) -> AsyncIterator[Harness]:
    async with start() as running:
        yield running


async def test_bootstrap_pages_through_every_list_and_caches_each_entity_once(
    harness: Harness,
) -> None:
    workspace = await harness.install()
    [job] = await harness.settle(workspace)
    assert job.status == DONE, job.last_error
    rows = await harness.rows(workspace)
    assert set(rows) == DEFAULT_LISTS
    cached = await harness.cached(workspace)
    for operation_id, row in rows.items():
        expected = harness.expected(workspace, operation_id)
        size = 1000 if operation_id == "getInProgressTimeEntries" else 200
        assert (row.status, row.items, row.errors) == ("done", len(expected), 0), operation_id
        assert row.pages == len(expected) // size + 1, operation_id  # ending on a short page
        assert sorted(cached.get(operation_id, [])) == sorted(expected), operation_id
    assert rows["getProjects"].pages == PROJECT_PAGES
    assert rows["getTags"].pages == 3
    assert_each_page_once(harness.page_requests("/tags"), 3)
    assert_each_page_once(harness.page_requests("/projects"), PROJECT_PAGES)
    counted = harness.runtime.metrics.bootstrap_items.labels(ADDON_KEY, "getProjects")
    assert counted._value.get() == PROJECTS

    response = await harness.progress(workspace)
    assert response.status_code == 200, response.text
    progress = response.json()
    assert progress["run"] == 1
    assert progress["next"] is None
    projects = next(item for item in progress["items"] if item["operation"] == "getProjects")
    assert projects == {
        "operation": "getProjects",
        "status": "done",
        "pages": PROJECT_PAGES,
        "items": PROJECTS,
        "errors": 0,
        "lastError": None,
        "updatedAt": projects["updatedAt"],
    }
    assert {item["operation"] for item in progress["items"]} == DEFAULT_LISTS


async def test_a_fresh_install_with_no_openapi_file_bootstraps_explores_and_saves_flows(
    start: Starter, tmp_path: Path
) -> None:
    # No {P}CLOCKIFY_OPENAPI_FILE and an empty data directory: the shipped catalogue serves.
    async with start(clockify_openapi_file=None, data_dir=tmp_path / "fresh") as harness:
        assert not (tmp_path / "fresh").exists()
        workspace = await harness.install()
        [job] = await harness.settle(workspace)
        assert job.status == DONE, job.last_error
        assert {
            op for op, row in (await harness.rows(workspace)).items() if row.status == "done"
        } == (DEFAULT_LISTS)
        owner = bearer(workspace.user_token("OWNER"))
        listed = await harness.http.get("/api/operations", params={"q": "project"}, headers=owner)
        assert listed.status_code == 200, listed.text
        assert "getProjects" in {item["operationId"] for item in listed.json()["items"]}
        flow = {
            "name": "Rename new projects",
            "trigger": {"source": "clockify", "events": ["NEW_PROJECT"]},
            "actions": [
                {
                    "id": "read",
                    "type": "clockify",
                    "operation": "getProject",
                    "params": {"projectId": "{{ event.id }}"},
                }
            ],
        }
        saved = await harness.http.post("/api/flows", json=flow, headers=owner)
        assert saved.status_code == 201, saved.text


async def test_clockify_unavailable_mid_list_resumes_at_the_page_reached(
    harness: Harness,
) -> None:
    # Both attempts of the client fail: the job retries later and resumes at page 3.
    harness.sandbox.inject(503, times=2, path_contains=PROJECTS_PAGE_3)
    workspace = await harness.install()
    [job] = await harness.settle(workspace)
    assert job.status == DONE, job.last_error
    assert job.attempts == 2
    pages = harness.page_requests("/projects")
    assert (pages["1"], pages["2"], pages["3"]) == (1, 1, 3)
    assert pages["4"] <= 2  # perhaps fetched ahead of page 3 once, then again in order
    projects = (await harness.rows(workspace))["getProjects"]
    assert (projects.status, projects.pages, projects.items) == ("done", PROJECT_PAGES, PROJECTS)
    assert projects.errors == 1
    assert projects.last_error is not None
    assert "503" in projects.last_error
    cached = await harness.cached(workspace)
    assert sorted(cached["getProjects"]) == sorted(harness.expected(workspace, "getProjects"))
    # Every other list completed in the first attempt and was not fetched again.
    assert_each_page_once(harness.page_requests("/tags"), 3)


async def test_a_stopped_worker_leaves_its_pages_and_the_next_one_resumes(
    harness: Harness,
) -> None:
    slow = harness.sandbox.inject(None, times=1, path_contains=PROJECTS_PAGE_3, latency=3.0)
    workspace = await harness.install()
    await reached(slow)

    async def two_pages_stored() -> bool:
        return (await harness.rows(workspace))["getProjects"].next_page == 3

    await eventually(two_pages_stored, "the second page of projects to be stored")
    queue = harness.runtime.jobs
    await queue.stop(grace=0)  # cancels the job while page 3 is in flight
    projects = (await harness.rows(workspace))["getProjects"]
    assert (projects.next_page, projects.pages, projects.items) == (3, 2, 400)
    [job] = await harness.jobs(workspace)
    assert job.status == QUEUED  # released at once, not left to its lease

    await queue.start()
    [job] = await harness.settle(workspace)
    assert job.status == DONE, job.last_error
    pages = harness.page_requests("/projects")
    assert (pages["1"], pages["2"]) == (1, 1)
    projects = (await harness.rows(workspace))["getProjects"]
    assert (projects.status, projects.pages, projects.items) == ("done", PROJECT_PAGES, PROJECTS)
    cached = await harness.cached(workspace)
    assert sorted(cached["getProjects"]) == sorted(harness.expected(workspace, "getProjects"))


async def test_a_list_refused_with_403_fails_alone(harness: Harness) -> None:
    harness.sandbox.inject(403, times=None, path_contains="/invoices")
    workspace = await harness.install()
    [job] = await harness.settle(workspace)
    assert job.status == DONE, job.last_error
    rows = await harness.rows(workspace)
    invoices = rows.pop("getInvoices")
    assert (invoices.status, invoices.errors, invoices.items) == ("failed", 1, 0)
    assert invoices.last_error is not None
    assert "403" in invoices.last_error
    assert {row.status for row in rows.values()} == {"done"}
    assert "getInvoices" not in await harness.cached(workspace)
    assert harness.page_requests("/invoices") == {"1": 1}  # a 4xx is not retried


async def test_include_and_exclude_settings_choose_the_lists(start: Starter) -> None:
    async with start(
        bootstrap_include=("getWebhooks", "findPtoPoliciesForWorkspace"),
        bootstrap_exclude=("getProjects",),
    ) as harness:
        workspace = await harness.install()
        [job] = await harness.settle(workspace)
        assert job.status == DONE, job.last_error
        rows = await harness.rows(workspace)
        assert set(rows) == DEFAULT_LISTS - {"getProjects"} | {
            "getWebhooks",
            "findPtoPoliciesForWorkspace",
        }
        assert harness.page_requests("/projects") == {}
        # Not paged: one request; its answer wraps the list (`{"webhooks": [...]}`).
        webhooks = rows["getWebhooks"]
        assert (webhooks.status, webhooks.pages) == ("done", 1)
        hooks = harness.sandbox.store.entities(workspace.workspace_id, "webhooks")
        cached = await harness.cached(workspace)
        assert sorted(cached["getWebhooks"]) == sorted(hook["id"] for hook in hooks)
        # The sandbox serves no time-off server: attempted, failed cleanly.
        pto = rows["findPtoPoliciesForWorkspace"]
        assert (pto.status, pto.errors) == ("failed", 1)
        assert pto.last_error is not None
        assert "404" in pto.last_error


async def test_no_bootstrap_when_turned_off(start: Starter) -> None:
    async with start(bootstrap_enabled=False) as harness:
        workspace = await harness.install()
        assert await harness.jobs(workspace) == []
        assert await harness.rows(workspace) == {}
        progress = await harness.progress(workspace)
        assert progress.json() == {"items": [], "next": None, "run": 0}
        refused = await harness.rerun(workspace)
        assert refused.status_code == 409
        assert "BOOTSTRAP_ENABLED" in refused.json()["detail"]
        assert harness.sandbox.requests == []


async def test_a_writer_reruns_and_the_new_run_replaces_the_cache(harness: Harness) -> None:
    workspace = await harness.install()
    await harness.settle(workspace)
    refused = await harness.rerun(workspace, role="USER")
    assert refused.status_code == 403
    assert "OWNER or ADMIN" in refused.json()["detail"]
    assert len(await harness.jobs(workspace)) == 1

    gone = harness.sandbox.store.entities(workspace.workspace_id, "projects")[0]["id"]
    harness.sandbox.store.remove(workspace.workspace_id, "projects", gone)
    accepted = await harness.rerun(workspace, role="ADMIN")
    assert accepted.status_code == 202, accepted.text
    answer = accepted.json()
    assert answer["run"] == 2
    assert {item["operation"] for item in answer["items"]} == DEFAULT_LISTS
    jobs = await harness.settle(workspace)
    assert [job.status for job in jobs] == [DONE, DONE]
    # The job carries the id of the request that asked for it, for its log lines.
    assert jobs[1].payload == {"run": 2, "request_id": accepted.headers["x-request-id"]}
    rows = await harness.rows(workspace)
    assert {(row.run, row.status) for row in rows.values()} == {(2, "done")}
    cached = await harness.cached(workspace)
    assert gone not in cached["getProjects"]
    assert sorted(cached["getProjects"]) == sorted(harness.expected(workspace, "getProjects"))
    assert rows["getProjects"].items == PROJECTS - 1
    pages = harness.page_requests("/projects")
    assert all(pages[str(n)] == 2 for n in range(1, PROJECT_PAGES))


async def test_progress_is_scoped_to_the_caller_s_workspace(harness: Harness) -> None:
    first = await harness.install()
    second = await harness.install()
    await harness.settle(first)
    await harness.settle(second)
    for workspace in (first, second):
        progress = (await harness.progress(workspace)).json()
        projects = next(i for i in progress["items"] if i["operation"] == "getProjects")
        assert projects["items"] == len(harness.expected(workspace, "getProjects"))
    cached = await harness.cached(first)
    assert not set(cached["getProjects"]) & set(harness.expected(second, "getProjects"))
    stranger = harness.sandbox.create_workspace(ADDON_KEY)  # never installed
    assert (await harness.progress(stranger)).status_code == 404
    assert (await harness.rerun(stranger)).status_code == 409  # a write: not installed there


async def test_a_rerun_during_a_run_takes_its_lists_over(harness: Harness) -> None:
    slow = harness.sandbox.inject(None, times=1, path_contains=PROJECTS_PAGE_3, latency=1.0)
    workspace = await harness.install()
    await reached(slow)
    accepted = await harness.rerun(workspace)
    assert accepted.status_code == 202, accepted.text
    jobs = await harness.settle(workspace)
    assert [job.status for job in jobs] == [DONE, DONE]
    rows = await harness.rows(workspace)
    assert {(row.run, row.status) for row in rows.values()} == {(2, "done")}
    assert rows["getProjects"].items == PROJECTS
    cached = await harness.cached(workspace)
    assert sorted(cached["getProjects"]) == sorted(harness.expected(workspace, "getProjects"))


async def test_a_redelivered_installed_does_not_restart_a_run_in_progress(
    harness: Harness,
) -> None:
    slow = harness.sandbox.inject(None, times=1, path_contains=PROJECTS_PAGE_3, latency=1.0)
    workspace = await harness.install()
    await reached(slow)
    manifest = await harness.sandbox.fetch_manifest(str(harness.http.base_url))
    again = await harness.sandbox.install(str(harness.http.base_url), manifest, workspace)
    assert again.status_code == 200, again.text
    [job] = await harness.settle(workspace)
    assert job.status == DONE, job.last_error
    rows = await harness.rows(workspace)
    assert {(row.run, row.status) for row in rows.values()} == {(1, "done")}
    assert_each_page_once(harness.page_requests("/projects"), PROJECT_PAGES)
