"""The local Clockify sandbox over loopback: auth, paging, rate limit, faults, writes, driver."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar

from addon_core.clockify.catalogue import build_url, load_catalogue
from addon_core.clockify.tokens import TokenKind, TokenSigner, TokenVerifier, load_public_keys
from addon_core.sandbox import Sandbox, SandboxStore, Sizes, Workspace
from addon_core.sandbox.launcher import LaunchError, prepare
from addon_core.sandbox.loopback import serving
from addon_core.settings import REFERENCE_DIR_VARIABLE
from tests.harness import Receiver, free_port, sandbox_settings

ADDON_KEY = "universal-webhook"
HEX_ID = re.compile(r"[0-9a-f]{24}")


class FrozenClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


pytestmark = pytest.mark.sandbox(seed=7, sizes=Sizes(projects=120))


@pytest.fixture
def workspace(sandbox: Sandbox) -> Workspace:
    return sandbox.create_workspace(ADDON_KEY)


@pytest.fixture
async def api(sandbox: Sandbox, workspace: Workspace) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the workspace's API, authorised with its installation token."""
    async with httpx.AsyncClient(
        base_url=f"{sandbox.base_urls()['backendUrl']}/v1/workspaces/{workspace.workspace_id}",
        headers={"X-Addon-Token": workspace.installation_token()},
    ) as client:
        yield client


# --- auth --------------------------------------------------------------------------------------


async def test_a_request_without_a_token_gets_401_with_a_clockify_error(
    sandbox: Sandbox, workspace: Workspace
) -> None:
    url = f"{sandbox.url}/api/v1/workspaces/{workspace.workspace_id}/projects"
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 401
    assert set(response.json()) == {"message", "code"}
    assert sandbox.requests[-1][:3] == ("GET", "/api" + url.split("/api", 1)[1], 401)


@pytest.mark.parametrize("kind", ["forged", "expired", "webhook"])
async def test_an_invalid_token_gets_401(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient, kind: str
) -> None:
    if kind == "forged":
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = Workspace(
            TokenSigner(other_key, ADDON_KEY),
            workspace_id=workspace.workspace_id,
            base_urls=sandbox.base_urls(),
        ).installation_token()
    elif kind == "expired":
        token = workspace.user_token(expires_in=-120)
    else:
        token = workspace.webhook_token("NEW_PROJECT")
    response = await api.get("/projects", headers={"X-Addon-Token": token})
    assert response.status_code == 401, response.text


