"""Custom inbound webhooks through the whole app: endpoints API, Standard Webhooks intake."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.intake.standard_webhooks import generate_secret, signature_headers
from tests.db import count, fetch_all
from tests.fake_clockify import Clockify, Workspace
from tests.harness import bearer, full_clockify

ADDON_KEY = "universal-webhook"
BASE_URL = "https://addons.example.com/uw"


@dataclass
class Harness:
    client: AsyncTestClient[Litestar]
    clockify: Clockify
    workspace: Workspace

    def auth(self, role: str = "OWNER", workspace: Workspace | None = None) -> dict[str, str]:
        token = (workspace or self.workspace).user_token(role)
        return bearer(token)

    async def create(self, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/api/endpoints", json={"name": "billing", **fields}, headers=self.auth()
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def deliver(
        self,
        endpoint: dict[str, Any],
        payload: Any,
        *,
        secret: str | None = None,
        body: bytes | None = None,
        signed_body: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
        **signing: Any,
    ) -> httpx.Response:
        """Sign `payload` with the real signer and POST it to the endpoint's path."""
        content = body if body is not None else json.dumps(payload).encode()
        headers = {
            "content-type": "application/json",
            **signature_headers(
                secret or endpoint["secret"],
                signed_body if signed_body is not None else content,
                **signing,
            ),
            **(extra_headers or {}),
        }
        path = endpoint["url"].removeprefix(BASE_URL)
        return await self.client.post(path, content=content, headers=headers)


@pytest.fixture
def make_harness(
    make_app: Callable[..., Litestar], signer: Callable[[str], Any]
) -> Callable[..., Any]:
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Harness]:
        app = make_app(ADDON_KEY, clockify_transport=full_clockify(), **overrides)
        async with AsyncTestClient(app=app) as client:
            clockify = Clockify.for_app(client, ADDON_KEY)
            workspace = Workspace(signer(ADDON_KEY))
            await clockify.install(workspace)
            yield Harness(client, clockify, workspace)

    return build


@pytest.fixture
async def harness(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness() as built:
        yield built


async def _events(database_url: str) -> list[dict[str, Any]]:
    return await fetch_all(database_url, "SELECT * FROM events ORDER BY id")


# --- the endpoints API -------------------------------------------------------------------------


async def test_an_owner_creates_an_endpoint_and_sees_its_secret_only_then(
    harness: Harness, database_url: str
) -> None:
    created = await harness.create(eventTypePath="type", rateLimitPerMinute=30)
    assert created["secret"].startswith("whsec_")
    assert created["url"] == f"{BASE_URL}/webhooks/custom/{created['id']}"
    assert len(created["id"]) >= 22  # at least 16 random bytes, url-safe
    assert created["eventTypePath"] == "type"
    assert created["rateLimitPerMinute"] == 30

    listed = await harness.client.get("/api/endpoints", headers=harness.auth("USER"))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["id"] == created["id"]
    shown = await harness.client.get(f"/api/endpoints/{created['id']}", headers=harness.auth())
    assert shown.status_code == 200
    for answer in (listed.text, shown.text):
        assert created["secret"] not in answer
        assert 'secret"' not in answer.replace("previousSecretExpiresAt", "")

    [row] = await fetch_all(database_url, "SELECT secret FROM endpoints")
    assert created["secret"] not in row["secret"]
    assert created["secret"].removeprefix("whsec_") not in row["secret"]


async def test_endpoint_ids_differ_and_lists_page_newest_first(harness: Harness) -> None:
    ids = [(await harness.create(name=f"e{i}"))["id"] for i in range(3)]
    assert len(set(ids)) == 3
    first = (await harness.client.get("/api/endpoints?limit=2", headers=harness.auth())).json()
    assert [i["id"] for i in first["items"]] == ids[::-1][:2]
    assert first["next"]
    rest = await harness.client.get(
        f"/api/endpoints?limit=2&cursor={first['next']}", headers=harness.auth()
    )
    assert [i["id"] for i in rest.json()["items"]] == [ids[0]]
    assert rest.json()["next"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "x", "eventTypePath": "a..b"}, "eventTypePath"),
        ({"name": "x", "eventTypeHeader": "bad header"}, "eventTypeHeader"),
        ({"name": "x", "eventTypeHeader": "webhook-signature"}, "eventTypeHeader"),
        ({"name": "x", "eventTypePath": "type", "eventTypeHeader": "x-type"}, "eventTypeHeader"),
        ({"name": "x", "rateLimitPerMinute": 0}, "rateLimitPerMinute"),
        ({"name": "x", "rateLimitPerMinute": True}, "rateLimitPerMinute"),
        ({"name": "x", "eventTypeJsonPath": "type"}, "eventTypeJsonPath"),
    ],
)
async def test_an_invalid_endpoint_is_refused_with_what_to_fix(
    harness: Harness, body: dict[str, Any], field: str
) -> None:
    response = await harness.client.post("/api/endpoints", json=body, headers=harness.auth())
    assert response.status_code == 422, response.text
    assert field in {error["field"] for error in response.json()["extra"]["errors"]}


