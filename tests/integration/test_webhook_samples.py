"""Every example payload of Clockify's 50 webhook events, delivered to the apps on its path.

The samples are `webhook-samples.json` of the reference data. A manifest may list 10
webhooks, so the apps are also built with manifests that subscribe, ten at a time, to
every event type Clockify knows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES, webhook_path
from addon_core.clockify.manifest import MAX_MANIFEST_WEBHOOKS, Manifest, load_manifest
from addon_core.clockify.tokens import TokenSigner
from tests.db import count, fetch_all
from tests.fake_clockify import Clockify, Workspace

BASE_URL = "https://addons.example.com/uw"
KNOWN_EVENTS = sorted(CLOCKIFY_EVENT_TYPES)
CHUNKS = [
    KNOWN_EVENTS[i : i + MAX_MANIFEST_WEBHOOKS]
    for i in range(0, len(KNOWN_EVENTS), MAX_MANIFEST_WEBHOOKS)
]
SampleSet = dict[str, dict[str, Any]]


@pytest.fixture
def serve(
    make_app: Callable[..., Litestar],
) -> Callable[..., Any]:
    """Run an app (optionally with a custom manifest) and wrap it in the fake Clockify."""

    @asynccontextmanager
    async def build(app_name: str, manifest: Manifest | None = None) -> AsyncIterator[Clockify]:
        manifest = manifest or load_manifest(app_name)
        async with AsyncTestClient(app=make_app(app_name, manifest=manifest)) as client:
            yield Clockify(client, manifest.render(base_url=BASE_URL, key=app_name))

    return build


def _manifest_with_webhooks(app_name: str, events: list[str]) -> Manifest:
    template = dict(load_manifest(app_name).template)
    template["webhooks"] = [{"event": e, "path": webhook_path(e)} for e in events]
    manifest = Manifest(template)
    assert manifest.check_rules() == []
    return manifest


def _workspaces_for(
    samples: SampleSet, events: list[str], signer: TokenSigner
) -> tuple[dict[str, Workspace], Workspace]:
    """One workspace per sample workspaceId, and one for the samples that carry none."""
    by_id: dict[str, Workspace] = {}
    for event in events:
        workspace_id = samples[event].get("workspaceId")
        if isinstance(workspace_id, str) and workspace_id not in by_id:
            by_id[workspace_id] = Workspace(signer, workspace_id=workspace_id)
    return by_id, Workspace(signer)


async def _deliver_samples(
    clockify: Clockify,
    samples: SampleSet,
    events: list[str],
    signer: TokenSigner,
    database_url: str,
) -> None:
    """Install the workspaces the samples name, then deliver each sample twice."""
    by_id, anonymous = _workspaces_for(samples, events, signer)
    for workspace in [*by_id.values(), anonymous]:
        await clockify.install(workspace)
    for event in events:
        payload = samples[event]
        workspace = by_id.get(payload.get("workspaceId", ""), anonymous)

        first = await clockify.send_webhook(workspace, event, payload)
        again = await clockify.send_webhook(workspace, event, payload)

        assert first.status_code == 200, (event, first.text)
        assert first.json() == {"status": "accepted"}, event
        assert again.status_code == 200, (event, again.text)
        assert again.json() == {"status": "duplicate"}, event
        rows = await fetch_all(
            database_url,
            "SELECT workspace_id, payload FROM events WHERE event_type = :e",
            e=event,
        )
        assert len(rows) == 1, event
        assert rows[0]["workspace_id"] == workspace.workspace_id, event
        assert json.loads(rows[0]["payload"]) == payload, event
        if "workspaceId" not in payload:
            assert rows[0]["workspace_id"] == anonymous.workspace_id, event


async def test_samples_of_the_manifest_events_are_accepted_on_their_paths(
    app_name: str,
    serve: Callable[..., Any],
    signer: Callable[[str], TokenSigner],
    webhook_samples: SampleSet,
    database_url: str,
) -> None:
    manifest = load_manifest(app_name)
    events = [e for e in manifest.webhook_events.values() if e in webhook_samples]
    assert len(events) == len(manifest.webhook_events) == MAX_MANIFEST_WEBHOOKS

    async with serve(app_name) as clockify:
        await _deliver_samples(clockify, webhook_samples, events, signer(app_name), database_url)

    assert await count(database_url, "events") == len(events)


def test_the_chunks_cover_every_known_event_type_within_the_manifest_cap() -> None:
    assert sorted(e for chunk in CHUNKS for e in chunk) == KNOWN_EVENTS
    assert all(1 <= len(chunk) <= MAX_MANIFEST_WEBHOOKS for chunk in CHUNKS)


@pytest.mark.parametrize("chunk", CHUNKS, ids=[f"{c[0]}..{c[-1]}" for c in CHUNKS])
async def test_every_sample_of_a_known_event_type_is_accepted_and_stored_once(
    app_name: str,
    serve: Callable[..., Any],
    signer: Callable[[str], TokenSigner],
    webhook_samples: SampleSet,
    database_url: str,
    chunk: list[str],
) -> None:
    events = [e for e in chunk if e in webhook_samples]
    manifest = _manifest_with_webhooks(app_name, chunk)

    async with serve(app_name, manifest) as clockify:
        await _deliver_samples(clockify, webhook_samples, events, signer(app_name), database_url)

    assert await count(database_url, "events") == len(events)


def test_every_sample_is_of_a_known_event_type_but_the_documented_exception(
    webhook_samples: SampleSet,
) -> None:
    assert len(webhook_samples) == 50
    # TIME_ENTRY_BATCH_DELETED has a sample but is in no manifest schema nor the OpenAPI enum.
    assert sorted(set(webhook_samples) - CLOCKIFY_EVENT_TYPES) == ["TIME_ENTRY_BATCH_DELETED"]


async def test_sample_of_an_unknown_event_type_is_answered_404_and_not_stored(
    app_name: str,
    serve: Callable[..., Any],
    signer: Callable[[str], TokenSigner],
    webhook_samples: SampleSet,
    database_url: str,
) -> None:
    unknown = sorted(set(webhook_samples) - CLOCKIFY_EVENT_TYPES)
    workspace = Workspace(signer(app_name))

    async with serve(app_name) as clockify:
        await clockify.install(workspace)
        for event in unknown:
            token = workspace.webhook_token("NEW_TIME_ENTRY")
            response = await clockify.send_webhook(
                workspace, event, webhook_samples[event], token=token
            )

            assert response.status_code == 404, (event, response.text)
            assert response.json()["status_code"] == 404
            assert webhook_path(event) in response.json()["detail"]

    assert await count(database_url, "events") == 0