async def test_a_token_for_another_workspace_gets_403(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    other = sandbox.create_workspace(ADDON_KEY)
    response = await api.get("/projects", headers={"X-Addon-Token": other.installation_token()})
    assert response.status_code == 403
    assert (await api.get("/projects")).status_code == 200


async def test_a_user_token_may_call_the_api(workspace: Workspace, api: httpx.AsyncClient) -> None:
    response = await api.get("/tags", headers={"X-Addon-Token": workspace.user_token()})
    assert response.status_code == 200


# --- data and paging ---------------------------------------------------------------------------


async def test_projects_page_through_in_pages_of_50_with_a_short_last_page(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    pages = [(await api.get("/projects", params={"page": n})).json() for n in (1, 2, 3, 4)]
    assert [len(page) for page in pages] == [50, 50, 20, 0]
    ids = [project["id"] for page in pages for project in page]
    stored = [p["id"] for p in sandbox.store.entities(workspace.workspace_id, "projects")]
    assert ids == stored
    assert len(set(ids)) == 120
    assert all(HEX_ID.fullmatch(i) for i in ids)
    sized = await api.get("/projects", params={"page": 2, "page-size": 100})
    assert len(sized.json()) == 20


async def test_lists_filter_by_archived_and_name(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    stored = sandbox.store.entities(workspace.workspace_id, "projects")
    archived = (await api.get("/projects", params={"archived": "true", "page-size": 500})).json()
    assert {p["id"] for p in archived} == {p["id"] for p in stored if p["archived"]}
    assert archived
    name = stored[0]["name"]
    named = (await api.get("/projects", params={"name": name.upper(), "page-size": 500})).json()
    assert stored[0]["id"] in {p["id"] for p in named}
    assert all(name.lower() in p["name"].lower() for p in named)


async def test_page_size_caps_come_from_the_openapi_document(api: httpx.AsyncClient) -> None:
    assert (await api.get("/time-off/policies", params={"page-size": 200})).status_code == 200
    too_big = await api.get("/time-off/policies", params={"page-size": 201})
    assert too_big.status_code == 400
    assert "200" in too_big.json()["message"]
    running = await api.get("/time-entries/status/in-progress", params={"page-size": 1000})
    assert running.status_code == 200
    assert running.json()
    assert all(entry["timeInterval"]["end"] is None for entry in running.json())
    bad_page = await api.get("/tags", params={"page": 0})
    assert bad_page.status_code == 400


BOOTSTRAP_LISTS = [
    "getClients",
    "getProjects",
    "getTags",
    "getUserGroups",
    "getApprovalRequests",
    "getExpenses",
    "getCategories",
    "getInvoices",
    "getInProgressTimeEntries",
    "findPoliciesForWorkspace",
]


async def test_every_bootstrap_list_is_served_where_the_catalogue_builds_its_url(
    sandbox: Sandbox, workspace: Workspace, reference_dir: Path
) -> None:
    catalogue = load_catalogue(reference_dir / "openapi.json")
    token = {"X-Addon-Token": workspace.installation_token()}
    async with httpx.AsyncClient(headers=token) as client:
        for operation_id in BOOTSTRAP_LISTS:
            operation = catalogue.get(operation_id)
            assert operation.method == "GET"
            params = {"workspaceId": workspace.workspace_id, "page": 1, "page-size": 5}
            response = await client.get(build_url(operation, params, sandbox.base_urls()))
            assert response.status_code == 200, (operation_id, response.text)
            assert response.json(), operation_id


#: Each stored kind and the OpenAPI schema its entities are shaped like.
SCHEMAS = {
    "projects": "ProjectDtoImplV1",
    "clients": "ClientWithCurrencyDtoV1",
    "tags": "TagDtoV1",
    "user_groups": "UserGroupDtoV1",
    "users": "UserDtoV1",
    "expense_categories": "ExpenseCategoryDtoV1",
    "expenses": "ExpenseHydratedDtoV1",
    "invoices": "InvoiceDtoV1",
    "time_entries": "TimeEntryWithRatesDtoV1",
    "policies": "PolicyDtoV1",
    "approval_requests": "ApprovalDetailsDtoV1",
    "webhooks": "WebhookDtoV1",
}


async def test_seeded_entities_carry_only_fields_of_their_openapi_schemas(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient, reference_dir: Path
) -> None:
    schemas = json.loads((reference_dir / "openapi.json").read_text())["components"]["schemas"]

    def fields(name: str) -> set[str]:
        return set(schemas[name]["properties"])

    for kind, schema in SCHEMAS.items():
        entities = sandbox.store.entities(workspace.workspace_id, kind)
        assert entities, kind
        for entity in entities:
            assert set(entity) <= fields(schema), (kind, set(entity) - fields(schema))
    workspace_record = (await api.get("/")).json()
    assert workspace_record["id"] == workspace.workspace_id
    assert set(workspace_record) <= fields("WorkspaceDtoV1")
    expenses = (await api.get("/expenses")).json()
    assert set(expenses) <= fields("ExpensesAndTotalsDtoV1")
    assert set(expenses["expenses"]) <= fields("ExpensesWithCountDtoV1")
    assert set((await api.get("/expenses/categories")).json()) == {"categories", "count"}
    assert set((await api.get("/invoices")).json()) == {"invoices", "total"}
    webhooks = (await api.get("/webhooks")).json()
    assert set(webhooks) <= fields("WebhooksDtoV1")


def test_the_same_seed_seeds_the_same_workspace() -> None:
    def seeded(seed: int) -> list[Any]:
        store = SandboxStore(seed, Sizes(projects=10, time_entries=20))
        store.add_workspace("a" * 24, "b" * 24, name="w", sign_webhook=lambda event: event)
        return [store.entities("a" * 24, kind) for kind in ("projects", "time_entries")]

    assert seeded(3) == seeded(3)
    assert seeded(3) != seeded(4)


# --- rate limit ------------------------------------------------------------------------------


async def test_the_51st_request_within_a_second_gets_429_and_the_window_slides(
    private_key: rsa.RSAPrivateKey,
) -> None:
    clock = FrozenClock()
    async with Sandbox.running(
        private_key=private_key, sizes=Sizes(projects=2), clock=clock, retry_after=1
    ) as sandbox:
        busy, quiet = sandbox.create_workspace(ADDON_KEY), sandbox.create_workspace(ADDON_KEY)
        async with httpx.AsyncClient() as client:

            async def call(workspace: Workspace) -> httpx.Response:
                return await client.get(
                    f"{sandbox.base_urls()['backendUrl']}/v1/workspaces/"
                    f"{workspace.workspace_id}/tags",
                    headers={"X-Addon-Token": workspace.installation_token()},
                )

            statuses = [(await call(busy)).status_code for _ in range(50)]
            assert statuses == [200] * 50
            assert sandbox.throttled == 0
            refused = await call(busy)
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert sandbox.throttled == 1
            assert (await call(quiet)).status_code == 200  # the limit is per workspace
            clock.now += 0.999
            assert (await call(busy)).status_code == 429
            clock.now += 0.001
            assert (await call(busy)).status_code == 200
        assert sandbox.throttled == 2
        assert sandbox.peak_rate(busy.workspace_id) == 52


# --- faults ------------------------------------------------------------------------------------


async def test_an_injected_status_answers_the_matching_requests_then_clears(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    fault = sandbox.inject(503, times=2, path_contains="/projects", retry_after=3)
    first = await api.get("/projects")
    assert first.status_code == 503
    assert first.headers["retry-after"] == "3"
    assert (await api.get("/tags")).status_code == 200
    assert (await api.get("/projects")).status_code == 503
    assert (await api.get("/projects")).status_code == 200
    assert fault.hits == 2

    sandbox.inject(500, times=None, method="POST")
    assert (await api.post("/tags", json={"name": "x"})).status_code == 500
    assert (await api.post("/tags", json={"name": "y"})).status_code == 500
    assert (await api.get("/tags")).status_code == 200
    sandbox.clear_faults()
    assert (await api.post("/tags", json={"name": "z"})).status_code == 201


async def test_a_dropped_connection_is_a_transport_error(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    sandbox.inject(drop=True, path_contains="/clients")
    with pytest.raises(httpx.TransportError):
        await api.get("/clients")
    assert sandbox.requests[-1].status == 0
    assert (await api.get("/clients")).status_code == 200


async def test_a_latency_fault_delays_and_then_answers_normally(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    fault = sandbox.inject(None, latency=0.01, path_contains="/tags")
    assert (await api.get("/tags")).status_code == 200
    assert fault.hits == 1


async def test_the_control_endpoints_inject_faults_list_requests_and_reset(
    sandbox: Sandbox, api: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=f"{sandbox.url}/_sandbox") as control:
        added = await control.post("/faults", json={"status": 502, "pathContains": "/tags"})
        assert added.status_code == 201
        assert (await control.get("/faults")).json()[0]["status"] == 502
        assert (await api.get("/tags")).status_code == 502
        seen = (await control.get("/requests")).json()
        assert [(r["method"], r["status"]) for r in seen["requests"]] == [("GET", 502)]
        assert (await control.post("/reset")).status_code == 200
        assert (await control.get("/requests")).json() == {"throttled": 0, "requests": []}
        assert (await api.get("/tags")).status_code == 200
        assert (await control.post("/faults", content=b"[1]")).status_code == 400


# --- writes ------------------------------------------------------------------------------------


async def test_created_updated_and_deleted_projects_show_in_the_lists(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    client = (await api.post("/clients", json={"name": "Acme"})).json()
    created = await api.post("/projects", json={"name": "Launch", "clientId": client["id"]})
    assert created.status_code == 201
    project = created.json()
    assert project["clientName"] == "Acme"
    last_page = (await api.get("/projects", params={"page": 3})).json()
    assert last_page[-1]["id"] == project["id"]

    updated = await api.put(f"/projects/{project['id']}", json={"name": "Relaunch"})
    assert updated.json()["name"] == "Relaunch"
    assert (await api.get(f"/projects/{project['id']}")).json()["name"] == "Relaunch"

    active = await api.delete(f"/projects/{project['id']}")
    assert active.status_code == 400  # Clockify deletes archived projects only
    await api.put(f"/projects/{project['id']}", json={"archived": True})
    assert (await api.delete(f"/projects/{project['id']}")).status_code == 200
    assert (await api.get(f"/projects/{project['id']}")).status_code == 404
    ids = {p["id"] for p in sandbox.store.entities(workspace.workspace_id, "projects")}
    assert project["id"] not in ids

    writes = [(r.method, r.route, r.body) for r in sandbox.requests if r.method != "GET"]
    assert writes[0] == (
        "POST",
        f"/api/v1/workspaces/{workspace.workspace_id}/clients",
        {"name": "Acme"},
    )


async def test_tags_and_time_entries_are_created_updated_and_deleted(
    workspace: Workspace, api: httpx.AsyncClient
) -> None:
    tag = (await api.post("/tags", json={"name": "meeting"})).json()
    renamed = await api.put(f"/tags/{tag['id']}", json={"name": "meetings"})
    assert renamed.json()["name"] == "meetings"
    assert (await api.get(f"/tags/{tag['id']}")).json()["name"] == "meetings"

    body = {"start": "2025-03-04T09:00:00Z", "end": "2025-03-04T10:30:00Z", "tagIds": [tag["id"]]}
    created = await api.post("/time-entries", json={**body, "description": "standup"})
    assert created.status_code == 201
    entry = created.json()
    assert entry["userId"] == workspace.owner_id
    assert entry["timeInterval"]["duration"] == "PT1H30M"
    mine = f"/user/{workspace.owner_id}/time-entries"
    assert (await api.get(mine)).json()[0]["id"] == entry["id"]  # newest first

    updated = await api.put(f"/time-entries/{entry['id']}", json={**body, "description": "retro"})
    assert updated.json()["description"] == "retro"
    assert (await api.get(f"/time-entries/{entry['id']}")).json()["description"] == "retro"
    assert (await api.delete(f"/time-entries/{entry['id']}")).status_code == 204
    assert (await api.get(f"/time-entries/{entry['id']}")).status_code == 404
    assert (await api.delete(f"/tags/{tag['id']}")).status_code == 200
    assert (await api.get(f"/tags/{tag['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/clients", {"note": "no name"}),
        ("POST", "/projects", {}),
        ("POST", "/time-entries", {"description": "no start"}),
        ("POST", "/time-entries", {"start": "yesterday"}),
        ("POST", "/webhooks", {"webhookEvent": "NEW_PROJECT"}),
        ("POST", "/tags", [1, 2]),
    ],
)
async def test_a_write_missing_a_required_field_gets_400(
    api: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await api.request(method, path, json=body)
    assert response.status_code == 400
    assert set(response.json()) == {"message", "code"}


async def test_an_update_of_an_unknown_entry_gets_404(api: httpx.AsyncClient) -> None:
    response = await api.put("/time-entries/" + "f" * 24, json={"start": "2025-01-01T00:00:00Z"})
    assert response.status_code == 404


# --- webhooks API ----------------------------------------------------------------------------


async def test_the_webhooks_api_creates_signed_webhooks_and_deletes_them(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    before = (await api.get("/webhooks")).json()["workspaceWebhookCount"]
    created = await api.post(
        "/webhooks",
        json={
            "url": "https://addons.example.com/uw/webhooks/clockify/new-task",
            "webhookEvent": "NEW_TASK",
            "triggerSourceType": "WORKSPACE_ID",
            "triggerSource": [workspace.workspace_id],
        },
    )
    assert created.status_code == 201
    hook = created.json()
    assert HEX_ID.fullmatch(hook["id"])
    verifier = TokenVerifier(
        load_public_keys(sandbox.write_public_key(tmp_path / "key.pem"), variable="KEY"), ADDON_KEY
    )
    claims = verifier.verify(hook["authToken"], TokenKind.WEBHOOK)
    assert claims.workspace_id == workspace.workspace_id
    assert claims.raw["eventType"] == "NEW_TASK"
    listed = (await api.get("/webhooks")).json()
    assert listed["workspaceWebhookCount"] == before + 1
    assert hook["id"] in {w["id"] for w in listed["webhooks"]}

    assert (await api.delete(f"/webhooks/{hook['id']}")).status_code == 200
    assert (await api.get("/webhooks")).json()["workspaceWebhookCount"] == before
    assert (await api.delete(f"/webhooks/{hook['id']}")).status_code == 404


# --- the driver --------------------------------------------------------------------------------


async def test_installed_and_webhook_calls_verify_with_the_sandbox_key(
    sandbox: Sandbox, workspace: Workspace, tmp_path: Path
) -> None:
    recorder = Receiver()
    manifest = {
        "key": ADDON_KEY,
        "lifecycle": [{"type": "INSTALLED", "path": "/lifecycle/installed"}],
        "webhooks": [{"event": "NEW_TIME_ENTRY", "path": "/webhooks/clockify/new-time-entry"}],
    }
    keys = load_public_keys(sandbox.write_public_key(tmp_path / "key.pem"), variable="KEY")
    verifier = TokenVerifier(keys, ADDON_KEY)
    async with serving(recorder, lifespan="off") as app_url:
        assert (await sandbox.install(app_url, manifest, workspace)).status_code == 200
        assert (await sandbox.fire(app_url, workspace, "NEW_TIME_ENTRY")).status_code == 200

    (install_path, install_headers, sent), (hook_path, hook_headers, delivered) = recorder.calls
    body, event = json.loads(sent), json.loads(delivered)
    assert install_path == "/lifecycle/installed"
    claims = verifier.verify(install_headers["x-addon-lifecycle-token"], TokenKind.LIFECYCLE)
    assert claims.workspace_id == body["workspaceId"] == workspace.workspace_id
    installation = verifier.verify(body["authToken"], TokenKind.INSTALLATION)
    assert installation.url_claims() == sandbox.base_urls()
    assert body["apiUrl"] == sandbox.base_urls()["backendUrl"]
    [registered] = body["webhooks"]

    assert hook_path == registered["path"] == "/webhooks/clockify/new-time-entry"
    assert hook_headers["clockify-webhook-event-type"] == "NEW_TIME_ENTRY"
    assert hook_headers["clockify-signature"] == registered["authToken"]
    verifier.verify(hook_headers["clockify-signature"], TokenKind.WEBHOOK)
    # The reference sample, moved into the sandbox workspace.
    assert event["workspaceId"] == workspace.workspace_id
    assert event["description"] == "Webhook Test Description"
    assert "5f11791a4e759e12c40733ba" not in json.dumps(event)


async def test_webhooks_registered_through_the_api_are_delivered_with_their_token(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    recorder = Receiver()
    async with serving(recorder, lifespan="off") as app_url:
        hook = (
            await api.post(
                "/webhooks",
                json={
                    "url": f"{app_url}/hooks/new-client",
                    "webhookEvent": "NEW_CLIENT",
                    "triggerSourceType": "WORKSPACE_ID",
                    "triggerSource": [workspace.workspace_id],
                },
            )
        ).json()
        responses = await sandbox.fire_registered(workspace, "NEW_CLIENT", {"id": "c1"})
    assert [r.status_code for r in responses] == [200]
    [(path, headers, payload)] = recorder.calls
    assert path == "/hooks/new-client"
    assert headers["clockify-signature"] == hook["authToken"]
    assert json.loads(payload) == {"id": "c1"}


async def test_the_universal_webhook_app_accepts_the_sandbox_install_and_webhook(
    sandbox: Sandbox,
    workspace: Workspace,
    make_app: Callable[..., Litestar],
    tmp_path: Path,
) -> None:
    app = make_app(
        ADDON_KEY,
        **sandbox_settings(sandbox, tmp_path),
    )
    async with serving(app) as app_url:
        manifest = await sandbox.fetch_manifest(app_url)
        installed = await sandbox.install(app_url, manifest, workspace)
        assert installed.status_code == 200, installed.text
        event = manifest["webhooks"][0]["event"]
        delivered = await sandbox.fire(app_url, workspace, event)
        assert delivered.is_success, delivered.text
        forged = await sandbox.fire(app_url, sandbox.create_workspace(ADDON_KEY), event)
        assert forged.status_code in (401, 403, 409), forged.text
        updated = await sandbox.update_settings({"eventRetentionDays": 7})
        assert updated.status_code == 200, updated.text


# --- control endpoints -------------------------------------------------------------------------

RECORDED_MANIFEST = {
    "key": ADDON_KEY,
    "lifecycle": [
        {"type": "INSTALLED", "path": "/lifecycle/installed"},
        {"type": "SETTINGS_UPDATED", "path": "/lifecycle/settings"},
    ],
    "webhooks": [{"event": "NEW_TIME_ENTRY", "path": "/webhooks/clockify/new-time-entry"}],
    "settings": {
        "tabs": [
            {
                "id": "general",
                "name": "General",
                "settings": [
                    {"id": "greeting", "name": "Greeting", "type": "TXT", "value": "hello"},
                    {"id": "limit", "name": "Limit", "type": "NUMBER", "value": 5},
                ],
            }
        ]
    },
}


async def test_fire_signs_api_registered_events_and_relays_the_apps_status(
    sandbox: Sandbox, workspace: Workspace, api: httpx.AsyncClient
) -> None:
    recorder = Receiver(status=202)
    async with serving(recorder, lifespan="off") as app_url:
        await sandbox.install(app_url, RECORDED_MANIFEST, workspace)
        hook = (
            await api.post(
                "/webhooks",
                json={
                    "url": f"{app_url}/hooks/new-client",
                    "webhookEvent": "NEW_CLIENT",
                    "triggerSourceType": "WORKSPACE_ID",
                    "triggerSource": [workspace.workspace_id],
                },
            )
        ).json()
        control = f"{sandbox.url}/_sandbox/fire"
        registered = await sandbox.http.post(control, json={"eventType": "NEW_CLIENT"})
        declared = await sandbox.http.post(control, json={"eventType": "NEW_TIME_ENTRY"})
        unknown = await sandbox.http.post(control, json={"eventType": "NEW_TAG"})
        recorder.status = 404
        refused = await sandbox.http.post(control, json={"eventType": "NEW_TIME_ENTRY"})

    assert registered.status_code == 202, registered.text
    assert registered.json()["deliveries"] == [{"status": 202, "body": '{"received": true}'}]
    assert declared.status_code == 202, declared.text
    assert refused.status_code == 404
    assert refused.json()["status"] == 404
    assert unknown.status_code == 404
    assert "NEW_TAG" in unknown.json()["message"]
    assert "NEW_TIME_ENTRY" in unknown.json()["message"]
    assert "NEW_CLIENT" in unknown.json()["message"]
    paths = [path for path, _, _ in recorder.calls]
    assert paths == [
        "/lifecycle/installed",
        "/hooks/new-client",
        "/webhooks/clockify/new-time-entry",
        "/webhooks/clockify/new-time-entry",
    ]
    assert recorder.calls[1][1]["clockify-signature"] == hook["authToken"]
    assert recorder.calls[1][1]["clockify-webhook-event-type"] == "NEW_CLIENT"


async def test_the_settings_control_sends_settings_updated_with_every_setting(
    sandbox: Sandbox, workspace: Workspace, tmp_path: Path
) -> None:
    recorder = Receiver()
    verifier = TokenVerifier(
        load_public_keys(sandbox.write_public_key(tmp_path / "key.pem"), variable="KEY"), ADDON_KEY
    )
    async with serving(recorder, lifespan="off") as app_url:
        await sandbox.install(app_url, RECORDED_MANIFEST, workspace)
        control = f"{sandbox.url}/_sandbox/settings"
        first = await sandbox.http.post(control, json={"greeting": "hi"})
        second = await sandbox.http.post(control, json={"limit": 9})
        unknown = await sandbox.http.post(control, json={"colour": "red"})

    assert first.status_code == 200, first.text
    assert second.status_code == 200, second.text
    assert unknown.status_code == 400
    assert "colour" in unknown.json()["message"]
    assert "greeting, limit" in unknown.json()["message"]
    (_, _, _), (path, headers, first_sent), (_, _, latest_sent) = recorder.calls
    body, latest = json.loads(first_sent), json.loads(latest_sent)
    assert path == "/lifecycle/settings"
    claims = verifier.verify(headers["x-addon-lifecycle-token"], TokenKind.LIFECYCLE)
    assert claims.workspace_id == body["workspaceId"] == workspace.workspace_id
    assert body["settings"] == [
        {"id": "greeting", "name": "Greeting", "value": "hi"},
        {"id": "limit", "name": "Limit", "value": 5},
    ]
    assert latest["settings"] == [
        {"id": "greeting", "name": "Greeting", "value": "hi"},
        {"id": "limit", "name": "Limit", "value": 9},
    ]


def test_the_sandbox_runs_in_a_thread_for_synchronous_callers() -> None:
    with Sandbox.in_thread(sizes=Sizes(projects=3)) as sandbox:
        workspace = sandbox.create_workspace(ADDON_KEY)
        url = f"{sandbox.base_urls()['backendUrl']}/v1/workspaces/{workspace.workspace_id}"
        token = {"X-Addon-Token": workspace.installation_token()}
        with httpx.Client(headers=token) as client:
            assert len(client.get(f"{url}/projects").json()) == 3
        response = sandbox.run_sync(sandbox.http.get(f"{url}/tags", headers=token))
        assert response.status_code == 200
    assert len(sandbox.requests) == 2


# --- the developer demo ------------------------------------------------------------------------


async def test_the_demo_installs_the_app_and_stops_cleanly_on_sigterm(
    tmp_path: Path, reference_dir: Path
) -> None:
    sandbox_port, app_port = free_port(), free_port()
    script = (
        "import sys; from pathlib import Path; from addon_core.sandbox.launcher import run_demo; "
        f"sys.exit(run_demo('api-studio', sandbox_port={sandbox_port}, app_port={app_port}, "
        f"data_dir=Path({str(tmp_path / 'demo')!r})))"
    )
    environment = {**os.environ, REFERENCE_DIR_VARIABLE: str(reference_dir)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=environment,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not lines or "Ctrl-C" not in lines[-1]:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            assert line, "".join(lines)
            lines.append(line.decode())
        output = "".join(lines)
        assert re.search(r"INSTALLED in workspace [0-9a-f]{24}: 200", output), output
        assert re.search(r"webhook \w+ delivered: 2\d\d", output), output
        assert f"http://127.0.0.1:{app_port}/api/operations/getProjects/execute" in output
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_prepare_refuses_a_taken_port_naming_the_option() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(LaunchError, match=rf"port {taken} on 127.0.0.1 is not free .*--port"):
            prepare("api-studio", Path("unused"), {"--sandbox-port": free_port(), "--port": taken})


def test_prepare_holds_the_ports_it_checked(tmp_path: Path) -> None:
    held = prepare("api-studio", tmp_path / "demo", {"--port": 0})
    with held["--port"] as bound:
        port = bound.getsockname()[1]
        with pytest.raises(LaunchError, match=f"port {port}"):
            prepare("api-studio", tmp_path / "demo", {"--port": port})


def test_prepare_refuses_a_data_dir_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(LaunchError, match=r"cannot write to the data directory .*--data-dir"):
        prepare("api-studio", blocker / "demo", {})


def test_prepare_starts_a_fresh_database_and_keeps_the_rest(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    data_dir.mkdir()
    for name in ("api-studio.db", "api-studio.db-wal", "universal-webhook.db", "notes.txt"):
        (data_dir / name).write_text("old")

    assert prepare("api-studio", data_dir, {}) == {}

    assert sorted(path.name for path in data_dir.iterdir()) == ["notes.txt", "universal-webhook.db"]


def test_the_sandbox_command_with_its_app_port_taken_says_so_in_one_line(
    tmp_path: Path, reference_dir: Path
) -> None:
    script = Path(sys.executable).with_name("clockify-addons")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        taken = listener.getsockname()[1]
        options = ["--port", str(taken), "--sandbox-port", str(free_port())]
        result = subprocess.run(  # noqa: S603
            [str(script), "sandbox", "api-studio", *options, "--data-dir", str(tmp_path / "demo")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, REFERENCE_DIR_VARIABLE: str(reference_dir)},
        )
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing was installed into what listens there

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: port {taken} on 127.0.0.1 is not free (Address already in use): stop what "
        "listens there, or pass --port with a free port"
    ]
    assert result.stdout == ""
