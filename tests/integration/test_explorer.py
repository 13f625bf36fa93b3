"""The API explorer: operations listed and described, executed against the sandbox, recorded."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from addon_core.clockify.catalogue import load_catalogue
from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES
from addon_core.clockify.tokens import TokenSigner
from addon_core.explorer.execution import MAX_BODY_BYTES, cap_body
from addon_core.explorer.history import action_id
from addon_core.flows.document import validate_flow
from addon_core.installations.context import context_for
from addon_core.runtime import AddonRuntime
from addon_core.sandbox import Sandbox, Sizes, Workspace
from addon_core.sandbox.loopback import serving
from addon_core.storage.models import ApiCall
from tests.harness import bearer, sandbox_settings

ADDON_KEY = "api-studio"
BOOTSTRAP_READ = re.compile(r"[?&]page=\d+(&.*)?&page-size=\d+|[?&]page-size=\d+(&.*)?&page=\d+")
SIZES = Sizes(
    projects=12, clients=5, tags=6, users=4, time_entries=10, expenses=4, invoices=3, webhooks=2
)


# --- operations (no Clockify needed) -----------------------------------------------------------


@pytest.fixture
async def app_client(
    make_app: Callable[..., Litestar], reference_dir: Path
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = make_app(ADDON_KEY, clockify_openapi_file=reference_dir / "openapi.json")
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
def user(signer: Callable[[str], TokenSigner]) -> Workspace:
    return Workspace(signer(ADDON_KEY))


async def test_operations_page_through_all_170_in_catalogue_order(
    app_client: AsyncTestClient[Litestar], user: Workspace, reference_dir: Path
) -> None:
    catalogue = load_catalogue(reference_dir / "openapi.json")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        response = await app_client.get(
            "/api/operations", params=params, headers=bearer(user.user_token("USER"))
        )
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["operationId"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 170
    assert seen == [operation.operation_id for operation in catalogue]


async def test_operations_filter_by_tag_method_and_text(
    app_client: AsyncTestClient[Litestar], user: Workspace
) -> None:
    headers = bearer(user.user_token("USER"))

    async def listed(**params: Any) -> list[dict[str, Any]]:
        response = await app_client.get(
            "/api/operations", params={"limit": 200, **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    clients = await listed(tag="client")
    assert {item["tag"] for item in clients} == {"Client"}
    assert "getClients" in {item["operationId"] for item in clients}
    gets = await listed(method="get")
    assert gets
    assert {item["method"] for item in gets} == {"GET"}
    assert not any(item["writes"] for item in gets)
    found = await listed(q="TIME-ENTRIES/STATUS")
    assert [item["operationId"] for item in found] == ["getInProgressTimeEntries"]
    [described] = await listed(q="getclients", method="GET")
    assert described == {
        "operationId": "getClients",
        "method": "GET",
        "path": "/v1/workspaces/{workspaceId}/clients",
        "summary": described["summary"],
        "tag": "Client",
        "serverKind": "regular",
        "writes": False,
        "scope": "CLIENT_READ",
        "paginated": True,
        "deprecated": False,
    }
    assert await listed(tag="no such tag") == []
    bad = await app_client.get("/api/operations", params={"method": "FETCH"}, headers=headers)
    assert bad.status_code == 400
    assert "FETCH" in bad.json()["detail"]


async def test_an_operation_is_described_with_parameters_body_and_pagination(
    app_client: AsyncTestClient[Litestar], user: Workspace
) -> None:
    headers = bearer(user.user_token("USER"))
    projects = (await app_client.get("/api/operations/getProjects", headers=headers)).json()
    by_name = {parameter["name"]: parameter for parameter in projects["parameters"]}
    assert by_name["workspaceId"]["in"] == "path"
    assert by_name["workspaceId"]["filledByInstallation"] is True
    assert by_name["workspaceId"]["required"] is False
    assert by_name["sort-column"]["enum"] == [
        "ID",
        "NAME",
        "CLIENT_NAME",
        "DURATION",
        "BUDGET",
        "PROGRESS",
    ]
    assert by_name["page"]["type"] == "integer"
    assert projects["pagination"]["pageParam"] == "page"
    assert projects["pagination"]["sizeParam"] == "page-size"
    assert projects["body"] is None

    update = (await app_client.get("/api/operations/updateTimeEntry", headers=headers)).json()
    assert update["writes"] is True
    assert update["scope"] == "TIME_ENTRY_WRITE"
    assert {p["name"]: p["required"] for p in update["parameters"]} == {
        "workspaceId": False,
        "id": True,
    }
    schema = update["body"]["schema"]
    assert update["body"]["mediaType"] == "application/json"
    root = schema["$ref"].rsplit("/", 1)[-1]
    assert "start" in schema["$defs"][root]["properties"]


async def test_an_unknown_operation_is_404_with_suggestions(
    app_client: AsyncTestClient[Litestar], user: Workspace
) -> None:
    response = await app_client.get(
        "/api/operations/getProject5", headers=bearer(user.user_token("USER"))
    )
    assert response.status_code == 404
    body = response.json()
    assert "getProject5" in body["detail"]
    assert "getProject" in body["extra"]["suggestions"]


async def test_a_missing_openapi_document_is_503_naming_the_fix(
    make_app: Callable[..., Litestar], user: Workspace, tmp_path: Path
) -> None:
    app = make_app(ADDON_KEY, clockify_openapi_file=tmp_path / "absent.json")
    async with AsyncTestClient(app=app) as client:
        response = await client.get("/api/operations", headers=bearer(user.user_token()))
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert detail.startswith("API_STUDIO_CLOCKIFY_OPENAPI_FILE: cannot read")
    assert "unset it to use the catalogue shipped with the package" in detail


@pytest.mark.parametrize("kind", ["none", "lifecycle", "webhook", "installation", "expired"])
async def test_the_explorer_needs_a_valid_user_token(
    app_client: AsyncTestClient[Litestar], user: Workspace, kind: str
) -> None:
    tokens = {
        "lifecycle": user.lifecycle_token(),
        "webhook": user.webhook_token("NEW_PROJECT"),
        "installation": user.installation_token(),
        "expired": user.user_token(expires_in=-300),
    }
    headers = bearer(tokens[kind]) if kind in tokens else {}
    for method, path in [
        ("GET", "/api/operations"),
        ("GET", "/api/operations/getClients"),
        ("POST", "/api/operations/getClients/execute"),
        ("GET", "/api/calls"),
        ("GET", "/api/calls/1"),
        ("GET", "/api/calls/1/action"),
    ]:
        response = await app_client.request(method, path, headers=headers)
        assert response.status_code == 401, (kind, path, response.text)
        assert set(response.json()) >= {"status_code", "detail"}


# --- execute against the sandbox ---------------------------------------------------------------


@dataclass
class Explorer:
    """The API Studio app served over loopback, installed in a sandbox workspace."""

    sandbox: Sandbox
    app: Litestar
    url: str
    http: httpx.AsyncClient
    workspace: Workspace

    @property
    def runtime(self) -> AddonRuntime:
        runtime: AddonRuntime = self.app.state.runtime
        return runtime

    async def execute(
        self,
        operation: str,
        request: Any = None,
        *,
        role: str = "OWNER",
        workspace: Workspace | None = None,
    ) -> httpx.Response:
        token = (workspace or self.workspace).user_token(role)
        return await self.http.post(
            f"/api/operations/{operation}/execute",
            headers=bearer(token),
            json={} if request is None else request,
        )

    async def get(
        self, path: str, *, workspace: Workspace | None = None, **params: Any
    ) -> httpx.Response:
        token = (workspace or self.workspace).user_token("USER")
        return await self.http.get(path, headers=bearer(token), params=params)

    def sent(self, part: str, method: str | None = None) -> list[Any]:
        """The requests the sandbox received whose path (query included) holds `part`."""
        return [
            request
            for request in self.sandbox.requests
            if part in request.path and (method is None or request.method == method)
        ]

    def sent_since(self, before: int) -> list[Any]:
        """The requests after the first `before`, less the install's bootstrap reads.

        The bootstrap pages through lists (`page=N` and `page-size=M`) and may still be
        retrying one under load; no call these tests expect to be held back has that shape.
        """
        return [
            request
            for request in self.sandbox.requests[before:]
            if not (request.method == "GET" and BOOTSTRAP_READ.search(request.path))
        ]

    async def install(self) -> Workspace:
        workspace = self.sandbox.create_workspace(ADDON_KEY)
        manifest = await self.sandbox.fetch_manifest(self.url)
        installed = await self.sandbox.install(self.url, manifest, workspace)
        assert installed.status_code == 200, installed.text
        # Whatever INSTALLED queued (the bootstrap) is done before a test counts requests.
        await self.runtime.jobs.run_until_idle()
        return workspace


pytestmark = pytest.mark.sandbox(seed=11, sizes=SIZES)


@pytest.fixture
async def explorer(
    sandbox: Sandbox, make_app: Callable[..., Litestar], reference_dir: Path, tmp_path: Path
) -> AsyncIterator[Explorer]:
    app = make_app(
        ADDON_KEY,
        **sandbox_settings(sandbox, tmp_path, reference_dir),
        clockify_retry_attempts=2,
        clockify_backoff_seconds=0,
        clockify_backoff_max_seconds=0,
    )
    async with serving(app) as app_url, httpx.AsyncClient(base_url=app_url) as http:
        first = Explorer(sandbox, app, app_url, http, workspace=None)  # type: ignore[arg-type]
        first.workspace = await first.install()
        yield first


async def test_a_user_reads_the_workspace_clients(explorer: Explorer) -> None:
    response = await explorer.execute("getClients", {"params": {"page-size": 37}}, role="USER")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == 200
    assert answer["attempts"] == 1
    assert answer["truncated"] is False
    assert answer["latencyMs"] >= 0
    assert isinstance(answer["callId"], int)
    stored = explorer.sandbox.store.entities(explorer.workspace.workspace_id, "clients")
    assert {c["id"] for c in answer["body"]} == {c["id"] for c in stored}
    [sent] = explorer.sent("/clients?page-size=37")
    assert sent.workspace_id == explorer.workspace.workspace_id


async def test_a_write_needs_owner_or_admin_and_a_user_sends_nothing(explorer: Explorer) -> None:
    request = {"body": {"name": "Explorer tag"}}
    refused = await explorer.execute("createNewTag", request, role="USER")
    assert refused.status_code == 403, refused.text
    assert "OWNER or ADMIN" in refused.json()["detail"]
    assert explorer.sent("/tags", "POST") == []

    created = await explorer.execute("createNewTag", request, role="ADMIN")
    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["status"] == 201
    assert answer["body"]["name"] == "Explorer tag"
    [sent] = explorer.sent("/tags", "POST")
    assert sent.body == {"name": "Explorer tag"}
    tags = explorer.sandbox.store.entities(explorer.workspace.workspace_id, "tags")
    assert answer["body"]["id"] in {tag["id"] for tag in tags}


@pytest.mark.parametrize(
    ("operation", "request_body", "status", "field"),
    [
        ("getProject", {"params": {}}, 422, "params.projectId"),
        ("getProjects", {"params": {"sort-column": "COLOUR"}}, 422, "params.sort-column"),
        ("getProjects", {"params": {"page": "two"}}, 422, "params.page"),
        ("getProjects", {"params": {"colour": "red"}}, 422, "params.colour"),
        ("createNewTag", {"body": {"name": 5}}, 422, "body.name"),
        ("createNewTag", {"body": [1, 2]}, 422, "body"),
        ("createNewTag", {}, 422, "body"),
        ("getClients", {"body": {"name": "x"}}, 422, "body"),
        ("getClients", {"params": [1]}, 422, "params"),
        ("getClients", {"param": {}}, 422, "param"),
        ("getClients", [1], 422, "request"),
    ],
)
async def test_an_invalid_call_names_the_field_and_sends_nothing(
    explorer: Explorer, operation: str, request_body: Any, status: int, field: str
) -> None:
    before = len(explorer.sandbox.requests)
    response = await explorer.execute(operation, request_body)
    assert response.status_code == status, response.text
    errors = response.json()["extra"]["errors"]
    assert field in {error["field"] for error in errors}, errors
    assert all(error["message"] for error in errors)
    assert explorer.sent_since(before) == []


async def test_a_request_that_is_not_json_is_400(explorer: Explorer) -> None:
    response = await explorer.http.post(
        "/api/operations/getClients/execute",
        headers={**bearer(explorer.workspace.user_token()), "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert '{"params"' in response.json()["detail"]


async def test_another_workspace_id_is_refused_and_nothing_reaches_it(explorer: Explorer) -> None:
    other = await explorer.install()
    before = len(explorer.sandbox.requests)
    request = {"params": {"workspaceId": other.workspace_id}}
    response = await explorer.execute("getClients", request)
    assert response.status_code == 422, response.text
    [error] = response.json()["extra"]["errors"]
    assert error["field"] == "params.workspaceId"
    assert "installation" in error["message"]
    assert explorer.sent_since(before) == []
    own = {"params": {"workspaceId": explorer.workspace.workspace_id}}
    assert (await explorer.execute("getClients", own)).json()["status"] == 200


async def test_calls_are_scoped_to_the_token_workspace(explorer: Explorer) -> None:
    mine = (await explorer.execute("getTags")).json()["callId"]
    other = await explorer.install()
    theirs = (await explorer.execute("getTags", workspace=other)).json()
    assert theirs["status"] == 200
    assert {t["id"] for t in theirs["body"]} == {
        t["id"] for t in explorer.sandbox.store.entities(other.workspace_id, "tags")
    }
    listed = (await explorer.get("/api/calls", workspace=other)).json()
    assert [call["id"] for call in listed["items"]] == [theirs["callId"]]
    for path in (f"/api/calls/{mine}", f"/api/calls/{mine}/action"):
        response = await explorer.get(path, workspace=other)
        assert response.status_code == 404, response.text
    assert (await explorer.get(f"/api/calls/{mine}")).status_code == 200


async def test_a_workspace_without_the_add_on_gets_409(explorer: Explorer) -> None:
    stranger = explorer.sandbox.create_workspace(ADDON_KEY)
    before = len(explorer.sandbox.requests)
    response = await explorer.execute("getClients", workspace=stranger)
    assert response.status_code == 409
    assert "not installed in this workspace" in response.json()["detail"]
    assert stranger.workspace_id in response.json()["detail"]
    assert explorer.sent_since(before) == []
    assert (await explorer.get("/api/calls", workspace=stranger)).json() == {
        "items": [],
        "next": None,
    }


async def test_clockify_refusals_are_answered_with_their_status_and_message(
    explorer: Explorer,
) -> None:
    explorer.sandbox.inject(400, times=1, path_contains="/clients")
    refused = await explorer.execute("getClients")
    assert refused.status_code == 200, refused.text
    answer = refused.json()
    assert answer["status"] == 400
    assert answer["body"]["message"]
    missing = (await explorer.execute("getProject", {"params": {"projectId": "f" * 24}})).json()
    assert missing["status"] == 404
    assert missing["body"]["message"]
    detail = (await explorer.get(f"/api/calls/{missing['callId']}")).json()
    assert detail["status"] == 404
    assert "404" in detail["error"]


async def test_an_unavailable_clockify_is_503_and_still_recorded(explorer: Explorer) -> None:
    tag = explorer.sandbox.store.entities(explorer.workspace.workspace_id, "tags")[0]
    explorer.sandbox.inject(503, times=None, path_contains=f"/tags/{tag['id']}")
    response = await explorer.execute("getTag", {"params": {"id": tag["id"]}})
    assert response.status_code == 503, response.text
    body = response.json()
    call = (await explorer.get(f"/api/calls/{body['extra']['callId']}")).json()
    assert call["status"] is None
    assert "getTag" in call["error"]
    assert len(explorer.sent(f"/tags/{tag['id']}")) == 2  # the two attempts the settings allow


async def test_history_is_newest_first_paged_and_free_of_tokens(explorer: Explorer) -> None:
    ids = []
    for operation in ("getClients", "getTags", "getWebhooks", "getClients"):
        answer = (await explorer.execute(operation)).json()
        assert answer["status"] == 200, answer
        ids.append(answer["callId"])
    refused = await explorer.execute("createNewTag", {"body": {"name": "x"}}, role="USER")
    ids.append(refused.json()["extra"]["callId"])

    pages, cursor = [], None
    while True:
        page = (
            await explorer.get("/api/calls", limit=2, **({"cursor": cursor} if cursor else {}))
        ).json()
        pages.append([call["id"] for call in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == [ids[::-1][:2], ids[::-1][2:4], ids[::-1][4:]]
    only = (await explorer.get("/api/calls", operation="getClients")).json()
    assert [call["id"] for call in only["items"]] == [ids[3], ids[0]]
    latest = only["items"][0]
    assert latest["operationId"] == "getClients"
    assert latest["method"] == "GET"
    assert latest["url"].endswith(f"/v1/workspaces/{explorer.workspace.workspace_id}/clients")
    assert latest["at"].endswith("+00:00")
    refusal = (await explorer.get(f"/api/calls/{ids[4]}")).json()
    assert refusal["status"] is None
    assert "OWNER or ADMIN" in refusal["error"]

    # getWebhooks answers each webhook's authToken: masked in the answer and the store.
    webhooks = (await explorer.get(f"/api/calls/{ids[2]}")).json()
    assert webhooks["response"]["body"]["webhooks"]
    assert {hook["authToken"] for hook in webhooks["response"]["body"]["webhooks"]} == {
        "[redacted]"
    }
    context = await context_for(explorer.runtime, explorer.workspace.workspace_id)
    hooks = explorer.sandbox.store.entities(explorer.workspace.workspace_id, "webhooks")
    secrets = [context.token, *(hook["authToken"] for hook in hooks)]
    async with explorer.runtime.sessions() as session:
        rows = (await session.scalars(select(ApiCall))).all()
    stored = json.dumps([[r.url, r.params, r.body, r.response, r.error] for r in rows], default=str)
    answers = json.dumps([(await explorer.get(f"/api/calls/{i}")).json() for i in ids])
    for secret in secrets:
        assert secret not in stored
        assert secret not in answers
    assert "eyJ" not in stored
    assert "eyJ" not in answers


async def test_a_tried_call_becomes_a_flow_action(explorer: Explorer, reference_dir: Path) -> None:
    project = explorer.sandbox.store.entities(explorer.workspace.workspace_id, "projects")[0]
    request = {
        "params": {
            "workspaceId": explorer.workspace.workspace_id,
            "projectId": project["id"],
            "hydrated": True,
        }
    }
    answer = (await explorer.execute("getProject", request)).json()
    assert answer["status"] == 200
    assert answer["body"]["id"] == project["id"]
    action = (await explorer.get(f"/api/calls/{answer['callId']}/action")).json()
    assert action == {
        "id": "get_project",
        "type": "clockify",
        "operation": "getProject",
        "params": {"projectId": project["id"], "hydrated": True},
    }
    tagged = (await explorer.execute("createNewTag", {"body": {"name": "From explorer"}})).json()
    second = (await explorer.get(f"/api/calls/{tagged['callId']}/action")).json()
    assert second["body"] == {"name": "From explorer"}
    assert second["id"] == "create_new_tag"

    flow = {
        "name": "Pasted from the explorer",
        "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRY"]},
        "actions": [action, second],
    }
    document = validate_flow(
        flow,
        catalogue=load_catalogue(reference_dir / "openapi.json"),
        event_types=CLOCKIFY_EVENT_TYPES,
        endpoints=(),
        action_types={"clockify"},
        workspace_id=explorer.workspace.workspace_id,
    )
    assert [a.id for a in document.actions] == ["get_project", "create_new_tag"]


# --- pure helpers ------------------------------------------------------------------------------


def test_a_large_body_is_capped_and_flagged() -> None:
    rows = [{"id": f"{n:024x}", "name": "x" * 1000} for n in range(400)]
    kept, truncated = cap_body(rows)
    assert truncated is True
    assert kept == rows[: len(kept)]
    assert 200 < len(kept) < 400
    assert len(json.dumps(kept, separators=(",", ":"))) <= MAX_BODY_BYTES
    text, truncated = cap_body({"rows": rows})
    assert truncated is True
    assert isinstance(text, str)
    assert len(text.encode()) <= MAX_BODY_BYTES
    assert cap_body({"small": True}) == ({"small": True}, False)


@pytest.mark.parametrize(
    ("operation_id", "expected"),
    [
        ("getProjects", "get_projects"),
        ("createNewTag", "create_new_tag"),
        ("getHTMLReport", "get_html_report"),
        ("filterUsersOfWorkspace", "filter_users_of_workspace"),
        ("2fa", "call_2fa"),
    ],
)
def test_action_ids_are_the_operation_in_snake_case(operation_id: str, expected: str) -> None:
    assert action_id(operation_id) == expected


async def test_writes_are_refused_while_explorer_allow_writes_is_off(explorer: Explorer) -> None:
    workspace = explorer.workspace
    manifest = await explorer.sandbox.fetch_manifest(explorer.url)
    ids = {"workspaceId": workspace.workspace_id, "addonId": workspace.addon_id}
    setting = {"id": "explorerAllowWrites", "name": "Allow writes", "value": False}
    off = await explorer.sandbox.lifecycle(
        explorer.url, manifest, workspace, "SETTINGS_UPDATED", {**ids, "settings": [setting]}
    )
    assert off.status_code == 200, off.text
    request = {"body": {"name": "Explorer tag"}}

    refused = await explorer.execute("createNewTag", request, role="OWNER")

    assert refused.status_code == 403, refused.text
    detail = refused.json()["detail"]
    assert "explorerAllowWrites" in detail
    assert "turn it on" in detail
    assert explorer.sent("/tags", "POST") == []
    # Reads still run; turned back on, the write goes through.
    assert (await explorer.execute("getClients", {}, role="OWNER")).json()["status"] == 200
    setting["value"] = True
    on = await explorer.sandbox.lifecycle(
        explorer.url, manifest, workspace, "SETTINGS_UPDATED", {**ids, "settings": [setting]}
    )
    assert on.status_code == 200, on.text
    created = await explorer.execute("createNewTag", request, role="OWNER")
    assert created.json()["status"] == 201, created.text
