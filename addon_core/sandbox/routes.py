"""The Clockify API operations the sandbox serves, at the paths of Clockify's OpenAPI document.

Paths are relative to the sandbox URL: `backendUrl` is `{url}/api`, so an operation's
OpenAPI path follows it (`/api/v1/workspaces/{workspaceId}/projects`). Lists page with
`page` (1-based) and `page-size`; a page past the end is empty.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from addon_core.clockify.tokens import TokenSigner
from addon_core.errors import AddonError, BadRequestError
from addon_core.sandbox.entities import Entity
from addon_core.sandbox.gate import ERROR_CODES
from addon_core.sandbox.store import SandboxStore

WORKSPACE_PATH = "/api/v1/workspaces/{workspace_id:str}"
DEFAULT_PAGE_SIZE = 50


def provide_store(state: State) -> SandboxStore:
    store: SandboxStore = state.store
    return store


def provide_signing_key(state: State) -> Any:
    return state.signing_key


#: How handlers ask for the store and the key webhook tokens are signed with.
Store = NamedDependency[SandboxStore]
SigningKey = NamedDependency[Any]


def clockify_error(status: int, message: str) -> Response[dict[str, Any]]:
    """Answer with Clockify's error body, `{"message": ..., "code": ...}`."""
    body = {"message": message, "code": ERROR_CODES.get(status, status)}
    return Response(body, status_code=status)


def handle_addon_error(_: Request[Any, Any, Any], exc: AddonError) -> Response[dict[str, Any]]:
    return clockify_error(exc.status_code, exc.detail)


def handle_http_exception(
    _: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]]:
    return clockify_error(exc.status_code, exc.detail)


# --- lists -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListOperation:
    """One list operation: where it is served, what it lists, how its page is wrapped."""

    operation_id: str
    path: str
    kind: str
    default_size: int = DEFAULT_PAGE_SIZE
    max_size: int | None = None
    wrap: Callable[[list[Entity], int], Any] | None = None


LIST_OPERATIONS = (
    ListOperation("getClients", "/clients", "clients"),
    ListOperation("getProjects", "/projects", "projects"),
    ListOperation("getTags", "/tags", "tags"),
    ListOperation("getUserGroups", "/user-groups", "user_groups"),
    ListOperation("getUsersOfWorkspace", "/users", "users"),
    ListOperation("getApprovalRequests", "/approval-requests", "approval_requests"),
    ListOperation(
        "getExpenses",
        "/expenses",
        "expenses",
        wrap=lambda page, total: {
            "expenses": {"expenses": page, "count": total},
            "dailyTotals": [],
            "weeklyTotals": [],
        },
    ),
    ListOperation(
        "getCategories",
        "/expenses/categories",
        "expense_categories",
        wrap=lambda page, total: {"categories": page, "count": total},
    ),
    ListOperation(
        "getInvoices",
        "/invoices",
        "invoices",
        wrap=lambda page, total: {"invoices": page, "total": total},
    ),
    # The document's own default page-size for this one is 10, its maximum 1000.
    ListOperation(
        "getInProgressTimeEntries",
        "/time-entries/status/in-progress",
        "time_entries",
        default_size=10,
        max_size=1000,
    ),
    ListOperation("findPoliciesForWorkspace", "/time-off/policies", "policies", max_size=200),
)


def paginate(
    items: list[Entity], query: Mapping[str, str], default_size: int, max_size: int | None
) -> list[Entity]:
    """Return the requested page of `items` (1-based `page`, `page-size`)."""
    page = _positive(query, "page", 1)
    size = _positive(query, "page-size", default_size)
    if max_size is not None and size > max_size:
        raise BadRequestError(f"page-size must be at most {max_size}")
    return items[(page - 1) * size : page * size]


