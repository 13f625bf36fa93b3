"""Schemathesis against each app's own OpenAPI document: no 5xx, answers as documented.

Every operation of `/schema/openapi.json` is called with data that fits its schema and
with data that does not, as an OWNER of an installed workspace, with Clockify faked by a
transport. Some cases are pointed at objects that exist (a flow, an event, an endpoint,
an explorer call), so the fuzzing reaches past the 404s too. Bounded: `MAX_EXAMPLES` per
operation and mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from addon_core.clockify.manifest import load_manifest
from addon_core.clockify.tokens import TokenSigner
from addon_core.sandbox.workspace import Workspace
from tests.harness import bearer

MAX_EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EVENT = "NEW_TIME_ENTRY"
FLOW = {
    "name": "Tag meetings",
    "trigger": {"source": "clockify", "events": [EVENT]},
    "conditions": {"rules": [{"path": "event.description", "op": "contains", "value": "x"}]},
    "actions": [
        {
            "id": "project",
            "type": "clockify",
            "operation": "getProject",
            "params": {"projectId": "{{ event.projectId }}"},
        }
    ],
}


def fake_clockify(request: httpx.Request) -> httpx.Response:
    """A Clockify that answers every read with one object and refuses every write."""
    if request.method == "GET":
        return httpx.Response(200, json={"id": "5f11849d4e759e12c40733d5", "name": "Meetings"})
    return httpx.Response(403, json={"message": "not in this fake", "code": 403})


@dataclass
class Target:
    """A running app, its document, the caller's headers and ids of objects that exist."""

    client: TestClient[Litestar]
    document: dict[str, Any]
    headers: dict[str, str]
    known: dict[str, Any]


@pytest.fixture
def target(
    app_name: str,
    make_app: Callable[..., Litestar],
    reference_dir: Path,
    signer: Callable[[str], TokenSigner],
) -> Iterator[Target]:
    app = make_app(
        app_name,
        clockify_openapi_file=reference_dir / "openapi.json",
        bootstrap_enabled=False,
        clockify_retry_attempts=1,
        clockify_transport=httpx.MockTransport(fake_clockify),
    )
    workspace = Workspace(signer(app_name))
    with TestClient(app=app) as client:
        install(client, app_name, workspace)
        headers = bearer(workspace.user_token("OWNER"))
        document = client.get("/schema/openapi.json").json()
        yield Target(client, document, headers, seed(client, app_name, workspace, headers))


def install(client: TestClient[Litestar], app_name: str, workspace: Workspace) -> None:
    manifest = load_manifest(app_name).render(base_url="https://addons.example.com", key=app_name)
    path = next(item["path"] for item in manifest["lifecycle"] if item["type"] == "INSTALLED")
    events = [item["event"] for item in manifest["webhooks"]]
    answer = client.post(
        path,
        content=json.dumps(workspace.installed_body(events)),
        headers={
            "content-type": "application/json",
            "x-addon-lifecycle-token": workspace.lifecycle_token(),
        },
    )
    assert answer.status_code == 200, answer.text


def seed(
    client: TestClient[Litestar], app_name: str, workspace: Workspace, headers: dict[str, str]
) -> dict[str, Any]:
    """Make one of each object the API shows, and return their ids by path parameter."""
    flow = client.post("/api/flows", json=FLOW, headers=headers)
    assert flow.status_code == 201, flow.text
    hook = client.post(
        "/webhooks/clockify/new-time-entry",
        content=json.dumps({"id": "5f118c837db7a8637ffcaf36", "description": "x"}),
        headers={
            "content-type": "application/json",
            "clockify-webhook-event-type": EVENT,
            "clockify-signature": workspace.webhook_token(EVENT),
        },
    )
    assert hook.status_code == 200, hook.text
    event = client.get("/api/events", headers=headers).json()["items"][0]
    call = client.post(
        "/api/operations/getProject/execute",
        json={"params": {"projectId": "5f11849d4e759e12c40733d5"}},
        headers=headers,
    )
    assert call.status_code == 200, call.text
    known = {
        "flow_id": flow.json()["id"],
        "version": 1,
        "event_id": event["id"],
        "call_id": call.json()["callId"],
        "operation_id": "getProject",
    }
    if app_name == "universal-webhook":
        endpoint = client.post("/api/endpoints", json={"name": "Billing"}, headers=headers)
        assert endpoint.status_code == 201, endpoint.text
        known["endpoint_id"] = endpoint.json()["id"]
    return known


def send(target: Target, case: schemathesis.Case) -> httpx.Response:
    """Send a generated case through the app's test client, as the installed OWNER."""
    sent = case.as_transport_kwargs(base_url="http://testserver.local", headers=target.headers)
    # Negative cases may mangle the declared bearer header: the caller stays the OWNER.
    headers = {**sent.get("headers", {}), **target.headers}
    content = sent.get("data")
    if "json" in sent:
        content = json.dumps(sent["json"])
    return target.client.request(
        sent["method"],
        sent["url"],
        params=sent.get("params"),
        headers=headers,
        content=content,
    )


def fuzz(target: Target, operation: Any, mode: GenerationMode) -> None:
    """Run one operation's cases in one mode; a failing check raises with the case."""
    names = [parameter["name"] for parameter in operation.definition.raw.get("parameters", [])]
    # Deleting the seeded objects would leave later operations nothing to reach.
    reachable = {name: target.known[name] for name in names if name in target.known}
    use_known = st.booleans() if reachable and operation.method != "delete" else st.just(False)

    @given(case=operation.as_strategy(generation_mode=mode), known=use_known)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case, known: bool) -> None:
        if known:
            case.path_parameters = {**(case.path_parameters or {}), **reachable}
        response = send(target, case)
        case.validate_response(response, checks=CHECKS, headers=target.headers)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_a_server_error_or_off_document(
    target: Target, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(target.document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(item) for item in target.document["paths"].values())
    for operation in operations:
        fuzz(target, operation, mode)
