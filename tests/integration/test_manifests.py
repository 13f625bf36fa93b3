"""Both apps' manifests, as served: valid for Clockify, and every declared path is answered."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.manifest import schema_path, validate_against_schema
from addon_core.clockify.tokens import TokenSigner
from tests.fake_clockify import Workspace

LIFECYCLE_TYPES = {"INSTALLED", "STATUS_CHANGED", "SETTINGS_UPDATED", "DELETED"}


@pytest.fixture
async def app_client(
    app_name: str, make_app: Callable[..., Litestar]
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Either app (parametrised by `app_name`), running."""
    async with AsyncTestClient(app=make_app(app_name)) as client:
        yield client


@pytest.fixture
async def manifest(app_client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    response = await app_client.get("/manifest")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def load_schema(reference_dir: Path, version: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_path(reference_dir, version).read_text())
    return schema


async def test_manifest_is_valid_against_clockify_schema(
    manifest: dict[str, Any], reference_dir: Path
) -> None:
    schema = load_schema(reference_dir, manifest["schemaVersion"])

    assert validate_against_schema(manifest, schema) == []


async def test_manifest_uses_a_current_schema_version(manifest: dict[str, Any]) -> None:
    assert manifest["schemaVersion"] in {"1.5", "1.6"}


async def test_manifest_has_no_schema_key(manifest: dict[str, Any]) -> None:
    assert "$schema" not in manifest


async def test_manifest_declares_every_lifecycle_type_once(manifest: dict[str, Any]) -> None:
    types = [item["type"] for item in manifest["lifecycle"]]

    assert sorted(types) == sorted(LIFECYCLE_TYPES)


async def test_manifest_webhooks_fit_clockify_limit_each_event_on_its_own_path(
    manifest: dict[str, Any],
) -> None:
    webhooks = manifest["webhooks"]
    events = [item["event"] for item in webhooks]
    paths = [item["path"] for item in webhooks]

    assert 0 < len(webhooks) <= 10
    assert len(set(events)) == len(events)
    assert len(set(paths)) == len(paths)
    assert all(item["path"] == webhook_path(item["event"]) for item in webhooks)


async def test_every_declared_lifecycle_path_requires_a_token(
    manifest: dict[str, Any], app_client: AsyncTestClient[Litestar]
) -> None:
    statuses = {}
    for item in manifest["lifecycle"]:
        response = await app_client.post(
            item["path"], json={"workspaceId": "w1"}, headers={"content-type": "application/json"}
        )
        statuses[item["path"]] = response.status_code

    assert set(statuses.values()) == {401}, statuses


async def test_every_declared_webhook_path_requires_a_signature(
    manifest: dict[str, Any], app_client: AsyncTestClient[Litestar]
) -> None:
    statuses = {}
    for item in manifest["webhooks"]:
        response = await app_client.post(
            item["path"],
            json={"workspaceId": "w1"},
            headers={"clockify-webhook-event-type": item["event"]},
        )
        statuses[item["path"]] = response.status_code

    assert set(statuses.values()) == {401}, statuses


async def test_sidebar_component_serves_html(
    manifest: dict[str, Any],
    app_client: AsyncTestClient[Litestar],
    signer: Callable[[str], TokenSigner],
) -> None:
    sidebars = [c for c in manifest.get("components", []) if c["type"] == "sidebar"]
    assert len(sidebars) == 1
    token = Workspace(signer(manifest["key"])).user_token()

    response = await app_client.get(sidebars[0]["path"], params={"auth_token": token})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    unsigned = await app_client.get(sidebars[0]["path"])
    assert unsigned.status_code == 401  # opened outside Clockify: an HTML page saying so
    assert unsigned.headers["content-type"].startswith("text/html")


async def test_schema_validation_reports_a_missing_subscription_plan(
    manifest: dict[str, Any], reference_dir: Path
) -> None:
    schema = load_schema(reference_dir, manifest["schemaVersion"])
    broken = {k: v for k, v in manifest.items() if k != "minimalSubscriptionPlan"}

    errors = validate_against_schema(broken, schema)

    assert len(errors) == 1
    assert "minimalSubscriptionPlan" in errors[0]


async def test_schema_validation_reports_an_unknown_webhook_event(
    manifest: dict[str, Any], reference_dir: Path
) -> None:
    schema = load_schema(reference_dir, manifest["schemaVersion"])
    broken = {**manifest, "webhooks": [{"event": "NOT_AN_EVENT", "path": "/webhooks/x"}]}

    errors = validate_against_schema(broken, schema)

    assert errors
    assert all(error.startswith("webhooks/0") for error in errors), errors
