"""Portable flows: export without secrets or workspace ids, import with bound values, gallery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from addon_core.flows.portable import gallery
from tests.db import fetch_all
from tests.harness import SECRET_ACTION, Api, tag_meetings


def errors_of(response: Any) -> dict[str, str]:
    return {item["field"]: item["message"] for item in response.json()["extra"]["errors"]}


async def stored_documents(database_url: str) -> list[dict[str, Any]]:
    rows = await fetch_all(database_url, "SELECT document FROM flows ORDER BY created_at")
    return [r["document"] if isinstance(r["document"], dict) else json.loads(r["document"])
            for r in rows]  # fmt: skip


async def test_an_exported_flow_imports_into_another_workspace(api: Api) -> None:
    created = await api.create(tag_meetings())
    exported = (await api.call("GET", f"/api/flows/{created['id']}/export")).json()

    assert exported["format"] == "clockify-addons/flow"
    assert exported["formatVersion"] == 1
    assert exported["needs"] == []
    assert "id" not in exported["flow"]
    assert api.workspace.workspace_id not in json.dumps(exported)

    other = await api.new_workspace(api.workspace.signer)
    imported = await api.call("POST", "/api/flows/import", exported, workspace=other)

    assert imported.status_code == 201, imported.text
    assert imported.json()["name"] == "Tag meetings"
    assert imported.json()["id"] != created["id"]
    first, second = await stored_documents(api.database_url)
    assert first == second


async def test_secrets_leave_as_needs_and_come_back_only_when_bound(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[SECRET_ACTION]))
    exported = (await uw.call("GET", f"/api/flows/{created['id']}/export", role="USER")).json()

    text = json.dumps(exported)
    assert "s3cr3t-value" not in text
    assert "abc123" not in text
    fields = {need["field"] for need in exported["needs"]}
    assert fields == {"flow.actions[0].url", "flow.actions[0].headers.Authorization"}

    refused = await uw.call("POST", "/api/flows/import", exported)
    assert refused.status_code == 422
    assert set(errors_of(refused)) == fields

    exported["bind"] = {
        "flow.actions[0].url": "https://hooks.example.com/in?api_key=new-key",
        "flow.actions[0].headers.Authorization": "Bearer new-secret",
    }
    imported = await uw.call("POST", "/api/flows/import", exported)
    assert imported.status_code == 201, imported.text
    assert imported.json()["signingSecret"]
    stored = (await stored_documents(uw.database_url))[-1]["actions"][0]
    assert stored["headers"] == {"Authorization": "Bearer new-secret", "X-Team": "ops"}
    assert stored["url"].endswith("api_key=new-key")


async def test_a_custom_trigger_leaves_its_endpoint_behind(uw: Api) -> None:
    endpoint = (await uw.call("POST", "/api/endpoints", {"name": "billing"})).json()
    document = tag_meetings(
        trigger={"source": "custom", "events": ["invoice.paid"], "endpoint": endpoint["id"]},
        conditions={"mode": "all", "rules": []},
        actions=[],
    )
    created = await uw.create(document)
    exported = (await uw.call("GET", f"/api/flows/{created['id']}/export")).json()

    assert exported["flow"]["trigger"]["endpoint"] is None
    assert endpoint["id"] not in json.dumps(exported)
    assert [need["field"] for need in exported["needs"]] == ["flow.trigger.endpoint"]

    exported["bind"] = {"flow.trigger.endpoint": "not-an-endpoint-here"}
    unknown = await uw.call("POST", "/api/flows/import", exported)
    assert unknown.status_code == 422
    assert "flow.trigger.endpoint" in errors_of(unknown)

    exported["bind"] = {"flow.trigger.endpoint": endpoint["id"]}
    assert (await uw.call("POST", "/api/flows/import", exported)).status_code == 201


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "something-else"}, "format"),
        ({"formatVersion": 99}, "formatVersion"),
        ({"flow": None}, "flow"),
        ({"bind": {"flow.actions[7].url": "x"}}, "bind.flow.actions[7].url"),
        ({"bind": {"name": "x"}}, "bind.name"),
    ],
)
async def test_a_bad_import_names_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    created = await api.create(tag_meetings())
    exported = (await api.call("GET", f"/api/flows/{created['id']}/export")).json()
    answer = await api.call("POST", "/api/flows/import", {**exported, **change})

    assert answer.status_code == 422
    assert field in errors_of(answer)


async def test_validation_against_the_target_names_fields_of_the_export(api: Api) -> None:
    created = await api.create(tag_meetings())
    exported = (await api.call("GET", f"/api/flows/{created['id']}/export")).json()
    exported["flow"]["actions"][0]["operation"] = "noSuchOperation"

    answer = await api.call("POST", "/api/flows/import", exported)

    assert answer.status_code == 422
    assert "flow.actions[0].operation" in errors_of(answer)


async def test_only_owners_and_admins_import(api: Api) -> None:
    created = await api.create(tag_meetings())
    exported = (await api.call("GET", f"/api/flows/{created['id']}/export")).json()
    answer = await api.call("POST", "/api/flows/import", exported, role="USER")
    assert answer.status_code == 403


async def test_another_workspace_cannot_export_a_flow(api: Api) -> None:
    created = await api.create(tag_meetings())
    other = await api.new_workspace(api.workspace.signer)
    answer = await api.call("GET", f"/api/flows/{created['id']}/export", workspace=other)
    assert answer.status_code == 404


async def test_the_gallery_offers_what_the_app_can_run(api: Api) -> None:
    listed = (await api.call("GET", "/api/flows/gallery", role="USER")).json()["items"]
    ids = {item["id"] for item in listed}

    assert len(gallery()) >= 5
    http_items = {
        i for i, item in gallery().items() if "http" in json.dumps(item["flow"]["actions"])
    }
    if api.app_name == "universal-webhook":
        assert ids == set(gallery())
    else:
        assert ids == set(gallery()) - http_items
    for item in listed:
        assert item["name"]
        assert item["description"]


BINDINGS = {
    "flow.actions[0].body.tagIds[0]": "5f11849d4e759e12c40733d9",
    "flow.actions[0].url": "https://hooks.example.com/in",
}


@pytest.mark.parametrize("item_id", sorted(gallery()))
async def test_every_gallery_flow_imports(uw: Api, item_id: str) -> None:
    needs = [need["field"] for need in gallery()[item_id]["needs"]]
    bind = {field: BINDINGS[field] for field in needs}

    answer = await uw.call("POST", f"/api/flows/gallery/{item_id}/import", {"bind": bind})

    assert answer.status_code == 201, answer.text
    assert answer.json()["name"] == gallery()[item_id]["flow"]["name"]
    if needs:
        missing = await uw.call("POST", f"/api/flows/gallery/{item_id}/import")
        assert missing.status_code == 422
        assert set(errors_of(missing)) == set(needs)


async def test_an_unknown_gallery_flow_is_a_404(api: Api) -> None:
    answer = await api.call("POST", "/api/flows/gallery/no-such-flow/import")
    assert answer.status_code == 404
    assert "/api/flows/gallery" in answer.json()["detail"]