async def test_a_user_role_may_read_but_not_create_rotate_or_delete(harness: Harness) -> None:
    endpoint = await harness.create()
    user = harness.auth("USER")
    created = await harness.client.post("/api/endpoints", json={"name": "x"}, headers=user)
    assert created.status_code == 403
    assert "OWNER or ADMIN" in created.json()["detail"]
    path = f"/api/endpoints/{endpoint['id']}"
    assert (await harness.client.post(f"{path}/rotate-secret", headers=user)).status_code == 403
    assert (await harness.client.delete(path, headers=user)).status_code == 403
    assert (await harness.client.get(path, headers=user)).status_code == 200
    assert (await harness.client.get("/api/endpoints")).status_code == 401


async def test_another_workspaces_endpoint_answers_404(
    harness: Harness, signer: Callable[[str], Any]
) -> None:
    endpoint = await harness.create()
    other = Workspace(signer(ADDON_KEY))
    await harness.clockify.install(other)
    theirs = harness.auth(workspace=other)
    path = f"/api/endpoints/{endpoint['id']}"
    assert (await harness.client.get(path, headers=theirs)).status_code == 404
    assert (await harness.client.delete(path, headers=theirs)).status_code == 404
    rotated = await harness.client.post(f"{path}/rotate-secret", headers=theirs)
    assert rotated.status_code == 404
    assert (await harness.client.get("/api/endpoints", headers=theirs)).json()["items"] == []
    # Untouched: the owner's endpoint still takes deliveries with its first secret.
    assert (await harness.deliver(endpoint, {"id": "1"})).status_code == 200


# --- intake: accepted --------------------------------------------------------------------------


async def test_a_signed_delivery_is_stored_as_a_custom_event(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create(eventTypePath="data.kind", rateLimitPerMinute=5)
    payload = {"id": "inv_1", "data": {"kind": "invoice.paid"}}
    response = await harness.deliver(endpoint, payload)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}
    assert response.headers["x-ratelimit-limit"] == "5"
    assert response.headers["x-ratelimit-remaining"] == "4"
    assert "x-ratelimit-reset" in response.headers
    [event] = await _events(database_url)
    assert event["source"] == "custom"
    assert event["endpoint_id"] == endpoint["id"]
    assert event["workspace_id"] == harness.workspace.workspace_id
    assert event["event_type"] == "invoice.paid"
    assert json.loads(event["payload"]) == payload
    stored_headers = json.loads(event["headers"])
    assert "webhook-signature" not in stored_headers
    assert "webhook-id" in stored_headers


async def test_the_event_type_comes_from_the_header_or_defaults_to_custom(
    harness: Harness, database_url: str
) -> None:
    by_header = await harness.create(eventTypeHeader="X-Event-Type")
    assert by_header["eventTypeHeader"] == "x-event-type"
    plain = await harness.create(name="plain")
    by_path = await harness.create(name="path", eventTypePath="type")
    sent = [
        await harness.deliver(by_header, {"n": 1}, extra_headers={"x-event-type": "order.created"}),
        await harness.deliver(by_header, {"n": 2}),
        await harness.deliver(plain, {"n": 3, "type": "ignored"}),
        await harness.deliver(by_path, {"n": 4}),
        await harness.deliver(by_path, {"n": 5, "type": "ping"}),
    ]
    assert [r.status_code for r in sent] == [200] * 5
    types = [e["event_type"] for e in await _events(database_url)]
    assert types == ["order.created", "custom", "custom", "custom", "ping"]
    wrong = await harness.deliver(by_path, {"type": {"nested": True}})
    assert wrong.status_code == 400
    assert "type" in wrong.json()["detail"]