def _positive(query: Mapping[str, str], name: str, default: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number") from None
    if value < 1:
        raise BadRequestError(f"{name} must be at least 1")
    return value


def _matches(entity: Entity, query: Mapping[str, str]) -> bool:
    """Apply the `name` (contains, any case) and `archived` filters the lists share."""
    name = query.get("name")
    if name and "name" in entity and name.lower() not in str(entity["name"]).lower():
        return False
    archived = query.get("archived")
    if archived in ("true", "false") and "archived" in entity:
        return bool(entity["archived"]) == (archived == "true")
    return True


def _list_handler(operation: ListOperation) -> HTTPRouteHandler:
    async def list_entities(
        workspace_id: FromPath[str], request: Request[Any, Any, Any], store: Store
    ) -> Any:
        query = request.query_params
        items = store.stored(workspace_id, operation.kind)
        if "name" in query or "archived" in query:  # a scan per page only when filtered
            items = [e for e in items if _matches(e, query)]
        if operation.operation_id == "getInProgressTimeEntries":
            items = [e for e in items if e["timeInterval"]["end"] is None]
        # The stored entities themselves: the response encodes them at once, before any
        # other request runs, and copying a page cost more than serving it.
        page = paginate(items, query, operation.default_size, operation.max_size)
        return operation.wrap(page, len(items)) if operation.wrap else page

    return get(operation.path, name=operation.operation_id)(list_entities)


@get("/user/{user_id:str}/time-entries", name="getTimeEntries")
async def get_time_entries(
    workspace_id: FromPath[str],
    user_id: FromPath[str],
    request: Request[Any, Any, Any],
    store: Store,
) -> list[Entity]:
    query = request.query_params
    entries = [e for e in store.entities(workspace_id, "time_entries") if e["userId"] == user_id]
    if query.get("in-progress") in ("true", "false"):
        running = query["in-progress"] == "true"
        entries = [e for e in entries if (e["timeInterval"]["end"] is None) == running]
    entries.sort(key=lambda e: e["timeInterval"]["start"], reverse=True)  # newest first
    return paginate(entries, query, DEFAULT_PAGE_SIZE, None)


# --- single entities -------------------------------------------------------------------------


async def read_json(request: Request[Any, Any, Any]) -> Any:
    """Return the request's JSON body (None when empty), or raise a 400."""
    raw = await request.body()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise BadRequestError("The request body is not valid JSON") from None


def claims_of(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The verified `X-Addon-Token` claims the gate left in the request state."""
    claims: dict[str, Any] = request.scope["state"]["claims"]
    return claims


@get("/", name="getWorkspaceOfUser")
async def get_workspace(workspace_id: FromPath[str], store: Store) -> Entity:
    return store.data(workspace_id).workspace


@post("/clients", name="createClient")
async def create_client(
    workspace_id: FromPath[str], request: Request[Any, Any, Any], store: Store
) -> Entity:
    return store.create_client(workspace_id, await read_json(request))


@post("/projects", name="createNewProject")
async def create_project(
    workspace_id: FromPath[str], request: Request[Any, Any, Any], store: Store
) -> Entity:
    return store.create_project(workspace_id, await read_json(request))


@get("/projects/{project_id:str}", name="getProject")
async def get_project(
    workspace_id: FromPath[str], project_id: FromPath[str], store: Store
) -> Entity:
    return store.get(workspace_id, "projects", project_id)


@put("/projects/{project_id:str}", name="updateProject")
async def update_project(
    workspace_id: FromPath[str],
    project_id: FromPath[str],
    request: Request[Any, Any, Any],
    store: Store,
) -> Entity:
    return store.update_project(workspace_id, project_id, await read_json(request))


@delete("/projects/{project_id:str}", name="deleteProject", status_code=200)
async def delete_project(
    workspace_id: FromPath[str], project_id: FromPath[str], store: Store
) -> Entity:
    return store.delete_project(workspace_id, project_id)


@post("/tags", name="createNewTag")
async def create_tag(
    workspace_id: FromPath[str], request: Request[Any, Any, Any], store: Store
) -> Entity:
    return store.create_tag(workspace_id, await read_json(request))


@get("/tags/{tag_id:str}", name="getTag")
async def get_tag(workspace_id: FromPath[str], tag_id: FromPath[str], store: Store) -> Entity:
    return store.get(workspace_id, "tags", tag_id)


@put("/tags/{tag_id:str}", name="updateTag")
async def update_tag(
    workspace_id: FromPath[str],
    tag_id: FromPath[str],
    request: Request[Any, Any, Any],
    store: Store,
) -> Entity:
    return store.update_tag(workspace_id, tag_id, await read_json(request))


@delete("/tags/{tag_id:str}", name="deleteTag", status_code=200)
async def delete_tag(workspace_id: FromPath[str], tag_id: FromPath[str], store: Store) -> Entity:
    return store.remove(workspace_id, "tags", tag_id)


@post("/time-entries", name="createTimeEntry")
async def create_time_entry(
    workspace_id: FromPath[str], request: Request[Any, Any, Any], store: Store
) -> Entity:
    user_id = claims_of(request).get("user") or store.data(workspace_id).owner_id
    return store.create_time_entry(workspace_id, str(user_id), await read_json(request))


@get("/time-entries/{entry_id:str}", name="getTimeEntry")
async def get_time_entry(
    workspace_id: FromPath[str], entry_id: FromPath[str], store: Store
) -> Entity:
    return store.get(workspace_id, "time_entries", entry_id)


@put("/time-entries/{entry_id:str}", name="updateTimeEntry")
async def update_time_entry(
    workspace_id: FromPath[str],
    entry_id: FromPath[str],
    request: Request[Any, Any, Any],
    store: Store,
) -> Entity:
    return store.update_time_entry(workspace_id, entry_id, await read_json(request))


@delete("/time-entries/{entry_id:str}", name="deleteTimeEntry")
async def delete_time_entry(
    workspace_id: FromPath[str], entry_id: FromPath[str], store: Store
) -> None:
    store.remove(workspace_id, "time_entries", entry_id)


@get("/webhooks", name="getWebhooks")
async def get_webhooks(workspace_id: FromPath[str], store: Store) -> dict[str, Any]:
    hooks = store.entities(workspace_id, "webhooks")
    return {"webhooks": hooks, "workspaceWebhookCount": len(hooks)}


@post("/webhooks", name="createWebhook")
async def create_webhook(
    workspace_id: FromPath[str],
    request: Request[Any, Any, Any],
    store: Store,
    signing_key: SigningKey,
) -> Entity:
    claims = claims_of(request)
    signer = TokenSigner(signing_key, str(claims["sub"]))
    addon_id = str(claims.get("addonId") or "")

    def sign(event: str) -> str:
        return signer.token(workspace_id, addon_id, eventType=event)

    user_id = str(claims.get("user") or store.data(workspace_id).owner_id)
    return store.create_webhook(workspace_id, user_id, await read_json(request), sign)


@delete("/webhooks/{webhook_id:str}", name="deleteWebhook", status_code=200)
async def delete_webhook(
    workspace_id: FromPath[str], webhook_id: FromPath[str], store: Store
) -> Entity:
    return store.remove(workspace_id, "webhooks", webhook_id)


def api_router() -> Router:
    """Every served operation, under `/api/v1/workspaces/{workspaceId}`."""
    handlers: list[Any] = [
        *(_list_handler(operation) for operation in LIST_OPERATIONS),
        get_time_entries,
        get_workspace,
        create_client,
        create_project,
        get_project,
        update_project,
        delete_project,
        create_tag,
        get_tag,
        update_tag,
        delete_tag,
        create_time_entry,
        get_time_entry,
        update_time_entry,
        delete_time_entry,
        get_webhooks,
        create_webhook,
        delete_webhook,
    ]
    return Router(
        WORKSPACE_PATH,
        route_handlers=handlers,
        dependencies={
            "store": Provide(provide_store, sync_to_thread=False),
            "signing_key": Provide(provide_signing_key, sync_to_thread=False),
        },
    )
