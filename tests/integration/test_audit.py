"""The audit trail: who changed what, when and from which request, shown to OWNER and ADMIN."""

from __future__ import annotations

import json
from typing import Any

from tests.db import count
from tests.harness import SECRET_ACTION, Api, tag_meetings


async def audit(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", "/api/audit", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_flow_changes_are_recorded_with_the_user_and_the_request(uw: Api) -> None:
    response = await uw.client.post(
        "/api/flows",
        content=json.dumps(tag_meetings()),
        headers={**uw.headers("ADMIN"), "X-Request-Id": "req-create-1"},
    )
    created = response.json()
    changed = tag_meetings(name="Tag meetings, renamed", actions=[SECRET_ACTION])
    assert (await uw.call("PUT", f"/api/flows/{created['id']}", changed)).status_code == 200
    await uw.call("POST", f"/api/flows/{created['id']}/rotate-secret")
    await uw.call("DELETE", f"/api/flows/{created['id']}")

    entries = await audit(uw, kind="flow.")
    kinds = [entry["kind"] for entry in entries]
    assert kinds == ["flow.deleted", "flow.secret_rotated", "flow.version", "flow.created"]

    created_entry = entries[-1]
    user_id = uw.workspace.owner_id
    assert created_entry["actor"] == user_id
    assert created_entry["actorRole"] == "ADMIN"
    assert created_entry["requestId"] == "req-create-1"
    assert created_entry["target"] == created["id"]
    assert created_entry["changes"]["after"]["name"] == "Tag meetings"

    version = entries[2]
    assert version["target"] == f"{created['id']}@2"
    assert version["changes"]["before"]["name"] == "Tag meetings"
    assert version["changes"]["after"]["name"] == "Tag meetings, renamed"
    assert "trigger" not in version["changes"]["after"]  # only what changed
    assert "s3cr3t-value" not in json.dumps(entries)


async def test_lifecycle_and_settings_from_clockify_are_recorded(uw: Api) -> None:
    settings = [{"id": "txt-setting", "name": "Txt", "value": "one"}]
    body = {"workspaceId": uw.workspace.workspace_id, "addonId": uw.workspace.addon_id,
            "settings": settings}  # fmt: skip
    answer = await uw.clockify.lifecycle(uw.workspace, "SETTINGS_UPDATED", body)
    assert answer.status_code == 200

    entries = await audit(uw, actor="clockify")
    assert [entry["kind"] for entry in entries] == [
        "lifecycle.settings_updated",
        "lifecycle.installed",
    ]
    assert entries[0]["changes"] == {"before": {"settings": []}, "after": {"settings": settings}}


async def test_a_secret_setting_is_masked_in_the_trail(uw: Api) -> None:
    settings = [
        {"id": "apiToken", "name": "API token", "value": "tok-very-secret"},
        {"id": "team", "name": "Team", "value": "ops"},
    ]
    body = {"workspaceId": uw.workspace.workspace_id, "addonId": uw.workspace.addon_id,
            "settings": settings}  # fmt: skip
    assert (await uw.clockify.lifecycle(uw.workspace, "SETTINGS_UPDATED", body)).status_code == 200

    [entry] = await audit(uw, kind="lifecycle.settings_updated")
    shown = entry["changes"]["after"]["settings"]
    assert "tok-very-secret" not in json.dumps(entry)
    assert shown[1] == {"id": "team", "name": "Team", "value": "ops"}


async def test_endpoint_changes_are_recorded(uw: Api) -> None:
    endpoint = (await uw.call("POST", "/api/endpoints", {"name": "billing"})).json()
    await uw.call("POST", f"/api/endpoints/{endpoint['id']}/rotate-secret")
    await uw.call("DELETE", f"/api/endpoints/{endpoint['id']}")

    entries = await audit(uw, kind="endpoint.")
    assert [entry["kind"] for entry in entries] == [
        "endpoint.deleted",
        "endpoint.rotated",
        "endpoint.created",
    ]
    assert all(entry["target"] == endpoint["id"] for entry in entries)
    assert endpoint["secret"] not in json.dumps(entries)


async def test_filters_and_pages(uw: Api) -> None:
    for index in range(3):
        await uw.create(tag_meetings(name=f"flow {index}"))

    first = (await uw.call("GET", "/api/audit", kind="flow.created", limit=2)).json()
    assert len(first["items"]) == 2
    rest = (
        await uw.call("GET", "/api/audit", kind="flow.created", limit=2, cursor=first["next"])
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next"] is None
    assert await audit(uw, since="2999-01-01T00:00:00Z") == []
    assert len(await audit(uw, until="2999-01-01T00:00:00Z")) >= 4
    bad = await uw.call("GET", "/api/audit", since="yesterday")
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["detail"]


async def test_a_user_cannot_read_the_audit_trail(uw: Api) -> None:
    answer = await uw.call("GET", "/api/audit", role="USER")
    assert answer.status_code == 403


async def test_another_workspace_sees_none_of_it(uw: Api) -> None:
    await uw.create(tag_meetings())
    other = await uw.new_workspace(uw.workspace.signer)
    entries = await audit_of(uw, other)
    assert [entry["kind"] for entry in entries] == ["lifecycle.installed"]


async def audit_of(api: Api, workspace: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", "/api/audit", workspace=workspace)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_uninstall_erases_the_trail(uw: Api) -> None:
    await uw.create(tag_meetings())
    assert await count(uw.database_url, "audit_log") == 2
    body = {"addonId": uw.workspace.addon_id, "workspaceId": uw.workspace.workspace_id,
            "asUser": uw.workspace.owner_id}  # fmt: skip
    answer = await uw.clockify.lifecycle(uw.workspace, "DELETED", body)
    assert answer.status_code == 200
    assert await count(uw.database_url, "audit_log") == 0