async def test_several_signatures_pass_when_one_matches(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(
        endpoint,
        {"id": "1"},
        secret=generate_secret(),
        also_sign_with=[generate_secret(), endpoint["secret"]],
    )
    assert response.status_code == 200, response.text
    assert await count(database_url, "events") == 1


async def test_a_replayed_webhook_id_is_answered_but_stored_once(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create()
    first = await harness.deliver(endpoint, {"id": "1"}, msg_id="msg_abc")
    again = await harness.deliver(endpoint, {"id": "1"}, msg_id="msg_abc")
    altered = await harness.deliver(endpoint, {"id": "1", "x": 2}, msg_id="msg_abc")
    assert first.json() == {"status": "accepted"}
    assert again.status_code == altered.status_code == 200
    assert again.json() == altered.json() == {"status": "duplicate"}
    assert await count(database_url, "events") == 1
    other = await harness.create(name="other")
    # The same id at another endpoint is another delivery.
    assert (await harness.deliver(other, {"id": "1"}, msg_id="msg_abc")).json()["status"] == (
        "accepted"
    )


# --- intake: refused, nothing stored -----------------------------------------------------------


async def test_a_tampered_body_is_refused(harness: Harness, database_url: str) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(
        endpoint, None, body=b'{"amount": 1000}', signed_body=b'{"amount": 10}'
    )
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    assert await count(database_url, "events") == 0


async def test_a_wrong_secret_is_refused(harness: Harness, database_url: str) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(endpoint, {"id": "1"}, secret=generate_secret())
    assert response.status_code == 401
    assert await count(database_url, "events") == 0


@pytest.mark.parametrize("offset", [-330, 330, -3600])
async def test_a_stale_or_future_timestamp_is_refused(
    harness: Harness, database_url: str, offset: int
) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(endpoint, {"id": "1"}, timestamp=int(time.time()) + offset)
    assert response.status_code == 401
    assert "webhook-timestamp" in response.json()["detail"]
    assert await count(database_url, "events") == 0


@pytest.mark.parametrize("offset", [-270, 270])
async def test_a_timestamp_within_five_minutes_passes(harness: Harness, offset: int) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(endpoint, {"id": "1"}, timestamp=int(time.time()) + offset)
    assert response.status_code == 200, response.text


async def test_missing_signature_headers_are_named(harness: Harness, database_url: str) -> None:
    endpoint = await harness.create()
    response = await harness.client.post(
        endpoint["url"].removeprefix(BASE_URL),
        content=b'{"id": 1}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 401
    assert "webhook-id" in response.json()["detail"]
    assert await count(database_url, "events") == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b""])
async def test_a_body_that_is_not_a_json_object_is_refused(
    harness: Harness, database_url: str, body: bytes
) -> None:
    endpoint = await harness.create()
    response = await harness.deliver(endpoint, None, body=body)
    assert response.status_code == 400, response.text
    assert await count(database_url, "events") == 0


async def test_an_unknown_endpoint_answers_404(harness: Harness, database_url: str) -> None:
    ghost = {"url": f"{BASE_URL}/webhooks/custom/{'A' * 24}", "secret": generate_secret()}
    response = await harness.deliver(ghost, {"id": "1"})
    assert response.status_code == 404
    assert "POST /api/endpoints" in response.json()["detail"]
    odd = await harness.deliver({**ghost, "url": f"{BASE_URL}/webhooks/custom/x%20y"}, {})
    assert odd.status_code == 404
    assert await count(database_url, "events") == 0


async def test_a_deleted_endpoint_answers_404_at_once(harness: Harness, database_url: str) -> None:
    endpoint = await harness.create()
    assert (await harness.deliver(endpoint, {"id": "1"})).status_code == 200  # now cached
    deleted = await harness.client.delete(
        f"/api/endpoints/{endpoint['id']}", headers=harness.auth()
    )
    assert deleted.status_code == 204
    assert (await harness.deliver(endpoint, {"id": "2"})).status_code == 404
    assert await count(database_url, "events") == 1


async def test_an_oversize_body_gets_413(
    make_harness: Callable[..., Any], database_url: str
) -> None:
    async with make_harness(max_body_bytes=16 * 1024) as harness:
        endpoint = await harness.create()
        response = await harness.deliver(endpoint, {"blob": "x" * 17 * 1024})
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]
    assert await count(database_url, "events") == 0


