"""Clockify's calls to an add-on app: signed lifecycle calls and webhook deliveries, over httpx.

A delivery's default payload is the event's sample from `webhook-samples.json` (in the
reference folder) with the workspace id rewritten, else one built from the sandbox data.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.manifest import Manifest
from addon_core.sandbox.entities import Entity
from addon_core.sandbox.store import SandboxStore
from addon_core.sandbox.workspace import Workspace

LIFECYCLE_HEADER = "X-Addon-Lifecycle-Token"
SIGNATURE_HEADER = "clockify-signature"
EVENT_HEADER = "clockify-webhook-event-type"
SAMPLES_FILE = "webhook-samples.json"

#: Which seeded collection a payload is drawn from, by the event type's subject.
_EVENT_SUBJECTS = (
    ("TIME_ENTRY", "time_entries"),
    ("TIMER", "time_entries"),
    ("PROJECT", "projects"),
    ("CLIENT", "clients"),
    ("TAG", "tags"),
    ("EXPENSE", "expenses"),
    ("INVOICE", "invoices"),
    ("USER_GROUP", "user_groups"),
    ("USER", "users"),
    ("APPROVAL", "approval_requests"),
)

ManifestLike = Manifest | Mapping[str, Any]


def _document(manifest: ManifestLike) -> Mapping[str, Any]:
    return manifest.template if isinstance(manifest, Manifest) else manifest


def manifest_events(manifest: ManifestLike) -> list[str]:
    """Return the webhook events a manifest subscribes to."""
    return [item["event"] for item in _document(manifest).get("webhooks", [])]


async def fetch_manifest(http: httpx.AsyncClient, app_url: str) -> dict[str, Any]:
    """GET the app's runtime manifest, as Clockify reads it at registration."""
    response = await http.get(f"{app_url.rstrip('/')}/manifest")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def send_lifecycle(
    http: httpx.AsyncClient,
    app_url: str,
    manifest: ManifestLike,
    workspace: Workspace,
    lifecycle_type: str,
    body: Mapping[str, Any],
    *,
    token: str | None = None,
) -> httpx.Response:
    """POST a lifecycle call to the path the manifest declares, signed for the workspace.

    `token` replaces the workspace's lifecycle token (tests send expired or forged ones).
    """
    paths = {item["type"]: item["path"] for item in _document(manifest).get("lifecycle", [])}
    if lifecycle_type not in paths:
        raise ValueError(f"the manifest declares no {lifecycle_type} lifecycle path")
    return await http.post(
        app_url.rstrip("/") + paths[lifecycle_type],
        content=json.dumps(body),
        headers={
            "content-type": "application/json",
            LIFECYCLE_HEADER: token if token is not None else workspace.lifecycle_token(),
        },
    )


async def send_installed(
    http: httpx.AsyncClient, app_url: str, manifest: ManifestLike, workspace: Workspace
) -> httpx.Response:
    """Send INSTALLED: the installation token, `apiUrl` and one webhook token per event."""
    body = workspace.installed_body(manifest_events(manifest))
    return await send_lifecycle(http, app_url, manifest, workspace, "INSTALLED", body)


async def deliver(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    event_type: str,
    payload: Any,
    *,
    content_type: str = "application/json",
) -> httpx.Response:
    """POST one webhook delivery with Clockify's headers.

    A `bytes` payload is sent as it is; an empty token sends no signature header.
    """
    headers = {"content-type": content_type, EVENT_HEADER: event_type}
    if token:
        headers[SIGNATURE_HEADER] = token
    content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return await http.post(url, content=content, headers=headers)


async def send_webhook(
    http: httpx.AsyncClient, app_url: str, workspace: Workspace, event_type: str, payload: Any
) -> httpx.Response:
    """Deliver an event to the path the add-on receives it on, with its installed token."""
    url = app_url.rstrip("/") + webhook_path(event_type)
    return await deliver(http, url, workspace.webhook_token(event_type), event_type, payload)


def load_samples(reference_dir: Path | None) -> dict[str, dict[str, Any]]:
    """Read the webhook samples from the reference folder; none when it is absent."""
    path = reference_dir / SAMPLES_FILE if reference_dir else None
    if path is None or not path.is_file():
        return {}
    samples: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return samples


def event_payload(
    event_type: str,
    workspace_id: str,
    samples: Mapping[str, Mapping[str, Any]],
    store: SandboxStore,
) -> dict[str, Any]:
    """Return a plausible payload for the event, in the given workspace."""
    sample = samples.get(event_type)
    if sample is not None:
        original = sample.get("workspaceId")
        payload = copy.deepcopy(dict(sample))
        return _replace(payload, original, workspace_id) if original else payload
    return _payload_from_store(event_type, workspace_id, store)


def _replace(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        return {key: _replace(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace(item, old, new) for item in value]
    return new if value == old else value


def _payload_from_store(event_type: str, workspace_id: str, store: SandboxStore) -> Entity:
    kind = next((kind for subject, kind in _EVENT_SUBJECTS if subject in event_type), None)
    entities = store.entities(workspace_id, kind) if kind and store.has(workspace_id) else []
    if not entities:
        return {"id": store.new_id(), "workspaceId": workspace_id}
    entity = entities[-1]
    payload: Entity = entity.get("approvalRequest", entity)
    payload.setdefault("workspaceId", workspace_id)
    return payload
