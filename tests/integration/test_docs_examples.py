"""docs/flows.md's examples run: each marked JSON block is saved or dry-run against an app.

A block preceded by `<!-- example: KIND [key=value ...] -->` is sent: `flow id=NAME` to
`POST /api/flows` (201), `dry-run flow=NAME [matched=true|false]` to
`POST /api/flows/{id}/test` of that flow example (200, `matched` as stated and no step in
error), `endpoint` to `POST /api/endpoints` (201; its id replaces `ENDPOINT_ID` in later
examples). `app=NAME` limits an example to one add-on. Every other JSON block of the docs
must at least parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from addon_core.clockify.manifest import load_manifest
from addon_core.clockify.tokens import TokenSigner
from addon_core.sandbox.workspace import Workspace
from tests.harness import bearer

DOCS = Path(__file__).resolve().parents[2] / "docs"
FLOWS = DOCS / "flows.md"
_BLOCK = re.compile(r"(?:<!-- example: ([^>]*?) -->\s*\n)?```json\n(.*?)\n```", re.DOTALL)
KINDS = ("flow", "dry-run", "endpoint")


@dataclass(frozen=True)
class Example:
    kind: str
    body: Any
    line: int
    options: dict[str, str] = field(default_factory=dict)

    def runs_on(self, app_name: str) -> bool:
        return self.options.get("app", app_name) == app_name


def read_examples(path: Path) -> Iterator[Example | None]:
    """Every JSON block of a doc: an `Example` when marked, else None (after parsing it)."""
    text = path.read_text()
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start(2)) + 1
        try:
            body = json.loads(match[2])
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name}:{line}: the JSON block does not parse ({exc})")
        if match[1] is None:
            yield None
            continue
        kind, *pairs = match[1].split()
        assert kind in KINDS, f"{path.name}:{line}: unknown example kind {kind!r}"
        yield Example(kind, body, line, dict(pair.split("=", 1) for pair in pairs))


def fake_clockify(request: httpx.Request) -> httpx.Response:
    """Clockify as the examples need it: any read answers one project."""
    if request.method == "GET":
        return httpx.Response(200, json={"id": "5f11849d4e759e12c40733d5", "name": "Meetings"})
    return httpx.Response(403, json={"message": "not in this fake", "code": 403})


@pytest.fixture
def client(
    app_name: str,
    make_app: Callable[..., Litestar],
    reference_dir: Path,
    signer: Callable[[str], TokenSigner],
) -> Iterator[tuple[TestClient[Litestar], dict[str, str]]]:
    app = make_app(
        app_name,
        clockify_openapi_file=reference_dir / "openapi.json",
        bootstrap_enabled=False,
        clockify_transport=httpx.MockTransport(fake_clockify),
    )
    workspace = Workspace(signer(app_name))
    manifest = load_manifest(app_name).render(base_url="https://addons.example.com", key=app_name)
    paths = {item["type"]: item["path"] for item in manifest["lifecycle"]}
    events = [item["event"] for item in manifest["webhooks"]]
    settings = {"outboundAllowedHosts": "hooks.example.com"}
    with TestClient(app=app) as test_client:
        lifecycle(test_client, workspace, paths["INSTALLED"], workspace.installed_body(events))
        lifecycle(
            test_client,
            workspace,
            paths["SETTINGS_UPDATED"],
            {
                "workspaceId": workspace.workspace_id,
                "addonId": workspace.addon_id,
                "settings": [{"id": k, "name": k, "value": v} for k, v in settings.items()],
            },
        )
        yield test_client, bearer(workspace.user_token("OWNER"))


def lifecycle(
    client: TestClient[Litestar], workspace: Workspace, path: str, body: dict[str, Any]
) -> None:
    answer = client.post(
        path,
        content=json.dumps(body),
        headers={
            "content-type": "application/json",
            "x-addon-lifecycle-token": workspace.lifecycle_token(),
        },
    )
    assert answer.status_code == 200, answer.text


def test_every_json_block_of_the_docs_parses() -> None:
    for path in sorted(DOCS.glob("*.md")):
        list(read_examples(path))


def test_the_flow_guide_has_examples_of_every_kind() -> None:
    examples = [example for example in read_examples(FLOWS) if example is not None]
    assert {example.kind for example in examples} == set(KINDS)
    assert sum(example.kind == "flow" for example in examples) >= 4


def test_every_flow_example_saves_and_dry_runs(
    client: tuple[TestClient[Litestar], dict[str, str]], app_name: str
) -> None:
    http, headers = client
    flows: dict[str, str] = {}
    endpoint_id = "no endpoint example came first"
    ran = 0
    for example in read_examples(FLOWS):
        if example is None or not example.runs_on(app_name):
            continue
        where = f"docs/flows.md:{example.line}"
        body = json.loads(json.dumps(example.body).replace("ENDPOINT_ID", endpoint_id))
        if example.kind == "flow":
            answer = http.post("/api/flows", json=body, headers=headers)
            assert answer.status_code == 201, f"{where}: {answer.text}"
            flows[example.options["id"]] = answer.json()["id"]
        elif example.kind == "endpoint":
            answer = http.post("/api/endpoints", json=body, headers=headers)
            assert answer.status_code == 201, f"{where}: {answer.text}"
            endpoint_id = answer.json()["id"]
        else:
            flow_id = flows.get(example.options.get("flow", ""))
            assert flow_id is not None, f"{where}: name a flow example above with flow=ID"
            answer = http.post(f"/api/flows/{flow_id}/test", json=body, headers=headers)
            assert answer.status_code == 200, f"{where}: {answer.text}"
            expected = example.options.get("matched")
            if expected is not None:
                result = answer.json()
                assert result["matched"] is (expected == "true"), f"{where}: {result}"
                assert not [step for step in result["steps"] if "error" in step], where
        ran += 1
    assert ran >= 4
    assert_error_example(http, headers)


def assert_error_example(http: TestClient[Litestar], headers: dict[str, str]) -> None:
    """docs/api.md's error example is what a flow with that typo is answered."""
    block = _BLOCK.search((DOCS / "api.md").read_text())
    assert block is not None, "docs/api.md has no JSON error example"
    shown = json.loads(block[2])
    flow = {"name": "Typo", "trigger": {"source": "clockify", "events": ["NEW_PROJEKT"]}}
    answer = http.post("/api/flows", json=flow, headers=headers)
    assert answer.json() == shown