async def test_over_the_rate_limit_gets_429_with_headers_and_stores_nothing(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create(rateLimitPerMinute=2)
    statuses = [(await harness.deliver(endpoint, {"n": n})).status_code for n in range(2)]
    assert statuses == [200, 200]
    refused = await harness.deliver(endpoint, {"n": 3})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit"] == "2"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) >= 1
    assert refused.json()["status_code"] == 429
    assert await count(database_url, "events") == 2
    # The limit is per endpoint.
    other = await harness.create(name="other", rateLimitPerMinute=2)
    assert (await harness.deliver(other, {"n": 4})).status_code == 200


async def test_an_inactive_installation_refuses_custom_deliveries(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create()
    workspace = harness.workspace
    changed = await harness.clockify.lifecycle(
        workspace,
        "STATUS_CHANGED",
        {
            "workspaceId": workspace.workspace_id,
            "addonId": workspace.addon_id,
            "status": "INACTIVE",
        },
    )
    assert changed.status_code == 200, changed.text
    assert (await harness.deliver(endpoint, {"id": "1"})).status_code == 409
    assert await count(database_url, "events") == 0


# --- secret rotation ---------------------------------------------------------------------------


async def test_the_previous_secret_works_during_the_grace_period_then_fails(
    make_harness: Callable[..., Any], database_url: str
) -> None:
    async with make_harness(secret_rotation_grace_seconds=1) as harness:
        endpoint = await harness.create()
        rotated = await harness.client.post(
            f"/api/endpoints/{endpoint['id']}/rotate-secret", headers=harness.auth()
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret != endpoint["secret"]
        assert rotated.json()["previousSecretExpiresAt"]
        assert (await harness.deliver(endpoint, {"n": 1})).status_code == 200
        assert (await harness.deliver(endpoint, {"n": 2}, secret=new_secret)).status_code == 200
        await asyncio.sleep(1.1)
        assert (await harness.deliver(endpoint, {"n": 3})).status_code == 401
        assert (await harness.deliver(endpoint, {"n": 4}, secret=new_secret)).status_code == 200
    assert await count(database_url, "events") == 3


async def test_without_a_grace_period_the_old_secret_fails_at_once(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(secret_rotation_grace_seconds=0) as harness:
        endpoint = await harness.create()
        assert (await harness.deliver(endpoint, {"n": 1})).status_code == 200  # now cached
        rotated = await harness.client.post(
            f"/api/endpoints/{endpoint['id']}/rotate-secret", headers=harness.auth()
        )
        assert rotated.json()["previousSecretExpiresAt"] is None
        assert (await harness.deliver(endpoint, {"n": 2})).status_code == 401
        new = await harness.deliver(endpoint, {"n": 3}, secret=rotated.json()["secret"])
        assert new.status_code == 200


# --- secrets stay secret -----------------------------------------------------------------------


async def test_secrets_never_reach_logs_or_later_answers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    endpoint = await harness.create()
    rotated = await harness.client.post(
        f"/api/endpoints/{endpoint['id']}/rotate-secret", headers=harness.auth()
    )
    secrets = [endpoint["secret"], rotated.json()["secret"]]
    await harness.deliver(endpoint, {"id": "1"}, secret=secrets[1])
    await harness.deliver(endpoint, {"id": "1"}, secret=generate_secret())
    answers = [
        (await harness.client.get("/api/endpoints", headers=harness.auth())).text,
        (await harness.client.get(f"/api/endpoints/{endpoint['id']}", headers=harness.auth())).text,
    ]
    for secret in secrets:
        key = secret.removeprefix("whsec_")
        assert key not in caplog.text
        assert all(key not in answer for answer in answers)


@pytest.mark.parametrize(("age", "status"), [(90, 200), (150, 401)])
async def test_a_short_dedupe_window_narrows_the_timestamp_tolerance(
    make_harness: Callable[..., Any], caplog: pytest.LogCaptureFixture, age: int, status: int
) -> None:
    # A replay 2 x 100 s after the first copy must still meet its dedupe key.
    async with make_harness(dedupe_window_seconds=200) as harness:
        endpoint = await harness.create()
        response = await harness.deliver(endpoint, {"id": "1"}, timestamp=int(time.time()) - age)
        assert response.status_code == status, response.text
    assert "UNIVERSAL_WEBHOOK_DEDUPE_WINDOW_SECONDS" in caplog.text


async def test_endpoints_cannot_be_created_where_the_add_on_is_not_installed(
    harness: Harness, signer: Callable[[str], Any], database_url: str
) -> None:
    stranger = Workspace(signer(ADDON_KEY))

    response = await harness.client.post(
        "/api/endpoints", json={"name": "billing"}, headers=harness.auth(workspace=stranger)
    )

    assert response.status_code == 409, response.text
    assert "not installed in this workspace" in response.json()["detail"]
    assert await count(database_url, "endpoints") == 0


async def test_an_unsigned_flood_never_blocks_a_signed_delivery(
    harness: Harness, database_url: str
) -> None:
    endpoint = await harness.create(rateLimitPerMinute=3)
    path = endpoint["url"].removeprefix(BASE_URL)
    flood = [(await harness.client.post(path, json={"n": n})).status_code for n in range(5)] + [
        (await harness.deliver(endpoint, {"n": 9}, secret=generate_secret())).status_code
    ]
    # Unsigned and wrongly signed requests spend the invalid budget only.
    assert flood == [401, 401, 401, 429, 429, 429]

    signed = await harness.deliver(endpoint, {"id": "real"})

    assert signed.status_code == 200, signed.text
    assert signed.headers["x-ratelimit-remaining"] == "2"
    assert await count(database_url, "events") == 1
