"""The four lifecycle calls through the whole app: what each stores, refuses and ignores."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.tokens import TokenSigner
from addon_core.storage.encryption import KeyRing, decode_key
from addon_core.storage.vault import INSTALLATION_PURPOSE, token_context
from tests.db import count, fetch_all
from tests.fake_clockify import Clockify, Request, Workspace, object_id, post_concurrently
from tests.harness import assert_refused

ADDON_KEY = "universal-webhook"
LIFECYCLE_PATHS = {
    "INSTALLED": "/lifecycle/installed",
    "STATUS_CHANGED": "/lifecycle/status-changed",
    "SETTINGS_UPDATED": "/lifecycle/settings-updated",
    "DELETED": "/lifecycle/deleted",
}

#: The SETTINGS_UPDATED example of the marketplace docs ("Lifecycle", "Settings updated").
DOCUMENTED_SETTINGS = [
    {"id": "txt-setting", "name": "Txt setting", "value": "Some text"},
    {"id": "link-setting", "name": "Link setting", "value": "https://clockify.me"},
    {"id": "number-setting", "name": "Number setting", "value": 5},
    {"id": "checkbox-setting", "name": "Checkbox setting", "value": True},
    {"id": "dropdown-single-setting", "name": "Dropdown single setting", "value": "option 1"},
    {
        "id": "dropdown-multiple-setting",
        "name": "Dropdown multiple setting",
        "value": ["option 1", "option 2"],
    },
]


# --- helpers -------------------------------------------------------------------------------


def _json(value: Any) -> Any:
    """A JSON column as read through a raw SELECT: text on some drivers, decoded on others."""
    return json.loads(value) if isinstance(value, str) else value


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _installations(database_url: str, workspace: Workspace) -> list[dict[str, Any]]:
    return await fetch_all(
        database_url,
        "SELECT * FROM installations WHERE workspace_id = :w",
        w=workspace.workspace_id,
    )


async def _installation(database_url: str, workspace: Workspace) -> dict[str, Any]:
    rows = await _installations(database_url, workspace)
    assert len(rows) == 1, rows
    return rows[0]


async def _registrations(database_url: str, workspace: Workspace) -> set[tuple[str, str, bytes]]:
    rows = await fetch_all(
        database_url,
        "SELECT path, event_type, token_digest FROM webhook_registrations WHERE workspace_id = :w",
        w=workspace.workspace_id,
    )
    return {(r["path"], r["event_type"], bytes(r["token_digest"])) for r in rows}


async def _events(database_url: str, workspace: Workspace) -> list[dict[str, Any]]:
    return await fetch_all(
        database_url,
        "SELECT * FROM events WHERE workspace_id = :w ORDER BY id",
        w=workspace.workspace_id,
    )


async def _nothing_stored(database_url: str) -> None:
    for table in ("installations", "webhook_registrations", "lifecycle_audit", "events"):
        assert await count(database_url, table) == 0, f"{table} has rows"


def _time_entry(workspace: Workspace, entry_id: str = "te1") -> dict[str, Any]:
    return {"id": entry_id, "workspaceId": workspace.workspace_id, "description": "meeting"}


def _deleted_body(workspace: Workspace) -> dict[str, Any]:
    return {
        "addonId": workspace.addon_id,
        "workspaceId": workspace.workspace_id,
        "asUser": workspace.owner_id,
    }


def _status_body(workspace: Workspace, status: str) -> dict[str, Any]:
    return {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id, "status": status}


def _settings_body(workspace: Workspace, settings: Any) -> dict[str, Any]:
    return {
        "workspaceId": workspace.workspace_id,
        "addonId": workspace.addon_id,
        "settings": settings,
    }


def _reinstalled(workspace: Workspace, signer: Callable[[str], TokenSigner]) -> Workspace:
    """The same workspace installing the add-on again: Clockify gives it a new addonId."""
    return Workspace(signer(ADDON_KEY), workspace_id=workspace.workspace_id, addon_id=object_id())


def _expected_registrations(workspace: Workspace, events: list[str]) -> set[tuple[str, str, bytes]]:
    return {(webhook_path(e), e, _digest(workspace.webhook_token(e))) for e in events}


def _webhook_request(workspace: Workspace, payload: dict[str, Any]) -> Request:
    headers = {
        "content-type": "application/json",
        "clockify-webhook-event-type": "NEW_TIME_ENTRY",
        "clockify-signature": workspace.webhook_token("NEW_TIME_ENTRY"),
    }
    return webhook_path("NEW_TIME_ENTRY"), json.dumps(payload).encode(), headers


def _lifecycle_request(workspace: Workspace, lifecycle_type: str, body: dict[str, Any]) -> Request:
    headers = {
        "content-type": "application/json",
        "x-addon-lifecycle-token": workspace.lifecycle_token(),
    }
    return LIFECYCLE_PATHS[lifecycle_type], json.dumps(body).encode(), headers


# --- INSTALLED -----------------------------------------------------------------------------


async def test_installed_stores_installation_with_encrypted_token_and_base_urls(
    clockify: Clockify, workspace: Workspace, database_url: str, encryption_key: str
) -> None:
    body = workspace.installed_body(clockify.events)

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert row["addon_key"] == ADDON_KEY
    assert row["status"] == "ACTIVE"
    assert row["addon_id"] == workspace.addon_id
    assert row["as_user"] == workspace.owner_id
    assert row["addon_user_id"] == body["addonUserId"]
    assert row["deleted_at"] is None
    stored_token = row["auth_token"]
    assert stored_token
    assert stored_token != body["authToken"]
    assert body["authToken"] not in stored_token
    ring = KeyRing([decode_key(encryption_key)])
    context = token_context(ADDON_KEY, workspace.workspace_id, INSTALLATION_PURPOSE)
    assert ring.decrypt(stored_token, context) == body["authToken"]
    api_urls = _json(row["api_urls"])
    assert api_urls["apiUrl"] == "https://api.clockify.me/api"
    assert api_urls["backendUrl"] == workspace.base_urls["backendUrl"]
    assert api_urls["reportsUrl"] == workspace.base_urls["reportsUrl"]


async def test_installed_stores_one_webhook_registration_per_webhooks_entry(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    body = workspace.installed_body(clockify.events)

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    assert len(body["webhooks"]) == len(clockify.events) == 10
    assert await _registrations(database_url, workspace) == _expected_registrations(
        workspace, clockify.events
    )
    rows = await fetch_all(
        database_url,
        "SELECT auth_token FROM webhook_registrations WHERE workspace_id = :w",
        w=workspace.workspace_id,
    )
    plaintexts = set(workspace.webhook_tokens.values())
    for row in rows:
        assert row["auth_token"]
        assert not any(token in row["auth_token"] for token in plaintexts)


async def test_installed_accepts_webhook_paths_given_as_full_urls(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    body = workspace.installed_body(clockify.events, full_url_base="https://addons.example.com/uw")
    assert body["webhooks"][0]["path"].startswith("https://addons.example.com/uw/webhooks/")

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    assert await _registrations(database_url, workspace) == _expected_registrations(
        workspace, clockify.events
    )
    delivery = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert delivery.status_code == 200, delivery.text
    assert delivery.json() == {"status": "accepted"}
    assert len(await _events(database_url, workspace)) == 1


def _evil_api_url(workspace: Workspace, body: dict[str, Any]) -> None:
    body["apiUrl"] = "https://evil.example.com/api"


def _evil_backend_url(workspace: Workspace, body: dict[str, Any]) -> None:
    workspace.base_urls["backendUrl"] = "https://evil.example.com/api"
    body["authToken"] = workspace.installation_token()


def _evil_reports_url(workspace: Workspace, body: dict[str, Any]) -> None:
    workspace.base_urls["reportsUrl"] = "https://reports.evil.example.com"
    body["authToken"] = workspace.installation_token()


def _lookalike_api_url(workspace: Workspace, body: dict[str, Any]) -> None:
    body["apiUrl"] = "https://api.clockify.me.evil.example.com/api"


def _http_api_url(workspace: Workspace, body: dict[str, Any]) -> None:
    body["apiUrl"] = "http://api.clockify.me/api"


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        pytest.param(_evil_api_url, "apiurl", id="apiUrl-outside-allowlist"),
        pytest.param(_evil_backend_url, "backendurl", id="backendUrl-claim-outside-allowlist"),
        pytest.param(_evil_reports_url, "reportsurl", id="reportsUrl-claim-outside-allowlist"),
        pytest.param(_lookalike_api_url, "apiurl", id="apiUrl-lookalike-host"),
        pytest.param(_http_api_url, "http", id="apiUrl-plain-http"),
    ],
)
async def test_installed_with_base_url_outside_allowlist_is_refused_and_nothing_stored(
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    tamper: Callable[[Workspace, dict[str, Any]], None],
    named: str,
) -> None:
    body = workspace.installed_body(clockify.events)
    tamper(workspace, body)

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert named in assert_refused(response, 403)["detail"].lower()
    await _nothing_stored(database_url)


async def test_installation_token_signed_for_another_workspace_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str, fresh_workspace: Any
) -> None:
    other = fresh_workspace()
    body = workspace.installed_body(clockify.events)
    body["authToken"] = other.installation_token()

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert_refused(response, 403, "another workspace")
    await _nothing_stored(database_url)


async def test_installed_webhook_token_signed_for_another_workspace_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str, fresh_workspace: Any
) -> None:
    other = fresh_workspace()
    body = workspace.installed_body(clockify.events)
    body["webhooks"][0]["authToken"] = other.webhook_token(clockify.events[0])

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert_refused(response, 403, "another workspace")
    await _nothing_stored(database_url)


# --- SETTINGS_UPDATED ----------------------------------------------------------------------


async def test_settings_updated_with_documented_list_is_stored_as_list(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.lifecycle(
        workspace, "SETTINGS_UPDATED", _settings_body(workspace, DOCUMENTED_SETTINGS)
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert _json(row["settings"]) == DOCUMENTED_SETTINGS


async def test_settings_updated_with_an_object_is_refused_with_422(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    as_object = {s["id"]: s["value"] for s in DOCUMENTED_SETTINGS}

    response = await clockify.lifecycle(
        workspace, "SETTINGS_UPDATED", _settings_body(workspace, as_object)
    )

    assert_refused(response, 422, "settings must be a list")
    row = await _installation(database_url, workspace)
    assert _json(row["settings"]) == []


async def test_settings_updated_for_a_workspace_never_installed_is_a_conflict(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    response = await clockify.lifecycle(
        workspace, "SETTINGS_UPDATED", _settings_body(workspace, DOCUMENTED_SETTINGS)
    )

    assert_refused(response, 409, "no installation")
    await _nothing_stored(database_url)


# --- STATUS_CHANGED ------------------------------------------------------------------------


async def test_inactive_workspace_refuses_webhooks_until_activated_again(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    inactive = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "INACTIVE")
    )
    assert inactive.status_code == 200, inactive.text
    assert inactive.json()["status"] == "applied"
    assert (await _installation(database_url, workspace))["status"] == "INACTIVE"

    refused = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert_refused(refused, 409, "inactive")
    assert await _events(database_url, workspace) == []

    active = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "ACTIVE")
    )
    assert active.status_code == 200, active.text
    assert active.json()["status"] == "applied"

    accepted = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"status": "accepted"}
    assert len(await _events(database_url, workspace)) == 1


async def test_status_changed_with_unknown_status_is_refused_with_422(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "PAUSED")
    )

    assert_refused(response, 422, "ACTIVE or INACTIVE")
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"


# --- redelivery, reinstall and ordering -----------------------------------------------------


async def test_redelivered_installed_is_idempotent_and_keeps_settings_stored_since(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    issued_at = int(time.time()) - 60
    body = workspace.installed_body(clockify.events)
    token = workspace.lifecycle_token(iat=issued_at)
    first = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)
    assert first.status_code == 200, first.text
    registrations = await _registrations(database_url, workspace)
    settings = await clockify.lifecycle(
        workspace,
        "SETTINGS_UPDATED",
        _settings_body(workspace, DOCUMENTED_SETTINGS),
        token=workspace.lifecycle_token(iat=issued_at),
    )
    assert settings.status_code == 200, settings.text

    again = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)

    assert again.status_code == 200, again.text
    assert again.json()["status"] in {"applied", "stale"}
    row = await _installation(database_url, workspace)
    assert row["status"] == "ACTIVE"
    assert row["auth_token"]
    assert _json(row["settings"]) == DOCUMENTED_SETTINGS
    assert await _registrations(database_url, workspace) == registrations
    assert await count(database_url, "installations") == 1
    assert await count(database_url, "webhook_registrations") == len(clockify.events)
    delivery = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert delivery.json() == {"status": "accepted"}


async def test_redelivered_installed_does_not_reactivate_an_inactive_installation(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    # Token iat has a resolution of one second: a STATUS_CHANGED sent in the same second as
    # the INSTALLED carries the same iat, and the redelivery is the very same request.
    issued_at = int(time.time()) - 60
    body = workspace.installed_body(clockify.events)
    token = workspace.lifecycle_token(iat=issued_at)
    first = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)
    assert first.status_code == 200, first.text
    inactive = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "INACTIVE"), iat=issued_at
    )
    assert inactive.json()["status"] == "applied"

    again = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)

    assert again.status_code == 200, again.text
    assert again.json()["status"] in {"applied", "stale"}
    assert (await _installation(database_url, workspace))["status"] == "INACTIVE"
    refused = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert refused.status_code == 409, refused.text
    assert await _events(database_url, workspace) == []


async def test_reinstall_with_new_addon_id_replaces_the_webhook_tokens(
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    signer: Callable[[str], TokenSigner],
) -> None:
    await clockify.install(workspace)
    reinstalled = _reinstalled(workspace, signer)

    response = await clockify.lifecycle(
        reinstalled, "INSTALLED", reinstalled.installed_body(clockify.events)
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert row["addon_id"] == reinstalled.addon_id
    assert row["status"] == "ACTIVE"
    assert await _registrations(database_url, workspace) == _expected_registrations(
        reinstalled, clockify.events
    )
    old = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace, "old"))
    assert_refused(old, 403, "addonId")
    new = await clockify.send_webhook(reinstalled, "NEW_TIME_ENTRY", _time_entry(workspace, "new"))
    assert new.status_code == 200, new.text
    assert new.json() == {"status": "accepted"}
    events = await _events(database_url, workspace)
    assert [json.loads(e["payload"])["id"] for e in events] == ["new"]


async def test_deleted_of_previous_installation_after_reinstall_is_stale(
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    signer: Callable[[str], TokenSigner],
) -> None:
    await clockify.install(workspace)
    reinstalled = _reinstalled(workspace, signer)
    await clockify.install(reinstalled)
    before = await _installation(database_url, workspace)

    late = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace))

    assert late.status_code == 200, late.text
    assert late.json()["status"] == "stale"
    after = await _installation(database_url, workspace)
    assert after["status"] == "ACTIVE"
    assert after["addon_id"] == reinstalled.addon_id
    assert after["auth_token"] == before["auth_token"]
    assert await _registrations(database_url, workspace) == _expected_registrations(
        reinstalled, clockify.events
    )
    delivery = await clockify.send_webhook(reinstalled, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert delivery.status_code == 200, delivery.text
    assert delivery.json() == {"status": "accepted"}


async def test_deleted_whose_token_is_older_than_the_installed_is_stale(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    now = int(time.time())
    await clockify.install(workspace, iat=now - 60)

    late = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace), iat=now - 120)

    assert late.status_code == 200, late.text
    assert late.json()["status"] == "stale"
    row = await _installation(database_url, workspace)
    assert row["status"] == "ACTIVE"
    assert row["auth_token"]
    assert len(await _registrations(database_url, workspace)) == len(clockify.events)
    delivery = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert delivery.status_code == 200, delivery.text
    assert delivery.json() == {"status": "accepted"}


@pytest.mark.parametrize("deleted_later_by", [0, 30], ids=["same-second", "later"])
async def test_installed_redelivered_after_its_deleted_does_not_resurrect(
    clockify: Clockify, workspace: Workspace, database_url: str, deleted_later_by: int
) -> None:
    installed_at = int(time.time()) - 60
    body = workspace.installed_body(clockify.events)
    token = workspace.lifecycle_token(iat=installed_at)
    first = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)
    assert first.status_code == 200, first.text
    deleted = await clockify.lifecycle(
        workspace, "DELETED", _deleted_body(workspace), iat=installed_at + deleted_later_by
    )
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "applied"

    redelivered = await clockify.lifecycle(workspace, "INSTALLED", body, token=token)

    assert redelivered.status_code == 200, redelivered.text
    assert redelivered.json()["status"] == "stale"
    row = await _installation(database_url, workspace)
    assert row["status"] == "DELETED"
    assert row["auth_token"] is None
    assert await _registrations(database_url, workspace) == set()
    refused = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert refused.status_code == 409, refused.text
    assert await _events(database_url, workspace) == []


async def test_status_changed_older_than_the_current_state_is_stale(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    now = int(time.time())
    await clockify.install(workspace, iat=now - 60)
    active = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "ACTIVE"), iat=now - 30
    )
    assert active.json()["status"] == "applied"

    late = await clockify.lifecycle(
        workspace, "STATUS_CHANGED", _status_body(workspace, "INACTIVE"), iat=now - 45
    )

    assert late.status_code == 200, late.text
    assert late.json()["status"] == "stale"
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"
    delivery = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace))
    assert delivery.json() == {"status": "accepted"}


async def test_reinstall_after_deleted_with_a_new_addon_id_is_active_again(
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    signer: Callable[[str], TokenSigner],
) -> None:
    now = int(time.time())
    await clockify.install(workspace, iat=now - 60)
    await clockify.lifecycle(
        workspace, "SETTINGS_UPDATED", _settings_body(workspace, DOCUMENTED_SETTINGS), iat=now - 50
    )
    deleted = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace), iat=now - 40)
    assert deleted.json()["status"] == "applied"
    reinstalled = _reinstalled(workspace, signer)

    response = await clockify.lifecycle(
        reinstalled, "INSTALLED", reinstalled.installed_body(clockify.events), iat=now - 30
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert row["status"] == "ACTIVE"
    assert row["addon_id"] == reinstalled.addon_id
    assert row["auth_token"]
    assert row["deleted_at"] is None
    assert _json(row["settings"]) == []
    assert await _registrations(database_url, workspace) == _expected_registrations(
        reinstalled, clockify.events
    )
    old = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", _time_entry(workspace, "old"))
    assert old.status_code == 403, old.text
    new = await clockify.send_webhook(reinstalled, "NEW_TIME_ENTRY", _time_entry(workspace, "new"))
    assert new.json() == {"status": "accepted"}
    assert [json.loads(e["payload"])["id"] for e in await _events(database_url, workspace)] == [
        "new"
    ]


# --- DELETED -------------------------------------------------------------------------------


async def test_deleted_purges_workspace_data_and_keeps_a_tokenless_tombstone(
    clockify: Clockify, workspace: Workspace, database_url: str, fresh_workspace: Any
) -> None:
    bystander = fresh_workspace()
    await clockify.install(workspace)
    await clockify.install(bystander)
    for ws in (workspace, bystander):
        delivery = await clockify.send_webhook(ws, "NEW_TIME_ENTRY", _time_entry(ws))
        assert delivery.json() == {"status": "accepted"}
    await clockify.lifecycle(
        workspace, "SETTINGS_UPDATED", _settings_body(workspace, DOCUMENTED_SETTINGS)
    )

    response = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace))

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert row["status"] == "DELETED"
    assert row["auth_token"] is None
    assert row["deleted_at"] is not None
    assert _json(row["api_urls"]) == {}
    assert _json(row["settings"]) == []
    assert await _events(database_url, workspace) == []
    assert await _registrations(database_url, workspace) == set()
    # Another workspace's data is untouched.
    assert len(await _events(database_url, bystander)) == 1
    assert len(await _registrations(database_url, bystander)) == len(clockify.events)
    assert (await _installation(database_url, bystander))["status"] == "ACTIVE"

    after = await clockify.send_webhook(
        workspace, "NEW_TIME_ENTRY", _time_entry(workspace, "after")
    )
    assert_refused(after, 409, "no installation")
    assert await _events(database_url, workspace) == []


async def test_webhooks_racing_a_deleted_leave_nothing_stored(
    client: AsyncTestClient[Litestar],
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
) -> None:
    await clockify.install(workspace)
    requests = [_webhook_request(workspace, _time_entry(workspace, f"te{i}")) for i in range(20)]
    requests.insert(10, _lifecycle_request(workspace, "DELETED", _deleted_body(workspace)))

    responses = post_concurrently(client, requests)

    deleted = responses[10]
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "applied"
    webhooks = responses[:10] + responses[11:]
    assert {r.status_code for r in webhooks} <= {200, 409}, [r.text for r in webhooks]
    # Whatever was accepted before the DELETED committed was purged with the workspace.
    assert await _events(database_url, workspace) == []
    assert (await _installation(database_url, workspace))["status"] == "DELETED"


async def test_deleted_twice_is_answered_200_both_times(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    first = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace))
    second = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace))

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "applied"
    assert second.status_code == 200, second.text
    assert second.json()["status"] == "ignored"
    row = await _installation(database_url, workspace)
    assert row["status"] == "DELETED"
    assert row["auth_token"] is None


async def test_deleted_arriving_before_its_installed_keeps_that_installed_out(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    now = time.time()
    deleted = await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace), iat=now + 10)
    late_installed = await clockify.lifecycle(
        workspace, "INSTALLED", workspace.installed_body(clockify.events), iat=now
    )

    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["status"] == "ignored"
    assert late_installed.json()["status"] == "stale"
    row = await _installation(database_url, workspace)
    assert (row["status"], row["auth_token"]) == ("DELETED", None)
    assert await _registrations(database_url, workspace) == set()


async def test_installed_without_issue_times_after_deleted_reinstalls(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    # Lifecycle tokens may carry no iat: order cannot be proved, so the reinstall applies.
    body = workspace.installed_body(clockify.events)
    no_iat = workspace.signer.sign(
        {"iss": "clockify", "type": "addon", "sub": "universal-webhook",
         "workspaceId": workspace.workspace_id, "addonId": workspace.addon_id}
    )  # fmt: skip
    await clockify.lifecycle(workspace, "INSTALLED", body, token=no_iat)
    await clockify.lifecycle(workspace, "DELETED", _deleted_body(workspace), token=no_iat)

    again = await clockify.lifecycle(workspace, "INSTALLED", body, token=no_iat)

    assert again.json()["status"] == "applied"
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"


async def test_settings_older_than_a_status_change_still_apply(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    now = time.time()
    await clockify.install(workspace, iat=now)
    base = {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id}
    await clockify.lifecycle(
        workspace, "STATUS_CHANGED", {**base, "status": "INACTIVE"}, iat=now + 10
    )

    settings = await clockify.lifecycle(
        workspace,
        "SETTINGS_UPDATED",
        {**base, "settings": [{"id": "eventRetentionDays", "name": "Keep", "value": 7}]},
        iat=now + 5,
    )

    assert settings.json()["status"] == "applied"
    row = await _installation(database_url, workspace)
    assert row["status"] == "INACTIVE"
    stored = row["settings"] if isinstance(row["settings"], list) else json.loads(row["settings"])
    assert stored == [{"id": "eventRetentionDays", "name": "Keep", "value": 7}]


# --- audit ---------------------------------------------------------------------------------


async def test_every_verified_lifecycle_call_writes_an_audit_row(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    now = int(time.time())
    await clockify.install(workspace, iat=now - 60)
    calls: list[tuple[str, dict[str, Any], int]] = [
        ("SETTINGS_UPDATED", _settings_body(workspace, DOCUMENTED_SETTINGS), now - 50),
        ("STATUS_CHANGED", _status_body(workspace, "INACTIVE"), now - 40),
        ("STATUS_CHANGED", _status_body(workspace, "ACTIVE"), now - 30),
        ("DELETED", _deleted_body(workspace), now - 100),  # older than the state: stale
        ("DELETED", _deleted_body(workspace), now - 20),
        ("DELETED", _deleted_body(workspace), now - 10),  # already deleted: ignored
    ]
    for lifecycle_type, body, iat in calls:
        response = await clockify.lifecycle(workspace, lifecycle_type, body, iat=iat)
        assert response.status_code == 200, response.text

    rows = await fetch_all(
        database_url,
        "SELECT addon_key, workspace_id, addon_id, lifecycle_type, outcome FROM lifecycle_audit "
        "ORDER BY id",
    )
    assert [(r["lifecycle_type"], r["outcome"]) for r in rows] == [
        ("INSTALLED", "applied"),
        ("SETTINGS_UPDATED", "applied"),
        ("STATUS_CHANGED", "applied"),
        ("STATUS_CHANGED", "applied"),
        ("DELETED", "stale"),
        ("DELETED", "applied"),
        ("DELETED", "ignored"),
    ]
    assert {(r["addon_key"], r["workspace_id"], r["addon_id"]) for r in rows} == {
        (ADDON_KEY, workspace.workspace_id, workspace.addon_id)
    }


# --- refused lifecycle calls ---------------------------------------------------------------


def _body_for(lifecycle_type: str, workspace: Workspace, events: list[str]) -> dict[str, Any]:
    if lifecycle_type == "INSTALLED":
        return workspace.installed_body(events)
    if lifecycle_type == "STATUS_CHANGED":
        return _status_body(workspace, "INACTIVE")
    if lifecycle_type == "SETTINGS_UPDATED":
        return _settings_body(workspace, DOCUMENTED_SETTINGS)
    return _deleted_body(workspace)


async def test_lifecycle_token_for_another_addon_key_is_rejected_with_401(
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    signer: Callable[[str], TokenSigner],
) -> None:
    foreign = signer("api-studio").token(workspace.workspace_id, workspace.addon_id)

    response = await clockify.lifecycle(
        workspace, "INSTALLED", workspace.installed_body(clockify.events), token=foreign
    )

    assert_refused(response, 401, "another add-on")
    await _nothing_stored(database_url)


async def test_lifecycle_body_for_another_workspace_than_the_token_is_forbidden(
    clockify: Clockify, workspace: Workspace, database_url: str, fresh_workspace: Any
) -> None:
    other = fresh_workspace()
    body = other.installed_body(clockify.events)

    response = await clockify.lifecycle(
        workspace, "INSTALLED", body, token=workspace.lifecycle_token()
    )

    assert_refused(response, 403, "workspaceId")
    await _nothing_stored(database_url)


async def test_lifecycle_body_for_another_addon_id_than_the_token_is_forbidden(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    body = workspace.installed_body(clockify.events)
    body["addonId"] = object_id()

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert_refused(response, 403, "addonId")
    await _nothing_stored(database_url)


@pytest.mark.parametrize("lifecycle_type", list(LIFECYCLE_PATHS))
@pytest.mark.parametrize(
    "token_header",
    [
        pytest.param(None, id="no-token"),
        # Several public add-on libraries read Clockify-Signature on lifecycle calls.
        pytest.param("clockify-signature", id="token-in-clockify-signature"),
    ],
)
async def test_lifecycle_call_without_the_lifecycle_token_header_is_rejected_with_401(
    client: AsyncTestClient[Litestar],
    clockify: Clockify,
    workspace: Workspace,
    database_url: str,
    lifecycle_type: str,
    token_header: str | None,
) -> None:
    body = _body_for(lifecycle_type, workspace, clockify.events)
    headers = {"content-type": "application/json"}
    if token_header:
        headers[token_header] = workspace.lifecycle_token()

    response = await client.post(
        LIFECYCLE_PATHS[lifecycle_type], content=json.dumps(body), headers=headers
    )

    assert_refused(response, 401, "missing")
    await _nothing_stored(database_url)


async def test_lifecycle_call_with_malformed_json_is_rejected_with_400(
    client: AsyncTestClient[Litestar], workspace: Workspace, database_url: str
) -> None:
    response = await client.post(
        LIFECYCLE_PATHS["INSTALLED"],
        content=b'{"workspaceId": ',
        headers={
            "content-type": "application/json",
            "x-addon-lifecycle-token": workspace.lifecycle_token(),
        },
    )

    assert_refused(response, 400, "not valid JSON")
    await _nothing_stored(database_url)


# --- a token of another kind ------------------------------------------------------------


async def test_user_token_cannot_delete_an_installation(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    body = {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id}

    response = await clockify.lifecycle(
        workspace, "DELETED", body, token=workspace.user_token("USER")
    )

    assert response.status_code == 401, response.text
    assert "user token" in response.json()["detail"]
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"


async def test_webhook_token_cannot_change_the_status(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    body = {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id}

    response = await clockify.lifecycle(
        workspace,
        "STATUS_CHANGED",
        {**body, "status": "INACTIVE"},
        token=workspace.webhook_token("NEW_TIME_ENTRY"),
    )

    assert response.status_code == 401, response.text
    assert "webhook token" in response.json()["detail"]
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"


async def test_install_made_of_user_tokens_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    user_token = workspace.user_token("ADMIN")
    body = workspace.installed_body(clockify.events)
    body["authToken"] = user_token
    for webhook in body["webhooks"]:
        webhook["authToken"] = user_token

    response = await clockify.lifecycle(workspace, "INSTALLED", body, token=user_token)

    assert response.status_code == 401, response.text
    await _nothing_stored(database_url)


@pytest.mark.parametrize("field", ["asUser", "addonUserId"])
async def test_install_with_an_overlong_id_is_refused_with_400(
    clockify: Clockify, workspace: Workspace, database_url: str, field: str
) -> None:
    body = {**workspace.installed_body(clockify.events), field: "x" * 65}

    response = await clockify.lifecycle(workspace, "INSTALLED", body)

    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]
    await _nothing_stored(database_url)


def _kind_refusals(metrics: str) -> float:
    """The lifecycle tokens refused for being of another kind, as /metrics counts them."""
    prefix = "addon_token_verification_failures_total{"
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(prefix) and 'kind="lifecycle"' in line and 'reason="kind"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_installation_token_is_refused_as_the_lifecycle_token(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    body = {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id}
    before = _kind_refusals((await clockify.client.get("/metrics")).text)

    response = await clockify.lifecycle(
        workspace, "DELETED", body, token=workspace.installation_token()
    )

    assert response.status_code == 401, response.text
    assert "installation token" in response.json()["detail"]
    assert (await _installation(database_url, workspace))["status"] == "ACTIVE"
    after = _kind_refusals((await clockify.client.get("/metrics")).text)
    assert after == before + 1


async def test_install_signed_with_its_own_installation_token_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    body = workspace.installed_body(clockify.events)

    response = await clockify.lifecycle(workspace, "INSTALLED", body, token=body["authToken"])

    assert response.status_code == 401, response.text
    await _nothing_stored(database_url)


async def test_install_signed_with_one_of_its_webhook_tokens_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    body = workspace.installed_body(clockify.events)
    before = _kind_refusals((await clockify.client.get("/metrics")).text)

    response = await clockify.lifecycle(
        workspace, "INSTALLED", body, token=body["webhooks"][0]["authToken"]
    )

    assert response.status_code == 401, response.text
    assert "webhook token" in response.json()["detail"]
    await _nothing_stored(database_url)
    assert _kind_refusals((await clockify.client.get("/metrics")).text) == before + 1


async def test_webhook_token_refusal_is_counted_as_a_verification_failure(
    clockify: Clockify, workspace: Workspace
) -> None:
    await clockify.install(workspace)
    body = {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id}
    before = _kind_refusals((await clockify.client.get("/metrics")).text)

    response = await clockify.lifecycle(
        workspace, "DELETED", body, token=workspace.webhook_token("NEW_TIME_ENTRY")
    )

    assert response.status_code == 401, response.text
    assert _kind_refusals((await clockify.client.get("/metrics")).text) == before + 1
