"""The flows, executions and events JSON API: CRUD, versions, dry runs, replays, scoping."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.tokens import TokenSigner
from addon_core.flows import example
from addon_core.redaction import MASK
from addon_core.sandbox import Sandbox, Sizes
from addon_core.sandbox import Workspace as SandboxWorkspace
from addon_core.sandbox.loopback import serving
from addon_core.storage.database import create_engine, for_writing
from addon_core.storage.models import Execution, ExecutionStep, Flow
from tests.db import count, fetch_all
from tests.fake_clockify import Workspace
from tests.harness import (
    EVENT,
    PROJECT_NAME,
    SECRET_ACTION,
    Api,
    InstallApp,
    bearer,
    execute,
    sandbox_settings,
    tag_meetings,
    time_entry,
)

pytestmark = pytest.mark.sandbox(
    seed=5, sizes=Sizes(projects=3, clients=1, tags=2, users=1, time_entries=3)
)


WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# --- CRUD ----------------------------------------------------------------------------------------


async def test_a_flow_round_trips_through_create_get_list_put_and_delete(api: Api) -> None:
    created = await api.create()
    flow_id = created["id"]
    assert 16 <= len(flow_id) <= 24
    assert created["version"] == 1
    assert created["name"] == "Tag meetings"
    assert created["enabled"] is True
    assert created["paused"] is False
    assert created["pausedReason"] is None
    assert created["consecutiveFailures"] == 0
    assert created["createdBy"] == api.workspace.owner_id
    assert created["trigger"] == {"source": "clockify", "events": [EVENT]}
    assert [action["id"] for action in created["actions"]] == ["project", "retag"]
    assert ("signingSecret" in created) is api.signs

    got = (await api.call("GET", f"/api/flows/{flow_id}", role="USER")).json()
    assert created["warnings"] == []  # a save's answer only: what the flow would meet at run
    assert got == {
        key: value for key, value in created.items() if key not in ("signingSecret", "warnings")
    }
    listed = (await api.call("GET", "/api/flows", role="USER")).json()
    assert [item["id"] for item in listed["items"]] == [flow_id]
    assert listed["next"] is None

    # A GET's output goes back as is, edited: the read-only fields are ignored.
    edited = copy.deepcopy(got)
    edited["name"] = "Tag meetings and calls"
    edited["conditions"]["mode"] = "any"
    edited["conditions"]["rules"].append(
        {"path": "event.description", "op": "contains", "value": "call"}
    )
    put = await api.call("PUT", f"/api/flows/{flow_id}", edited)
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2
    assert put.json()["name"] == "Tag meetings and calls"
    assert len(put.json()["conditions"]["rules"]) == 2
    again = (await api.call("GET", f"/api/flows/{flow_id}")).json()
    assert again["conditions"]["mode"] == "any"
    assert again["version"] == 2

    deleted = await api.call("DELETE", f"/api/flows/{flow_id}")
    assert deleted.status_code == 204
    assert (await api.call("GET", f"/api/flows/{flow_id}")).status_code == 404
    assert (await api.call("GET", "/api/flows")).json()["items"] == []
    assert await count(api.database_url, "flow_versions") == 0


async def test_a_stale_version_in_a_put_is_a_conflict(api: Api) -> None:
    created = await api.create()
    stale = {**created, "name": "first edit"}
    assert (await api.call("PUT", f"/api/flows/{created['id']}", stale)).status_code == 200
    second = await api.call("PUT", f"/api/flows/{created['id']}", {**stale, "name": "lost"})
    assert second.status_code == 409
    assert "version 2" in second.json()["detail"]
    other_id = await api.call("PUT", f"/api/flows/{created['id']}", {**tag_meetings(), "id": "x"})
    assert other_id.status_code == 422


async def test_validation_names_every_field_that_is_wrong(api: Api) -> None:
    document = tag_meetings(
        trigger={"source": "clockify", "events": ["NEW_TIME_ENTRYY"]},
        conditions={"rules": [{"path": "event.description", "op": "like", "value": "m"}]},
        actions=[
            {"id": "a", "type": "clockify", "operation": "getProjectz", "params": {}},
            {"id": "b", "type": "clockify", "operation": "createNewTag", "body": {"name": 5}},
            {
                "id": "c",
                "type": "clockify",
                "operation": "createNewTag",
                "body": {"name": "{{ event.description"},
            },
        ],
    )
    response = await api.call("POST", "/api/flows", document)
    assert response.status_code == 422, response.text
    errors = {error["field"]: error["message"] for error in response.json()["extra"]["errors"]}
    assert set(errors) == {
        "trigger.events[0]",
        "conditions.rules[0].op",
        "actions[0].operation",
        "actions[1].body.name",
        "actions[2].body.name",
    }
    assert "NEW_TIME_ENTRY" in errors["trigger.events[0]"]  # the suggestion
    assert "getProject" in errors["actions[0].operation"]
    assert "unterminated" in errors["actions[2].body.name"]
    assert response.json()["detail"].startswith("invalid flow: trigger.events[0]")
    assert await count(api.database_url, "flows") == 0


async def test_unknown_keys_and_bodies_that_are_not_json_are_refused(api: Api) -> None:
    unknown = await api.call("POST", "/api/flows", tag_meetings(colour="blue"))
    assert unknown.status_code == 422
    assert unknown.json()["extra"]["errors"] == [{"field": "colour", "message": "unknown key"}]
    broken = await api.client.post("/api/flows", content=b"{not json", headers=api.headers("OWNER"))
    assert broken.status_code == 400
    assert "not valid JSON" in broken.json()["detail"]


async def test_http_actions_exist_only_in_universal_webhook(api: Api) -> None:
    http_action = {"id": "notify", "type": "http", "method": "POST", "url": "https://x.test/h"}
    response = await api.call("POST", "/api/flows", tag_meetings(actions=[http_action]))
    if api.signs:
        assert response.status_code == 201, response.text
    else:
        assert response.status_code == 422
        [error] = response.json()["extra"]["errors"]
        assert error["field"] == "actions[0].type"


async def test_writes_need_owner_or_admin(api: Api) -> None:
    created = await api.create()
    flow_id = created["id"]
    for method, path, body in [
        ("POST", "/api/flows", tag_meetings()),
        ("PUT", f"/api/flows/{flow_id}", tag_meetings(name="changed")),
        ("DELETE", f"/api/flows/{flow_id}", None),
        ("POST", f"/api/flows/{flow_id}/resume", None),
        ("POST", f"/api/flows/{flow_id}/rotate-secret", None),
        ("POST", "/api/events/1/replay", None),
    ]:
        refused = await api.call(method, path, body, role="USER")
        assert refused.status_code == 403, (method, path, refused.text)
        assert "OWNER or ADMIN" in refused.json()["detail"]
    # Reads are for every role; ADMIN writes.
    assert (await api.call("GET", f"/api/flows/{flow_id}", role="USER")).status_code == 200
    admin = await api.call("PUT", f"/api/flows/{flow_id}", tag_meetings(name="x"), role="ADMIN")
    assert admin.status_code == 200
    assert (await api.call("GET", f"/api/flows/{flow_id}")).json()["name"] == "x"


async def test_a_request_without_a_user_token_is_401(api: Api) -> None:
    response = await api.client.get("/api/flows")
    assert response.status_code == 401


async def test_another_workspace_sees_nothing_and_gets_404(
    api: Api, signer: Callable[[str], TokenSigner]
) -> None:
    created = await api.create()
    flow_id = created["id"]
    await api.clockify.send_webhook(api.workspace, EVENT, time_entry())
    [event] = await fetch_all(api.database_url, "SELECT id FROM events")
    other = await api.new_workspace(signer(api.app_name))
    for method, path, body in [
        ("GET", f"/api/flows/{flow_id}", None),
        ("PUT", f"/api/flows/{flow_id}", tag_meetings()),
        ("DELETE", f"/api/flows/{flow_id}", None),
        ("POST", f"/api/flows/{flow_id}/resume", None),
        ("GET", f"/api/flows/{flow_id}/versions", None),
        ("GET", f"/api/flows/{flow_id}/versions/1", None),
        ("GET", f"/api/flows/{flow_id}/executions", None),
        ("POST", f"/api/flows/{flow_id}/test", {"eventType": EVENT, "event": time_entry()}),
        ("GET", f"/api/events/{event['id']}", None),
        ("POST", f"/api/events/{event['id']}/replay", None),
    ]:
        response = await api.call(method, path, body, workspace=other)
        assert response.status_code == 404, (method, path, response.text)
    assert (await api.call("GET", "/api/flows", workspace=other)).json()["items"] == []
    assert (await api.call("GET", "/api/events", workspace=other)).json()["items"] == []
    # The owner's flow is untouched.
    assert (await api.call("GET", f"/api/flows/{flow_id}")).json()["version"] == 1


async def test_flows_page_newest_first(api: Api) -> None:
    ids = [(await api.create(tag_meetings(name=f"flow {n}")))["id"] for n in range(3)]
    first = (await api.call("GET", "/api/flows", limit=2)).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    assert first["next"]
    second = (await api.call("GET", "/api/flows", limit=2, cursor=first["next"])).json()
    assert [item["id"] for item in second["items"]] == [ids[0]]
    assert second["next"] is None
    bad = await api.call("GET", "/api/flows", cursor="not-ours")
    assert bad.status_code == 400


# --- versions, executions, pauses ----------------------------------------------------------------


async def insert_execution(
    database_url: str, workspace_id: str, addon_key: str, flow_id: str, version: int, **more: Any
) -> None:
    now = datetime.now(UTC)
    await execute(
        database_url,
        "INSERT INTO executions (addon_key, workspace_id, flow_id, flow_version, event_id, "
        "run_key, status, error, created_at, finished_at) VALUES (:addon_key, :workspace_id, "
        ":flow_id, :version, NULL, :run_key, :status, NULL, :now, :now)",
        addon_key=addon_key,
        workspace_id=workspace_id,
        flow_id=flow_id,
        version=version,
        run_key=more.get("run_key", f"v{version}"),
        status=more.get("status", "succeeded"),
        now=now,
    )


async def test_versions_are_kept_and_executions_name_theirs(api: Api) -> None:
    created = await api.create()
    flow_id = created["id"]
    await insert_execution(
        api.database_url, api.workspace.workspace_id, api.app_name, flow_id, version=1
    )
    put = await api.call("PUT", f"/api/flows/{flow_id}", tag_meetings(name="renamed"), role="ADMIN")
    assert put.json()["version"] == 2
    await insert_execution(
        api.database_url, api.workspace.workspace_id, api.app_name, flow_id, version=2
    )
    [execution] = await fetch_all(
        api.database_url, "SELECT id FROM executions WHERE flow_version = 2"
    )
    await execute(
        api.database_url,
        "INSERT INTO execution_steps (execution_id, position, step_id, status, request, "
        "response, error, duration_ms, started_at) VALUES (:e, 0, 'project', 'succeeded', "
        ":request, :response, NULL, 12.5, :now)",
        e=execution["id"],
        request=json.dumps({"method": "GET", "url": "https://api.clockify.me/x", "body": None}),
        response=json.dumps({"status": 200, "body": '{"name": "Meetings"}'}),
        now=datetime.now(UTC),
    )

    versions = (await api.call("GET", f"/api/flows/{flow_id}/versions", role="USER")).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert [v["name"] for v in versions["items"]] == ["renamed", "Tag meetings"]
    assert all(v["savedBy"] == api.workspace.owner_id and v["savedAt"] for v in versions["items"])
    first = (await api.call("GET", f"/api/flows/{flow_id}/versions/1")).json()
    assert first["document"]["name"] == "Tag meetings"
    assert (await api.call("GET", f"/api/flows/{flow_id}/versions/3")).status_code == 404

    runs = (await api.call("GET", f"/api/flows/{flow_id}/executions", role="USER")).json()
    assert [run["flowVersion"] for run in runs["items"]] == [2, 1]
    newest = runs["items"][0]
    assert newest["status"] == "succeeded"
    assert newest["flowId"] == flow_id
    assert newest["steps"] == [
        {
            "id": "project",
            "status": "succeeded",
            "request": {"method": "GET", "url": "https://api.clockify.me/x", "body": None},
            "response": {"status": 200, "body": '{"name": "Meetings"}'},
            "error": None,
            "durationMs": 12.5,
        }
    ]
    assert runs["items"][1]["steps"] == []
    paged = (await api.call("GET", f"/api/flows/{flow_id}/executions", limit=1)).json()
    assert [run["flowVersion"] for run in paged["items"]] == [2]
    rest = (
        await api.call("GET", f"/api/flows/{flow_id}/executions", limit=1, cursor=paged["next"])
    ).json()
    assert [run["flowVersion"] for run in rest["items"]] == [1]
    assert rest["next"] is None
    one = (await api.call("GET", f"/api/executions/{newest['id']}")).json()
    assert one == newest

    # Deleting the flow takes its executions and steps along.
    assert (await api.call("DELETE", f"/api/flows/{flow_id}")).status_code == 204
    assert await count(api.database_url, "executions") == 0
    assert await count(api.database_url, "execution_steps") == 0


async def pause(database_url: str, flow_id: str) -> None:
    await execute(
        database_url,
        "UPDATE flows SET paused_reason = 'paused after 5 failures in a row', "
        "consecutive_failures = 5 WHERE id = :flow_id",
        flow_id=flow_id,
    )


async def test_a_paused_flow_resumes_on_resume_or_on_edit(api: Api) -> None:
    flow_id = (await api.create())["id"]
    await pause(api.database_url, flow_id)
    paused = (await api.call("GET", f"/api/flows/{flow_id}")).json()
    assert paused["paused"] is True
    assert paused["pausedReason"] == "paused after 5 failures in a row"
    assert paused["consecutiveFailures"] == 5

    resumed = await api.call("POST", f"/api/flows/{flow_id}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["paused"] is False
    assert resumed.json()["consecutiveFailures"] == 0
    assert resumed.json()["version"] == 1  # resuming is not an edit

    await pause(api.database_url, flow_id)
    edited = (await api.call("PUT", f"/api/flows/{flow_id}", tag_meetings())).json()
    assert edited["paused"] is False
    assert edited["pausedReason"] is None
    assert edited["consecutiveFailures"] == 0


# --- dry run -------------------------------------------------------------------------------------


async def counts(database_url: str) -> dict[str, int]:
    """Rows of what a run would leave behind (jobs: flow dispatches only)."""
    tables = ("executions", "execution_steps", "api_calls", "flows", "flow_versions")
    found = {table: await count(database_url, table) for table in tables}
    [jobs] = await fetch_all(
        database_url, "SELECT COUNT(*) AS n FROM jobs WHERE kind = 'flow.dispatch'"
    )
    return {**found, "dispatch jobs": int(jobs["n"])}


async def test_a_dry_run_reads_renders_and_writes_nothing(api: Api) -> None:
    flow_id = (await api.create())["id"]
    before = await counts(api.database_url)
    response = await api.call(
        "POST", f"/api/flows/{flow_id}/test", {"eventType": EVENT, "event": time_entry()}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["matched"] is True
    assert answer["triggerMatched"] is True
    assert answer["conditions"] == [
        {
            "path": "event.description",
            "op": "contains",
            "exists": True,
            "left": "weekly meeting",
            "value": "meeting",
            "outcome": True,
            "reason": None,
        }
    ]
    read, write = answer["steps"]
    assert read["sent"] is True
    assert read["response"]["status"] == 200
    assert read["request"]["method"] == "GET"
    assert read["request"]["operation"] == "getProject"
    assert write["sent"] is False
    assert "never sends" in write["note"]
    assert write["request"]["method"] == "PUT"
    assert write["request"]["url"].endswith(
        f"/v1/workspaces/{api.workspace.workspace_id}/time-entries/{time_entry()['id']}"
    )
    # The later template used the read's answer.
    assert write["request"]["body"] == {
        "start": "2024-05-01T09:00:00Z",
        "description": f"weekly meeting / {PROJECT_NAME}",
    }
    [request] = api.sent_for_flows()
    assert request.method == "GET"
    assert request.url.path.endswith(f"/projects/{time_entry()['projectId']}")
    assert await counts(api.database_url) == before


async def test_a_dry_run_explains_a_miss_and_what_it_could_not_render(api: Api) -> None:
    document = tag_meetings()
    # The read now fails to render, so the write cannot use its answer.
    document["actions"][0]["params"] = {"projectId": "{{ event.project.id }}"}
    flow_id = (await api.create(document))["id"]
    response = await api.call(
        "POST",
        f"/api/flows/{flow_id}/test",
        {"eventType": "TIMER_STOPPED", "event": time_entry(description="lunch")},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["matched"] is False
    assert answer["triggerMatched"] is False
    assert answer["conditionsMatched"] is False
    read, write = answer["steps"]
    assert read["sent"] is False
    assert read["request"] is None
    assert "event.project" in read["error"]
    assert write["sent"] is False
    assert "not available in a dry run" in write["error"]
    assert "actions.project.body.name" in write["error"]
    assert api.sent_for_flows() == []


async def test_a_dry_run_request_is_checked(api: Api) -> None:
    flow_id = (await api.create())["id"]
    for body, field_name in [
        ({"eventType": EVENT}, "event"),
        ({"eventType": 3, "event": {}}, "eventType"),
        ({"event": {}, "extra": 1}, "extra"),
    ]:
        response = await api.call("POST", f"/api/flows/{flow_id}/test", body)
        assert response.status_code == 422, response.text
        assert field_name in {e["field"] for e in response.json()["extra"]["errors"]}
    assert api.sent_for_flows() == []


async def test_a_dry_run_rendering_past_the_size_limit_is_a_422(api: Api) -> None:
    document = tag_meetings()
    document["actions"][1]["body"]["description"] = "{{ event.description }}" * 1000
    flow_id = (await api.create(document))["id"]

    response = await api.call(
        "POST",
        f"/api/flows/{flow_id}/test",
        {"eventType": EVENT, "event": time_entry(description="meeting " + "x" * 100_000)},
    )

    assert response.status_code == 422, response.text
    error = response.json()
    assert "the limit of one value" in error["detail"]
    assert error["extra"]["field"] == "actions[1].body.description"


async def test_a_flow_with_literal_text_past_the_value_limit_is_refused_at_save(
    api: Api,
) -> None:
    document = tag_meetings()
    document["actions"][1]["body"]["description"] = "d" * 70_000

    response = await api.call("POST", "/api/flows", document)

    assert response.status_code == 422, response.text
    errors = response.json()["extra"]["errors"]
    assert any(
        e["field"] == "actions[1].body.description" and "70000 characters" in e["message"]
        for e in errors
    ), errors
    assert await count(api.database_url, "flows") == 0


# --- events and replays --------------------------------------------------------------------------


async def test_events_are_listed_newest_first_redacted_and_filtered(api: Api) -> None:
    secret_entry = time_entry(id="entry-1", apiKey="sk-live-123456")
    for event_type, payload in [
        (EVENT, secret_entry),
        ("TIMER_STOPPED", time_entry(id="entry-2")),
        (EVENT, time_entry(id="entry-3")),
    ]:
        delivered = await api.clockify.send_webhook(api.workspace, event_type, payload)
        assert delivered.status_code < 300, delivered.text
    listed = (await api.call("GET", "/api/events", role="USER")).json()
    assert [item["payload"]["id"] for item in listed["items"]] == ["entry-3", "entry-2", "entry-1"]
    oldest = listed["items"][-1]
    assert oldest["payload"]["apiKey"] == MASK
    assert oldest["eventType"] == EVENT
    assert oldest["source"] == "clockify"
    assert oldest["endpointId"] is None
    assert set(oldest) == {
        "id",
        "eventType",
        "source",
        "endpointId",
        "receivedAt",
        "payload",
        "flowsSkipped",
    }
    assert oldest["flowsSkipped"] is None
    assert "sk-live-123456" not in json.dumps(listed)

    filtered = (await api.call("GET", "/api/events", eventType=EVENT)).json()
    assert [item["payload"]["id"] for item in filtered["items"]] == ["entry-3", "entry-1"]
    page = (await api.call("GET", "/api/events", limit=2)).json()
    assert len(page["items"]) == 2
    rest = (await api.call("GET", "/api/events", limit=2, cursor=page["next"])).json()
    assert [item["payload"]["id"] for item in rest["items"]] == ["entry-1"]
    assert rest["next"] is None
    one = (await api.call("GET", f"/api/events/{oldest['id']}")).json()
    assert one == oldest


async def wait_for_executions(api: Api, flow_id: str, wanted: int) -> list[dict[str, Any]]:
    """Poll the API until the background workers have finished `wanted` executions."""
    for _ in range(400):
        items: list[dict[str, Any]] = (
            await api.call("GET", f"/api/flows/{flow_id}/executions")
        ).json()["items"]
        if len(items) >= wanted and all(item["finishedAt"] for item in items):
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"{wanted} executions of flow {flow_id} did not finish")


async def test_a_replay_enqueues_a_fresh_run_of_the_event(api: Api) -> None:
    # No actions: the run needs no Clockify, only the engine.
    flow_id = (await api.create(tag_meetings(actions=[])))["id"]
    delivered = await api.clockify.send_webhook(api.workspace, EVENT, time_entry())
    assert delivered.status_code < 300
    [event] = await fetch_all(api.database_url, "SELECT id FROM events")
    [first] = await wait_for_executions(api, flow_id, 1)
    assert first["eventId"] == event["id"]
    assert first["status"] == "succeeded"
    assert first["flowVersion"] == 1
    # Replays run the flow as it is now.
    edited = await api.call("PUT", f"/api/flows/{flow_id}", tag_meetings(actions=[], name="v2"))
    assert edited.json()["version"] == 2

    replies = [await api.call("POST", f"/api/events/{event['id']}/replay") for _ in range(2)]
    assert [reply.status_code for reply in replies] == [202, 202]
    keys = [reply.json()["runKey"] for reply in replies]
    assert len(set(keys)) == 2
    assert all(key.startswith("replay-") for key in keys)
    jobs = await fetch_all(
        api.database_url,
        "SELECT id, kind, payload, ordering_key FROM jobs WHERE id IN (:a, :b)",
        a=replies[0].json()["jobId"],
        b=replies[1].json()["jobId"],
    )
    assert len(jobs) == 2
    for job in jobs:
        payload = job["payload"] if isinstance(job["payload"], dict) else json.loads(job["payload"])
        assert job["kind"] == "flow.dispatch"
        assert payload["event_id"] == event["id"]
        assert payload["run_key"] in keys
        assert job["ordering_key"] == f"{api.workspace.workspace_id}:{time_entry()['id']}"

    runs = await wait_for_executions(api, flow_id, 3)
    assert {run["eventId"] for run in runs} == {event["id"]}
    assert sorted(run["runKey"] for run in runs) == sorted(["event", *keys])
    assert {run["runKey"]: run["flowVersion"] for run in runs} == {
        "event": 1,
        keys[0]: 2,
        keys[1]: 2,
    }


async def test_a_replay_may_pick_flows_of_the_workspace_only(
    api: Api, signer: Callable[[str], TokenSigner]
) -> None:
    flow_id = (await api.create(tag_meetings(actions=[])))["id"]
    await api.clockify.send_webhook(api.workspace, EVENT, time_entry())
    [event] = await fetch_all(api.database_url, "SELECT id FROM events")
    other = await api.new_workspace(signer(api.app_name))
    foreign = (
        await api.call("POST", "/api/flows", tag_meetings(actions=[]), workspace=other)
    ).json()["id"]
    picked = await api.call("POST", f"/api/events/{event['id']}/replay", {"flowIds": [flow_id]})
    assert picked.status_code == 202
    assert picked.json()["flowIds"] == [flow_id]
    refused = await api.call(
        "POST", f"/api/events/{event['id']}/replay", {"flowIds": [flow_id, foreign]}
    )
    assert refused.status_code == 422
    assert refused.json()["extra"]["errors"][0]["field"] == "flowIds[1]"
    malformed = await api.call("POST", f"/api/events/{event['id']}/replay", {"flowIds": "x"})
    assert malformed.status_code == 422
    assert (await api.call("POST", "/api/events/999999/replay")).status_code == 404


# --- the signing secret --------------------------------------------------------------------------


async def test_the_signing_secret_is_shown_once_and_never_logged(
    uw: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await uw.create()
    secret = created["signingSecret"]
    assert secret.startswith("whsec_")
    flow_id = created["id"]
    [row] = await fetch_all(
        uw.database_url, "SELECT signing_secret FROM flows WHERE id = :i", i=flow_id
    )
    assert row["signing_secret"]
    assert secret not in row["signing_secret"]

    rotated = await uw.call("POST", f"/api/flows/{flow_id}/rotate-secret")
    assert rotated.status_code == 200
    fresh = rotated.json()["signingSecret"]
    assert fresh.startswith("whsec_")
    assert fresh != secret
    shown = [
        await uw.call("GET", f"/api/flows/{flow_id}"),
        await uw.call("GET", "/api/flows"),
        await uw.call("GET", f"/api/flows/{flow_id}/versions"),
        await uw.call("GET", f"/api/flows/{flow_id}/versions/1"),
        await uw.call("PUT", f"/api/flows/{flow_id}", tag_meetings()),
    ]
    for response in shown:
        assert response.status_code == 200
        assert "signingSecret" not in response.text
        assert secret not in response.text
        assert fresh not in response.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged
    assert fresh not in logged


async def test_api_studio_flows_have_no_signing_secret(install_app: InstallApp) -> None:
    async with install_app("api-studio") as studio:
        created = await studio.call("POST", "/api/flows", tag_meetings(actions=[]))
        assert "signingSecret" not in created.json()
        rotate = await studio.call("POST", f"/api/flows/{created.json()['id']}/rotate-secret")
        assert rotate.status_code == 409


async def test_secrets_in_http_actions_are_masked_and_kept_on_a_put_back(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[SECRET_ACTION]))
    [shown] = created["actions"]
    assert shown["headers"] == {"Authorization": MASK, "X-Team": "ops"}
    assert "abc123" not in shown["url"]
    assert "s3cr3t-value" not in json.dumps(created)

    # Sent back as shown: the stored values stay. Changed: the new value is taken.
    back = copy.deepcopy(created)
    back["actions"][0]["headers"]["X-Team"] = "dev"
    assert (await uw.call("PUT", f"/api/flows/{created['id']}", back)).status_code == 200
    [row] = await fetch_all(uw.database_url, "SELECT document FROM flows")
    document = row["document"] if isinstance(row["document"], dict) else json.loads(row["document"])
    stored = document["actions"][0]
    assert stored["headers"] == {"Authorization": "Bearer s3cr3t-value", "X-Team": "dev"}
    assert stored["url"] == SECRET_ACTION["url"]


SECRET_VALUES = ("tok-123", "k-456", "s3cr3t-value", "custom-789", "pw-000", "key-aaa")


def secret_action(url: str = "https://hooks.example.com/in") -> dict[str, Any]:
    """An http action holding a secret in each place a user might put one."""
    return {
        "id": "notify",
        "type": "http",
        "method": "POST",
        "url": f"{url}?token=tok-123&key=k-456&entry={{{{ event.id }}}}",
        "headers": {
            "Authorization": "Bearer s3cr3t-value",
            "X-Custom-Auth": "custom-789",
            "X-Team": "ops",
        },
        "body": {"entry": "{{ event.id }}", "login": {"password": "pw-000"}, "apiKey": "key-aaa"},
    }


def assert_masked(shown: Any) -> None:
    text = json.dumps(shown)
    for value in SECRET_VALUES:
        assert value not in text, value


async def test_every_reader_of_a_flow_sees_its_secrets_masked(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[secret_action()]))
    flow_id = created["id"]
    [shown] = created["actions"]
    assert shown["url"] == (
        f"https://hooks.example.com/in?token={MASK}&key={MASK}&entry={{{{ event.id }}}}"
    )
    assert shown["headers"] == {"Authorization": MASK, "X-Custom-Auth": MASK, "X-Team": "ops"}
    assert shown["body"] == {"entry": "{{ event.id }}", "login": {"password": MASK}, "apiKey": MASK}

    readers = [
        created,
        (await uw.call("GET", "/api/flows", role="USER")).json(),
        (await uw.call("GET", f"/api/flows/{flow_id}", role="USER")).json(),
        (await uw.call("GET", f"/api/flows/{flow_id}/versions", role="USER")).json(),
        (await uw.call("GET", f"/api/flows/{flow_id}/versions/1", role="USER")).json(),
    ]
    dry = await uw.call(
        "POST", f"/api/flows/{flow_id}/test", {"eventType": EVENT, "event": time_entry()}
    )
    assert dry.status_code == 200, dry.text
    [step] = dry.json()["steps"]
    assert step["request"]["headers"]["X-Team"] == "ops"
    assert step["request"]["body"]["entry"] == time_entry()["id"]
    for shown_document in [*readers, dry.json()]:
        assert_masked(shown_document)


async def test_a_step_recorded_before_a_masking_rule_is_read_masked(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[secret_action()]))
    legacy = {  # as a step was stored when only URL api keys and Authorization were masked
        "method": "POST",
        "url": "https://hooks.example.com/in?token=tok-123&key=k-456",
        "headers": {"Authorization": MASK, "X-Custom-Auth": "custom-789"},
        "body": {"login": {"password": "pw-000"}, "apiKey": "key-aaa"},
    }
    engine = create_engine(uw.database_url)
    try:
        async with AsyncSession(engine) as session, session.begin():
            execution = Execution(
                addon_key=uw.app_name,
                workspace_id=uw.workspace.workspace_id,
                flow_id=created["id"],
                flow_version=1,
                status="failed",
                error="POST https://hooks.example.com/in?token=tok-123 answered 500",
            )
            session.add(execution)
            await session.flush()
            session.add(
                ExecutionStep(
                    execution_id=execution.id,
                    position=0,
                    step_id="notify",
                    status="failed",
                    request=legacy,
                    error="POST https://hooks.example.com/in?token=tok-123 answered 500",
                )
            )
    finally:
        await engine.dispose()

    listed = await uw.call("GET", f"/api/flows/{created['id']}/executions", role="USER")

    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["items"]
    assert shown["steps"][0]["request"]["headers"]["X-Custom-Auth"] == MASK
    assert_masked(listed.json())


async def test_secrets_sent_back_masked_are_kept_and_new_values_replace_them(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[secret_action()]))
    back = copy.deepcopy(created)
    back["actions"][0]["headers"]["X-Team"] = "dev"
    back["actions"][0]["body"]["apiKey"] = "key-new"

    put = await uw.call("PUT", f"/api/flows/{created['id']}", back)

    assert put.status_code == 200, put.text
    assert_masked(put.json())
    [row] = await fetch_all(uw.database_url, "SELECT document FROM flows")
    document = row["document"] if isinstance(row["document"], dict) else json.loads(row["document"])
    stored = document["actions"][0]
    original = secret_action()
    assert stored["url"] == original["url"]
    assert stored["headers"] == {**original["headers"], "X-Team": "dev"}
    assert stored["body"] == {**original["body"], "apiKey": "key-new"}


async def test_a_masked_secret_never_follows_an_action_to_another_host(uw: Api) -> None:
    created = await uw.create(tag_meetings(actions=[secret_action()]))
    moved = copy.deepcopy(created)
    moved["actions"][0]["url"] = "https://elsewhere.example.net/in"

    response = await uw.call("PUT", f"/api/flows/{created['id']}", moved)

    assert response.status_code == 422, response.text
    assert "another host" in response.json()["detail"]
    assert response.json()["extra"]["errors"][0]["field"] == "actions[0].headers"
    [row] = await fetch_all(uw.database_url, "SELECT version FROM flows")
    assert row["version"] == 1


# --- review at save and in the dry run -----------------------------------------------------------


async def test_the_contract_example_saves_with_no_warning(api: Api) -> None:
    created = await api.call("POST", "/api/flows", example.tag_meetings())

    assert created.status_code == 201, created.text
    assert created.json()["warnings"] == []
    dry = await api.call(
        "POST", f"/api/flows/{created.json()['id']}/test", {"event": time_entry(tagIds=[])}
    )
    assert dry.json()["warnings"] == []


async def test_a_setting_no_manifest_declares_is_refused_at_save_naming_the_field(
    api: Api,
) -> None:
    document = tag_meetings()
    document["actions"][1]["body"]["tagIds"] = "{{ settings.meetingTagIds }}"
    document["conditions"]["rules"].append({"path": "settings.threshold", "op": "exists"})

    response = await api.call("POST", "/api/flows", document)

    assert response.status_code == 422, response.text
    errors = response.json()["extra"]["errors"]
    assert {error["field"] for error in errors} == {
        "actions[1].body.tagIds",
        "conditions.rules[1].path",
    }
    messages = {error["field"]: error["message"] for error in errors}
    assert "settings.meetingTagIds is not a setting" in messages["actions[1].body.tagIds"]
    assert await count(api.database_url, "flows") == 0
    # A setting the manifest declares is fine.
    document["conditions"]["rules"].pop()
    document["actions"][1]["body"]["tagIds"] = "{{ settings.eventRetentionDays }}"
    declared = await api.call("POST", "/api/flows", document)
    assert declared.status_code == 201, declared.text


async def test_a_dry_run_warns_of_a_stored_reference_to_an_undeclared_setting(api: Api) -> None:
    created = await api.create()
    engine = create_engine(api.database_url)  # the test's own: the app's lives on its loop
    try:
        # BEGIN IMMEDIATE on SQLite: a read-then-write transaction beside the app's background
        # jobs must wait for the write lock, not fail to upgrade its read lock.
        async with AsyncSession(for_writing(engine)) as session, session.begin():
            flow = await session.get(Flow, created["id"])
            assert flow is not None
            document = copy.deepcopy(flow.document)
            document["actions"][1]["body"]["description"] = "{{ settings.legacy }}"
            flow.document = document
    finally:
        await engine.dispose()

    dry = await api.call("POST", f"/api/flows/{created['id']}/test", {"event": time_entry()})

    assert dry.status_code == 200, dry.text
    [warning] = dry.json()["warnings"]
    assert warning["field"] == "actions[1].body.description"
    assert "settings.legacy" in warning["message"]


async def test_an_http_action_to_a_host_not_allowed_is_saved_with_a_warning(uw: Api) -> None:
    action = {
        "id": "notify",
        "type": "http",
        "method": "POST",
        "url": "https://hooks.example.com/in",
    }

    created = await uw.call("POST", "/api/flows", tag_meetings(actions=[action]))

    assert created.status_code == 201, created.text
    [warning] = created.json()["warnings"]
    assert warning["field"] == "actions[0].url"
    assert "hooks.example.com" in warning["message"]
    flow_id = created.json()["id"]
    dry = await uw.call("POST", f"/api/flows/{flow_id}/test", {"event": time_entry()})
    assert dry.json()["warnings"] == [warning]

    ids = {"addonId": uw.workspace.addon_id, "workspaceId": uw.workspace.workspace_id}
    setting = {"id": "outboundAllowedHosts", "name": "Hosts", "value": "hooks.example.com"}
    allowed = await uw.clockify.lifecycle(
        uw.workspace, "SETTINGS_UPDATED", {**ids, "settings": [setting]}
    )
    assert allowed.status_code == 200, allowed.text
    put = await uw.call("PUT", f"/api/flows/{flow_id}", created.json())
    assert put.status_code == 200, put.text
    assert put.json()["warnings"] == []
    # A URL whose host is a template is judged at run, not at save.
    templated = {**action, "url": "https://{{ event.host }}/in"}
    saved = await uw.call("POST", "/api/flows", tag_meetings(actions=[templated]))
    assert saved.json()["warnings"] == []


# --- against the sandbox -------------------------------------------------------------------------


async def test_a_dry_run_against_clockify_sends_no_write(
    sandbox: Sandbox,
    make_app: Callable[..., Litestar],
    reference_dir: Path,
    database_url: str,
    tmp_path: Path,
) -> None:
    app = make_app(
        "api-studio",
        **sandbox_settings(sandbox, tmp_path, reference_dir),
        bootstrap_enabled=False,
    )
    async with serving(app) as app_url, httpx.AsyncClient(base_url=app_url) as http:
        workspace: SandboxWorkspace = sandbox.create_workspace("api-studio")
        manifest = await sandbox.fetch_manifest(app_url)
        installed = await sandbox.install(app_url, manifest, workspace)
        assert installed.status_code == 200, installed.text
        headers = bearer(workspace.user_token("OWNER"))
        created = await http.post("/api/flows", json=tag_meetings(), headers=headers)
        assert created.status_code == 201, created.text
        project = sandbox.store.entities(workspace.workspace_id, "projects")[0]
        before = await counts(database_url)
        already = len(sandbox.requests)

        response = await http.post(
            f"/api/flows/{created.json()['id']}/test",
            json={"eventType": EVENT, "event": time_entry(projectId=project["id"])},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        read, write = response.json()["steps"]
        assert read["sent"] is True
        assert read["response"]["status"] == 200
        assert write["sent"] is False
        assert write["request"]["body"]["description"] == f"weekly meeting / {project['name']}"
        sent = sandbox.requests[already:]
        assert [request.method for request in sent] == ["GET"]
        assert f"/projects/{project['id']}" in sent[0].path
        assert not [r for r in sent if r.method in WRITE_METHODS]
        assert await counts(database_url) == before


# --- writes for a workspace without an active installation ----------------------------------------


async def test_writes_for_a_never_installed_workspace_are_409_and_store_nothing(
    api: Api, signer: Callable[[str], TokenSigner]
) -> None:
    stranger = Workspace(signer(api.app_name))
    for method, path, body in [
        ("POST", "/api/flows", tag_meetings()),
        ("POST", "/api/bootstrap", None),
        ("POST", "/api/operations/getProject/execute", {"params": {"projectId": "p1"}}),
    ]:
        response = await api.call(method, path, body, workspace=stranger)
        assert response.status_code == 409, (method, path, response.text)
        assert "not installed in this workspace" in response.json()["detail"]
    assert await count(api.database_url, "flows") == 0
    assert await count(api.database_url, "api_calls") == 0
    # Reads still answer (empty), so the pages can say what is wrong.
    listed = await api.call("GET", "/api/flows", workspace=stranger)
    assert listed.status_code == 200
    assert listed.json()["items"] == []


async def test_writes_after_deleted_are_409_and_a_reinstall_starts_empty(api: Api) -> None:
    created = await api.create()
    ids = {"addonId": api.workspace.addon_id, "workspaceId": api.workspace.workspace_id}
    deleted = await api.clockify.lifecycle(api.workspace, "DELETED", ids)
    assert deleted.status_code == 200, deleted.text

    for method, path, body in [
        ("POST", "/api/flows", tag_meetings()),
        ("PUT", f"/api/flows/{created['id']}", tag_meetings()),
        ("DELETE", f"/api/flows/{created['id']}", None),
    ]:
        response = await api.call(method, path, body)
        assert response.status_code == 409, (method, path, response.text)
        assert "not installed in this workspace" in response.json()["detail"]
    assert await count(api.database_url, "flows") == 0

    api.workspace.addon_id = Workspace(api.workspace.signer).addon_id
    api.workspace.webhook_tokens.clear()  # a new installation, with new webhook tokens
    await api.clockify.install(api.workspace)
    assert (await api.call("GET", "/api/flows")).json()["items"] == []


async def test_rows_that_raced_the_purge_never_reach_a_reinstall(api: Api) -> None:
    created = await api.create()
    ids = {"addonId": api.workspace.addon_id, "workspaceId": api.workspace.workspace_id}
    assert (await api.clockify.lifecycle(api.workspace, "DELETED", ids)).status_code == 200
    # A write that passed the check just before DELETED commits after the purge.
    await execute(
        api.database_url,
        "INSERT INTO flows (id, addon_key, workspace_id, name, enabled, version, document,"
        " consecutive_failures, created_at, updated_at)"
        " VALUES (:id, :key, :ws, 'late', true, 1, '{}', 0, :now, :now)",
        id=created["id"] + "x",
        key=api.app_name,
        ws=api.workspace.workspace_id,
        now=datetime.now(UTC),
    )

    api.workspace.addon_id = Workspace(api.workspace.signer).addon_id
    api.workspace.webhook_tokens.clear()  # a new installation, with new webhook tokens
    await api.clockify.install(api.workspace)

    assert await count(api.database_url, "flows") == 0


async def test_writes_while_inactive_are_409_saying_so(api: Api) -> None:
    await api.create()
    ids = {"addonId": api.workspace.addon_id, "workspaceId": api.workspace.workspace_id}
    changed = await api.clockify.lifecycle(
        api.workspace, "STATUS_CHANGED", {**ids, "status": "INACTIVE"}
    )
    assert changed.status_code == 200, changed.text

    response = await api.call("POST", "/api/flows", tag_meetings())

    assert response.status_code == 409, response.text
    assert "inactive" in response.json()["detail"]
    assert await count(api.database_url, "flows") == 1
    assert (await api.call("GET", "/api/flows")).status_code == 200
