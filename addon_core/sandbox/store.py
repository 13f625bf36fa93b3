"""The sandbox's Clockify data: seeded workspaces, and the writes the API makes to them.

Writes validate the way Clockify's API does, minimally: a missing required field or a
value of the wrong type is a 400 (`BadRequestError`), an unknown id a 404.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES
from addon_core.errors import BadRequestError, NotFoundError
from addon_core.sandbox.entities import Entity, new_id, time_entry
from addon_core.sandbox.seed import Seeder, Sizes

KINDS = (
    "projects",
    "clients",
    "tags",
    "user_groups",
    "users",
    "expense_categories",
    "expenses",
    "invoices",
    "time_entries",
    "policies",
    "approval_requests",
    "webhooks",
)
#: Clockify's cap on webhooks registered through the API (PLATFORM.md, "Webhooks").
MAX_WORKSPACE_WEBHOOKS = 100
#: ... and on webhooks created by one admin.
MAX_USER_WEBHOOKS = 10
TRIGGER_SOURCE_TYPES = frozenset(
    {"PROJECT_ID", "USER_ID", "TAG_ID", "TASK_ID", "WORKSPACE_ID", "ASSIGNMENT_ID", "EXPENSE_ID"}
)
#: updateProject's boolean fields and the project fields they set.
_PROJECT_FLAGS = {"billable": "billable", "archived": "archived", "isPublic": "public"}
_NAMES = {
    "projects": "Project",
    "clients": "Client",
    "tags": "Tag",
    "time_entries": "Time entry",
    "webhooks": "Webhook",
}


@dataclass
class WorkspaceData:
    """One workspace: its own record and its entities by kind, then by id (insertion order)."""

    workspace: Entity
    owner_id: str
    collections: dict[str, dict[str, Entity]] = field(default_factory=dict)


def entity_id(entity: Mapping[str, Any]) -> str:
    """Return an entity's id; an approval request's lives in its `approvalRequest`."""
    if "id" in entity:
        return str(entity["id"])
    return str(entity["approvalRequest"]["id"])


class SandboxStore:
    """Every workspace the sandbox plays, seeded from one seed."""

    def __init__(
        self,
        seed: int = 0,
        sizes: Sizes | None = None,
        *,
        webhooks_per_user: int = MAX_USER_WEBHOOKS,
        webhooks_per_workspace: int = MAX_WORKSPACE_WEBHOOKS,
    ) -> None:
        self.seed = seed
        self.sizes = sizes or Sizes()
        self.webhooks_per_user = webhooks_per_user
        self.webhooks_per_workspace = webhooks_per_workspace
        # Seeded on purpose: the same seed gives the same data; nothing here is a secret.
        self._ids = random.Random(f"{seed}:ids")  # noqa: S311
        self._workspaces: dict[str, WorkspaceData] = {}

    def new_id(self) -> str:
        """Return a fresh id; the sequence is the same for the same seed."""
        return new_id(self._ids)

    def add_workspace(
        self, workspace_id: str, owner_id: str, *, name: str, sign_webhook: Callable[[str], str]
    ) -> WorkspaceData:
        """Seed a workspace (deterministic for the seed and the workspace id)."""
        sizes = self.sizes
        rng = random.Random(f"{self.seed}:{workspace_id}")  # noqa: S311
        seeder = Seeder(rng, workspace_id, owner_id)
        users = seeder.users(sizes.users)
        user_ids = [user["id"] for user in users]
        clients = seeder.clients(sizes.clients)
        projects = seeder.projects(sizes.projects, clients, user_ids)
        tags = seeder.tags(sizes.tags)
        categories = seeder.expense_categories(sizes.expense_categories)
        seeded: dict[str, list[Entity]] = {
            "users": users,
            "clients": clients,
            "projects": projects,
            "tags": tags,
            "user_groups": seeder.user_groups(sizes.user_groups, user_ids),
            "expense_categories": categories,
            "expenses": seeder.expenses(sizes.expenses, categories, projects, user_ids),
            "invoices": seeder.invoices(sizes.invoices, clients),
            "time_entries": seeder.time_entries(
                sizes.time_entries, sizes.in_progress, projects, tags, user_ids
            ),
            "policies": seeder.policies(sizes.policies),
            "approval_requests": seeder.approval_requests(sizes.approval_requests, users),
            "webhooks": seeder.webhooks(sizes.webhooks, sign_webhook),
        }
        data = WorkspaceData(
            workspace=seeder.workspace(name, user_ids),
            owner_id=owner_id,
            collections={kind: {entity_id(e): e for e in seeded[kind]} for kind in KINDS},
        )
        self._workspaces[workspace_id] = data
        return data

    def has(self, workspace_id: str) -> bool:
        return workspace_id in self._workspaces

    def data(self, workspace_id: str) -> WorkspaceData:
        """Return a workspace's data, or raise a 404."""
        data = self._workspaces.get(workspace_id)
        if data is None:
            raise NotFoundError(f"Workspace with id {workspace_id} doesn't exist")
        return data

    def entities(self, workspace_id: str, kind: str) -> list[Entity]:
        """Return a copy of every entity of `kind` in the workspace, in insertion order."""
        return copy.deepcopy(list(self._collection(workspace_id, kind).values()))

    def stored(self, workspace_id: str, kind: str) -> list[Entity]:
        """Return the stored entities of `kind` themselves, not copies: read, never change.

        A list handler pages these without copying: copying all of a large workspace's
        entities for every page made each page cost O(workspace).
        """
        return list(self._collection(workspace_id, kind).values())

    def get(self, workspace_id: str, kind: str, item_id: str) -> Entity:
        """Return one entity (the stored object), or raise a 404."""
        entity = self._collection(workspace_id, kind).get(item_id)
        if entity is None:
            what = _NAMES.get(kind, kind)
            raise NotFoundError(f"{what} with id {item_id} doesn't belong to Workspace")
        return entity

    def remove(self, workspace_id: str, kind: str, item_id: str) -> Entity:
        entity = self.get(workspace_id, kind, item_id)
        del self._collection(workspace_id, kind)[item_id]
        return entity

    def _collection(self, workspace_id: str, kind: str) -> dict[str, Entity]:
        return self.data(workspace_id).collections[kind]

    def _insert(self, workspace_id: str, kind: str, entity: Entity) -> Entity:
        self._collection(workspace_id, kind)[entity_id(entity)] = entity
        return entity

    # --- writes (createClient, createNewProject, updateProject, ...) ------------------------

    def create_client(self, workspace_id: str, body: Any) -> Entity:
        fields = _object(body)
        name = _text(fields, "name", required=True)
        return self._insert(
            workspace_id,
            "clients",
            {
                "id": self.new_id(),
                "name": name,
                "workspaceId": workspace_id,
                "archived": False,
                "address": _text(fields, "address") or "",
                "email": _text(fields, "email") or "",
                "note": _text(fields, "note") or "",
                "ccEmails": [],
                "currencyId": None,
                "currencyCode": "USD",
            },
        )

    def create_project(self, workspace_id: str, body: Any) -> Entity:
        fields = _object(body)
        name = _text(fields, "name", required=True)
        project_id = self.new_id()
        project: Entity = {
            "id": project_id,
            "name": name,
            "workspaceId": workspace_id,
            "clientId": "",
            "clientName": "",
            "color": _text(fields, "color") or "#03a9f4",
            "billable": bool(fields.get("billable", True)),
            "archived": False,
            "public": bool(fields.get("isPublic", False)),
            "template": False,
            "note": _text(fields, "note") or "",
            "duration": "PT0S",
            "estimate": {"estimate": "PT0S", "type": "AUTO"},
            "hourlyRate": None,
            "costRate": None,
            "memberships": [],
        }
        self._set_client(workspace_id, project, _text(fields, "clientId"))
        return self._insert(workspace_id, "projects", project)

    def update_project(self, workspace_id: str, project_id: str, body: Any) -> Entity:
        project = self.get(workspace_id, "projects", project_id)
        fields = _object(body)
        for name in ("name", "color", "note"):
            value = _text(fields, name)
            if value is not None:
                project[name] = value
        for name, target in (
            ("billable", "billable"),
            ("archived", "archived"),
            ("isPublic", "public"),
        ):
            value = _flag(fields, name)
            if value is not None:
                project[target] = value
        if "clientId" in fields:
            self._set_client(workspace_id, project, _text(fields, "clientId"))
        return project

    def delete_project(self, workspace_id: str, project_id: str) -> Entity:
        if not self.get(workspace_id, "projects", project_id)["archived"]:
            # Clockify deletes only archived projects.
            raise BadRequestError("Cannot delete an active project")
        return self.remove(workspace_id, "projects", project_id)

    def _set_client(self, workspace_id: str, project: Entity, client_id: str | None) -> None:
        client = self.get(workspace_id, "clients", client_id) if client_id else None
        project["clientId"] = client["id"] if client else ""
        project["clientName"] = client["name"] if client else ""

    def create_tag(self, workspace_id: str, body: Any) -> Entity:
        name = _text(_object(body), "name", required=True)
        entity = {"id": self.new_id(), "name": name, "workspaceId": workspace_id, "archived": False}
        return self._insert(workspace_id, "tags", entity)

    def update_tag(self, workspace_id: str, tag_id: str, body: Any) -> Entity:
        tag = self.get(workspace_id, "tags", tag_id)
        fields = _object(body)
        name, archived = _text(fields, "name"), _flag(fields, "archived")
        if name is not None:
            tag["name"] = name
        if archived is not None:
            tag["archived"] = archived
        return tag

    def create_time_entry(self, workspace_id: str, user_id: str, body: Any) -> Entity:
        fields = _object(body)
        start, end = _interval(fields)
        self._check_references(workspace_id, fields)
        entry = time_entry(self.new_id(), workspace_id, user_id, fields, start, end)
        return self._insert(workspace_id, "time_entries", entry)

    def update_time_entry(self, workspace_id: str, entry_id: str, body: Any) -> Entity:
        current = self.get(workspace_id, "time_entries", entry_id)
        fields = _object(body)
        start, end = _interval(fields)
        self._check_references(workspace_id, fields)
        # PUT replaces the entry: fields left out are cleared, as Clockify does.
        entry = time_entry(entry_id, workspace_id, current["userId"], fields, start, end)
        return self._insert(workspace_id, "time_entries", entry)

    def _check_references(self, workspace_id: str, fields: Mapping[str, Any]) -> None:
        project_id = _text(fields, "projectId")
        if project_id:
            self.get(workspace_id, "projects", project_id)
        tag_ids = fields.get("tagIds")
        if tag_ids is not None and (
            not isinstance(tag_ids, list) or not all(isinstance(t, str) for t in tag_ids)
        ):
            raise BadRequestError("tagIds must be a list of tag ids")
        for tag_id in tag_ids or ():
            self.get(workspace_id, "tags", tag_id)

    def create_webhook(
        self, workspace_id: str, user_id: str, body: Any, sign: Callable[[str], str]
    ) -> Entity:
        """Register a webhook; `sign(event)` mints its token (createWebhook's `authToken`)."""
        fields = _object(body)
        url = _text(fields, "url", required=True)
        event = _text(fields, "webhookEvent", required=True)
        source_type = _text(fields, "triggerSourceType", required=True)
        sources = fields.get("triggerSource")
        if not url.startswith(("https://", "http://")):
            raise BadRequestError("url must be an absolute http(s) URL")
        if event not in CLOCKIFY_EVENT_TYPES:
            raise BadRequestError(f"webhookEvent {event!r} is not a webhook event type")
        if source_type not in TRIGGER_SOURCE_TYPES:
            raise BadRequestError(
                f"triggerSourceType must be one of {sorted(TRIGGER_SOURCE_TYPES)}"
            )
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise BadRequestError("triggerSource is required: a list of ids")
        # Refused as Clockify refuses: a 400 with its error body (see `clockify_error`).
        limit = self.webhooks_per_workspace
        if len(self._collection(workspace_id, "webhooks")) >= limit:
            raise BadRequestError(f"A workspace can have at most {limit} webhooks")
        hooks = self._collection(workspace_id, "webhooks").values()
        mine = [h for h in hooks if h["userId"] == user_id]
        if len(mine) >= self.webhooks_per_user:
            raise BadRequestError(f"A user can create at most {self.webhooks_per_user} webhooks")
        hook: Entity = {
            "id": self.new_id(),
            "name": _text(fields, "name") or event.lower(),
            "url": url,
            "userId": user_id,
            "workspaceId": workspace_id,
            "webhookEvent": event,
            "triggerSourceType": source_type,
            "triggerSource": list(sources),
            "enabled": True,
            "authToken": sign(event),
        }
        return self._insert(workspace_id, "webhooks", hook)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    return body


def _text(fields: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise BadRequestError(f"Field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise BadRequestError(f"Field '{name}' must be a string")
    return value


def _flag(fields: Mapping[str, Any], name: str) -> bool | None:
    value = fields.get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"Field '{name}' must be true or false")
    return value


def _interval(fields: Mapping[str, Any]) -> tuple[datetime, datetime | None]:
    start = _moment(fields, "start", required=True)
    assert start is not None
    end = _moment(fields, "end")
    if end is not None and end < start:
        raise BadRequestError("Field 'end' must not be before 'start'")
    return start, end


def _moment(fields: Mapping[str, Any], name: str, *, required: bool = False) -> datetime | None:
    text = _text(fields, name, required=required)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        example = "2020-01-01T00:00:00Z"
        raise BadRequestError(f"Field '{name}' must be a date-time such as {example}") from None
    if moment.tzinfo is None:
        raise BadRequestError(f"Field '{name}' must carry a time zone (2020-01-01T00:00:00Z)")
    return moment
