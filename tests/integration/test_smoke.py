from __future__ import annotations

from tests.fake_clockify import Clockify, Workspace


async def test_installed_workspace_webhook_is_accepted_once(
    clockify: Clockify, workspace: Workspace
) -> None:
    await clockify.install(workspace)
    payload = {"id": "te1", "workspaceId": workspace.workspace_id, "description": "meeting"}
    first = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", payload)
    again = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", payload)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "accepted"}
    assert again.json() == {"status": "duplicate"}
