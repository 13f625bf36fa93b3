"""Clockify webhook intake through the whole app: what is refused, what is stored, and how often."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES, webhook_path
from addon_core.clockify.tokens import TokenSigner
from tests.db import count, fetch_all
from tests.fake_clockify import Clockify, Workspace, object_id, post_concurrently
from tests.harness import assert_refused

ADDON_KEY = "universal-webhook"
EVENT = "NEW_TIME_ENTRY"


# --- helpers -------------------------------------------------------------------------------


def _time_entry(workspace: Workspace, entry_id: str = "te1") -> dict[str, Any]:
    return {"id": entry_id, "workspaceId": workspace.workspace_id, "description": "meeting"}


async def _events(database_url: str) -> list[dict[str, Any]]:
    return await fetch_all(database_url, "SELECT * FROM events ORDER BY id")


def _segment(value: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=")


def _unsigned_jwt(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """Build a JWT by hand, for algorithms PyJWT refuses to produce (none, HS256 with a PEM)."""
    signing_input = _segment(header) + b"." + _segment(claims)
    signature = b""
    if secret is not None:
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        signature = base64.urlsafe_b64encode(mac).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


def _clockify_claims(workspace: Workspace, **override: Any) -> dict[str, Any]:
    return {
        "iss": "clockify",
        "type": "addon",
        "sub": ADDON_KEY,
        "workspaceId": workspace.workspace_id,
        "addonId": workspace.addon_id,
        "iat": int(time.time()),
        "eventType": EVENT,
        **override,
    }


@pytest.fixture
def make_client(
    make_app: Callable[..., Litestar],
) -> Callable[..., Any]:
    """An app built with custom settings, running, wrapped in the fake Clockify."""

    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Clockify]:
        async with AsyncTestClient(app=make_app(ADDON_KEY, **overrides)) as test_client:
            yield Clockify.for_app(test_client, ADDON_KEY)

    return build


def _in_app_loop(client: AsyncTestClient[Litestar], function: Any, *args: Any) -> Any:
    """Run `function(app, *args)` on the event loop the app and its intake writer run on.

    AsyncTestClient serves each request synchronously through its blocking portal, so
    requests gathered on the test's loop reach the app one after the other, and the app
    cannot be called on the test's loop.
    """
    return client.blocking_portal.call(function, client.app, *args)


def _delivery(
    workspace: Workspace, event: str, payload: dict[str, Any]
) -> tuple[str, bytes, dict[str, str]]:
    headers = {
        "content-type": "application/json",
        "clockify-webhook-event-type": event,
        "clockify-signature": workspace.webhook_token(event),
    }
    return webhook_path(event), json.dumps(payload).encode(), headers


async def _post_chunked(
    app: Any, path: str, headers: dict[str, str], chunks: list[bytes]
) -> tuple[int, bytes]:
    """POST a body in several ASGI messages and no Content-Length, as a chunked upload arrives.

    The test client always sends one message with a Content-Length.
    """
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that waits for the answer
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), body


def _metric_value(text: str, name: str) -> float:
    """The sum of every sample called `name` in a Prometheus text exposition."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


def _metric_samples(text: str, name: str) -> list[dict[str, str]]:
    """The label sets of every sample called `name` in a Prometheus text exposition."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.value > 0:
                found.append(dict(sample.labels))
    return found


# --- malformed requests --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param(b'{"id": "te1", ', "not valid JSON", id="malformed-json"),
        pytest.param(b"[1, 2, 3]", "must be a JSON object", id="json-array"),
        pytest.param(b'"a string"', "must be a JSON object", id="json-string"),
        pytest.param(b"", "empty", id="empty-body"),
        pytest.param(b'{"id": "\xff\xfe"}', "not valid JSON", id="not-utf8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "JSON", id="too-deep"),
    ],
)
async def test_webhook_body_that_is_not_a_json_object_is_rejected_with_400(
    clockify: Clockify, workspace: Workspace, database_url: str, body: bytes, detail: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(workspace, EVENT, body)

    assert_refused(response, 400, detail)
    assert await count(database_url, "events") == 0


async def test_webhook_body_over_the_limit_is_rejected_with_413(
    clockify: Clockify,
    make_client: Callable[..., Any],
    workspace: Workspace,
    database_url: str,
) -> None:
    # Installed through an app with the default limit: an INSTALLED body is larger than 2 KiB.
    await clockify.install(workspace)
    async with make_client(max_body_bytes=2048) as limited:
        payload = {**_time_entry(workspace), "description": "x" * 4096}
        assert len(json.dumps(payload)) > 4096

        response = await limited.send_webhook(workspace, EVENT, payload)
        assert await count(database_url, "events") == 0
        within = await limited.send_webhook(workspace, EVENT, _time_entry(workspace, "small"))

    assert_refused(response, 413, "limit")
    assert within.status_code == 200, within.text
    assert within.json() == {"status": "accepted"}
    [row] = await _events(database_url)
    assert json.loads(row["payload"])["id"] == "small"


async def test_webhook_whose_content_length_claims_more_than_the_limit_is_rejected_with_413(
    clockify: Clockify,
    make_client: Callable[..., Any],
    workspace: Workspace,
    database_url: str,
) -> None:
    # Installed through an app with the default limit: an INSTALLED body is larger than 2 KiB.
    await clockify.install(workspace)
    async with make_client(max_body_bytes=2048) as limited:
        body = json.dumps(_time_entry(workspace)).encode()

        response = await limited.client.post(
            webhook_path(EVENT),
            content=body,
            headers={
                "content-type": "application/json",
                "content-length": str(10 * 1024 * 1024),
                "clockify-webhook-event-type": EVENT,
                "clockify-signature": workspace.webhook_token(EVENT),
            },
        )

    assert_refused(response, 413, "limit")
    assert await count(database_url, "events") == 0


async def test_streamed_webhook_body_over_the_limit_is_rejected_with_413(
    clockify: Clockify,
    make_client: Callable[..., Any],
    workspace: Workspace,
    database_url: str,
) -> None:
    chunks = [b'{"id": "te1", "description": "', *([b"x" * 512] * 8), b'"}']
    headers = {
        "content-type": "application/json",
        "clockify-webhook-event-type": EVENT,
        "clockify-signature": workspace.webhook_token(EVENT),
    }

    # Installed through an app with the default limit: an INSTALLED body is larger than 2 KiB.
    await clockify.install(workspace)
    async with make_client(max_body_bytes=2048) as limited:
        status, body = _in_app_loop(
            limited.client, _post_chunked, webhook_path(EVENT), headers, chunks
        )
        assert await count(database_url, "events") == 0
        small = [b'{"id": "small", ', b'"description": "', b"x" * 512, b'"}']
        within = _in_app_loop(limited.client, _post_chunked, webhook_path(EVENT), headers, small)

    assert status == 413, body
    assert json.loads(body)["status_code"] == 413
    assert json.loads(body)["detail"]
    assert within == (200, b'{"status":"accepted"}')
    [row] = await _events(database_url)
    assert json.loads(row["payload"])["id"] == "small"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_webhook_with_non_json_content_type_is_rejected_with_415(
    clockify: Clockify, workspace: Workspace, database_url: str, content_type: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(
        workspace, EVENT, _time_entry(workspace), content_type=content_type
    )

    assert_refused(response, 415, "application/json", content_type)
    assert await count(database_url, "events") == 0


# --- signatures ----------------------------------------------------------------------------


async def test_webhook_without_signature_is_rejected_with_401(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(workspace, EVENT, _time_entry(workspace), token="")

    assert_refused(response, 401, "missing")
    assert await count(database_url, "events") == 0


@pytest.fixture
def public_key_pem(public_key_file: Path) -> bytes:
    """The verifying key, which is public: a forger may hold it."""
    return public_key_file.read_bytes()


@dataclass(frozen=True)
class Forgery:
    """Everything a forged delivery may need: the workspace and the keys a forger could hold."""

    workspace: Workspace
    signer: Callable[[str], TokenSigner]
    public_key_pem: bytes
    other_workspace: Workspace


def _alg_none(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return _unsigned_jwt({"alg": "none", "typ": "JWT"}, _clockify_claims(f.workspace), None), None


def _hs256_public_key(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    header = {"alg": "HS256", "typ": "JWT"}
    return _unsigned_jwt(header, _clockify_claims(f.workspace), f.public_key_pem), None


def _other_rsa_key(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return TokenSigner(key, ADDON_KEY).sign(_clockify_claims(f.workspace)), None


def _expired(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    now = int(time.time())
    claims = _clockify_claims(f.workspace, iat=now - 7200, exp=now - 3600)
    return f.signer(ADDON_KEY).sign(claims), None


def _wrong_issuer(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.signer(ADDON_KEY).sign(_clockify_claims(f.workspace, iss="not-clockify")), None


def _wrong_type(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.signer(ADDON_KEY).sign(_clockify_claims(f.workspace, type="user")), None


def _wrong_subject(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.signer(ADDON_KEY).sign(_clockify_claims(f.workspace, sub="api-studio")), None


def _not_a_jwt(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return "not-a-token", None


def _tampered_payload(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    header, _, signature = f.workspace.webhook_token(EVENT).split(".")
    claims = _segment(_clockify_claims(f.other_workspace)).decode()
    return f"{header}.{claims}.{signature}", None


def _body_for_other_workspace(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.workspace.webhook_token(EVENT), _time_entry(f.other_workspace)


def _token_of_other_workspace(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    # The other workspace is installed too: its genuine token may not speak for this body.
    return f.other_workspace.webhook_token(EVENT), None


def _other_addon_id(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    token = f.signer(ADDON_KEY).token(f.workspace.workspace_id, object_id(), eventType=EVENT)
    return token, None


def _other_events_token(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.workspace.webhook_token("NEW_PROJECT"), None


def _fresh_token_not_stored(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    token = f.signer(ADDON_KEY).token(
        f.workspace.workspace_id, f.workspace.addon_id, eventType=EVENT, jti=object_id()
    )
    assert token != f.workspace.webhook_token(EVENT)
    return token, None


def _installation_token(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.workspace.installation_token(), None


def _lifecycle_token(f: Forgery) -> tuple[str, dict[str, Any] | None]:
    return f.workspace.lifecycle_token(), None


@pytest.mark.parametrize(
    ("forge", "status", "detail"),
    [
        pytest.param(_alg_none, 401, "rs256", id="alg-none"),
        pytest.param(_hs256_public_key, 401, "rs256", id="hs256-with-public-key-as-secret"),
        pytest.param(_other_rsa_key, 401, "signature", id="another-rsa-key"),
        pytest.param(_tampered_payload, 401, "signature", id="claims-swapped-under-signature"),
        pytest.param(_expired, 401, "expired", id="expired"),
        pytest.param(_wrong_issuer, 401, "issuer", id="wrong-iss"),
        pytest.param(_wrong_type, 401, "type", id="wrong-type"),
        pytest.param(_wrong_subject, 401, "another add-on", id="wrong-sub"),
        pytest.param(_not_a_jwt, 401, "jwt", id="not-a-jwt"),
        pytest.param(_body_for_other_workspace, 403, "workspaceid", id="body-of-other-workspace"),
        pytest.param(_token_of_other_workspace, 403, "workspaceid", id="token-of-other-workspace"),
        pytest.param(_other_addon_id, 403, "addonid", id="wrong-addon-id"),
        pytest.param(_other_events_token, 403, "token clockify issued", id="other-events-token"),
        pytest.param(_fresh_token_not_stored, 403, "token clockify issued", id="not-stored-token"),
        pytest.param(_installation_token, 403, "token clockify issued", id="installation-token"),
        pytest.param(_lifecycle_token, 403, "token clockify issued", id="lifecycle-token"),
    ],
)
async def test_forged_webhook_token_is_refused_and_nothing_stored(
    clockify: Clockify,
    workspace: Workspace,
    fresh_workspace: Callable[[], Workspace],
    signer: Callable[[str], TokenSigner],
    public_key_pem: bytes,
    database_url: str,
    forge: Callable[[Forgery], tuple[str, dict[str, Any] | None]],
    status: int,
    detail: str,
) -> None:
    other = fresh_workspace()
    await clockify.install(workspace)
    await clockify.install(other)
    forgery = Forgery(workspace, signer, public_key_pem, other)
    token, payload = forge(forgery)

    response = await clockify.send_webhook(
        workspace, EVENT, payload or _time_entry(workspace), token=token
    )

    assert detail in assert_refused(response, status)["detail"].lower()
    assert await count(database_url, "events") == 0


async def test_event_type_header_not_matching_the_path_is_forbidden(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(
        workspace, EVENT, _time_entry(workspace), event_header="TIME_ENTRY_DELETED"
    )

    assert_refused(response, 403, "clockify-webhook-event-type", EVENT)
    assert await count(database_url, "events") == 0


async def test_missing_event_type_header_is_forbidden(
    client: AsyncTestClient[Litestar], clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)

    response = await client.post(
        webhook_path(EVENT),
        content=json.dumps(_time_entry(workspace)),
        headers={
            "content-type": "application/json",
            "clockify-signature": workspace.webhook_token(EVENT),
        },
    )

    assert_refused(response, 403, "clockify-webhook-event-type")
    assert await count(database_url, "events") == 0


@pytest.mark.parametrize(
    "slug", ["not-a-clockify-event", "time-entry-batch-deleted", "NEW_TIME_ENTRY"]
)
async def test_unknown_event_slug_is_answered_404(
    clockify: Clockify, workspace: Workspace, database_url: str, slug: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(
        workspace, EVENT, _time_entry(workspace), path=f"/webhooks/clockify/{slug}"
    )

    assert_refused(response, 404, slug)
    assert await count(database_url, "events") == 0


async def test_webhook_for_a_workspace_not_installed_is_a_conflict(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    response = await clockify.send_webhook(workspace, EVENT, _time_entry(workspace))

    assert_refused(response, 409, "no installation", workspace.workspace_id)
    assert await count(database_url, "events") == 0


async def test_event_not_subscribed_at_install_is_refused(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    # CLIENT_DELETED is a Clockify event, but the manifest does not subscribe to it.
    await clockify.install(workspace)
    token = workspace.signer.token(
        workspace.workspace_id, workspace.addon_id, eventType="CLIENT_DELETED"
    )

    response = await clockify.send_webhook(
        workspace,
        "CLIENT_DELETED",
        {"id": "c1", "workspaceId": workspace.workspace_id},
        token=token,
    )

    assert "token clockify issued" in assert_refused(response, 403)["detail"].lower()
    assert await count(database_url, "events") == 0


# --- what is stored ------------------------------------------------------------------------


async def test_payload_without_workspace_id_is_stored_under_the_tokens_workspace(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    payload = {"id": "u1", "email": "joiner@example.com", "name": "Joiner"}

    response = await clockify.send_webhook(workspace, "USER_JOINED_WORKSPACE", payload)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}
    [row] = await _events(database_url)
    assert row["workspace_id"] == workspace.workspace_id
    assert row["event_type"] == "USER_JOINED_WORKSPACE"
    assert json.loads(row["payload"]) == payload


async def test_stored_event_keeps_the_exact_body_and_no_credential_header(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    token = workspace.webhook_token(EVENT)
    body = b'{"id":"te1",  "workspaceId":"%s", "description":"caf\\u00e9"}' % (
        workspace.workspace_id.encode()
    )

    response = await clockify.send_webhook(workspace, EVENT, body)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}
    [row] = await _events(database_url)
    assert row["payload"] == body.decode()
    assert row["source"] == "clockify"
    headers = json.loads(row["headers"])
    assert "clockify-signature" not in {key.lower() for key in headers}
    assert headers["clockify-webhook-event-type"] == EVENT
    assert token not in row["headers"]
    assert token not in row["payload"]


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json"]
)
async def test_json_content_type_with_parameters_or_any_case_is_accepted(
    clockify: Clockify, workspace: Workspace, database_url: str, content_type: str
) -> None:
    await clockify.install(workspace)

    response = await clockify.send_webhook(
        workspace, EVENT, _time_entry(workspace), content_type=content_type
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted"}
    assert await count(database_url, "events") == 1


async def test_identical_redelivery_is_answered_duplicate_and_stored_once(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    payload = _time_entry(workspace)

    first = await clockify.send_webhook(workspace, EVENT, payload)
    second = await clockify.send_webhook(workspace, EVENT, payload)
    third = await clockify.send_webhook(workspace, EVENT, payload)

    assert first.status_code == 200, first.text
    assert first.json() == {"status": "accepted"}
    assert second.status_code == 200, second.text
    assert second.json() == {"status": "duplicate"}
    assert third.json() == {"status": "duplicate"}
    assert await count(database_url, "events") == 1


async def test_a_redelivery_after_uninstall_is_refused_and_after_reinstall_is_stored(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    # The process remembers the keys it stored lately: a lifecycle call must make it ask
    # the database again, and a reinstall's new tokens never match the remembered ones.
    await clockify.install(workspace)
    payload = _time_entry(workspace)
    assert (await clockify.send_webhook(workspace, EVENT, payload)).json()["status"] == "accepted"

    deleted = {
        "addonId": workspace.addon_id,
        "workspaceId": workspace.workspace_id,
        "asUser": workspace.owner_id,
    }
    assert (await clockify.lifecycle(workspace, "DELETED", deleted)).status_code == 200
    refused = await clockify.send_webhook(workspace, EVENT, payload)
    await clockify.install(workspace, iat=time.time() + 5)  # issued after the DELETED
    again = await clockify.send_webhook(workspace, EVENT, payload)

    assert refused.status_code == 409, refused.text
    assert again.json() == {"status": "accepted"}
    assert await count(database_url, "events") == 1  # the first went with the uninstall


async def test_same_body_after_the_dedupe_window_is_a_new_event(
    make_client: Callable[..., Any], workspace: Workspace, database_url: str
) -> None:
    # Most payloads carry no change time: a tag renamed A -> B -> A sends A's body twice.
    payload = _time_entry(workspace)
    async with make_client(dedupe_window_seconds=1) as clockify:
        await clockify.install(workspace)
        first = await clockify.send_webhook(workspace, EVENT, payload)
        within = await clockify.send_webhook(workspace, EVENT, payload)
        await asyncio.sleep(1.2)
        after = await clockify.send_webhook(workspace, EVENT, payload)

    assert [r.json()["status"] for r in (first, within, after)] == [
        "accepted",
        "duplicate",
        "accepted",
    ]
    assert await count(database_url, "events") == 2


async def test_concurrent_identical_redeliveries_are_stored_once(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    payload = _time_entry(workspace)

    responses = post_concurrently(clockify.client, [_delivery(workspace, EVENT, payload)] * 10)

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    outcomes = sorted(r.json()["status"] for r in responses)
    assert outcomes == ["accepted"] + ["duplicate"] * 9
    assert await count(database_url, "events") == 1


async def test_same_body_for_two_workspaces_is_stored_for_each(
    clockify: Clockify,
    workspace: Workspace,
    fresh_workspace: Callable[[], Workspace],
    database_url: str,
) -> None:
    other = fresh_workspace()
    await clockify.install(workspace)
    await clockify.install(other)
    payload = {"id": "u1", "email": "joiner@example.com", "name": "Joiner"}

    first = await clockify.send_webhook(workspace, "USER_JOINED_WORKSPACE", payload)
    second = await clockify.send_webhook(other, "USER_JOINED_WORKSPACE", payload)

    assert first.json() == {"status": "accepted"}
    assert second.json() == {"status": "accepted"}
    rows = await _events(database_url)
    assert sorted(r["workspace_id"] for r in rows) == sorted(
        [workspace.workspace_id, other.workspace_id]
    )


async def test_same_body_for_two_event_types_is_stored_for_each(
    clockify: Clockify, workspace: Workspace, database_url: str
) -> None:
    await clockify.install(workspace)
    payload = _time_entry(workspace)

    first = await clockify.send_webhook(workspace, "NEW_TIME_ENTRY", payload)
    second = await clockify.send_webhook(workspace, "TIME_ENTRY_UPDATED", payload)

    assert first.json() == {"status": "accepted"}
    assert second.json() == {"status": "accepted"}
    rows = await _events(database_url)
    assert sorted(r["event_type"] for r in rows) == ["NEW_TIME_ENTRY", "TIME_ENTRY_UPDATED"]


async def test_fifty_concurrent_distinct_deliveries_are_all_accepted_and_stored(
    clockify: Clockify,
    workspace: Workspace,
    fresh_workspace: Callable[[], Workspace],
    database_url: str,
) -> None:
    workspaces = [workspace, fresh_workspace()]
    for ws in workspaces:
        await clockify.install(ws)
    events = [EVENT, "TIME_ENTRY_UPDATED"]
    deliveries = [
        (ws, events[i % 2], _time_entry(ws, f"te{i}")) for i in range(25) for ws in workspaces
    ]
    assert len(deliveries) == 50

    responses = post_concurrently(
        clockify.client,
        [_delivery(ws, event, payload) for ws, event, payload in deliveries],
    )

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    assert [r.json() for r in responses] == [{"status": "accepted"}] * 50
    rows = await _events(database_url)
    assert len(rows) == 50
    stored = {(r["workspace_id"], r["event_type"], json.loads(r["payload"])["id"]) for r in rows}
    assert stored == {(ws.workspace_id, e, p["id"]) for ws, e, p in deliveries}
    # They did arrive together: the intake committed them in fewer transactions than deliveries.
    metrics = (await clockify.client.get("/metrics")).text
    assert 1 <= _metric_value(metrics, "addon_intake_batch_size_count") < 50


# --- metrics -------------------------------------------------------------------------------


async def test_metrics_count_accepted_duplicate_and_rejected_deliveries(
    client: AsyncTestClient[Litestar], clockify: Clockify, workspace: Workspace
) -> None:
    await clockify.install(workspace)
    payload = _time_entry(workspace)
    accepted = await clockify.send_webhook(workspace, EVENT, payload)
    duplicate = await clockify.send_webhook(workspace, EVENT, payload)
    rejected = await clockify.send_webhook(workspace, EVENT, payload, token="not-a-token")
    assert [accepted.status_code, duplicate.status_code, rejected.status_code] == [200, 200, 401]

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    webhooks = _metric_samples(response.text, "addon_webhooks_total")
    for outcome in ("accepted", "duplicate", "rejected"):
        assert {"addon": ADDON_KEY, "event_type": EVENT, "outcome": outcome} in webhooks
    failures = _metric_samples(response.text, "addon_token_verification_failures_total")
    assert failures
    assert all(f["addon"] == ADDON_KEY and f["reason"] for f in failures)
    assert {"addon": ADDON_KEY, "kind": "webhook", "reason": "malformed"} in failures


async def test_unknown_event_slug_never_becomes_a_metric_label(
    client: AsyncTestClient[Litestar], clockify: Clockify, workspace: Workspace
) -> None:
    await clockify.install(workspace)
    for slug in ("made-up-event-xyz", "time-entry-batch-deleted"):
        response = await clockify.send_webhook(
            workspace, EVENT, _time_entry(workspace), path=f"/webhooks/clockify/{slug}"
        )
        assert response.status_code == 404
    forged = await clockify.send_webhook(
        workspace,
        EVENT,
        _time_entry(workspace),
        event_header="MADE_UP_EVENT_XYZ",
    )
    assert forged.status_code == 403

    response = await client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    for needle in ("made-up-event-xyz", "MADE_UP_EVENT_XYZ", "batch-deleted", "BATCH_DELETED"):
        assert needle.lower() not in text.lower()
    labels = _metric_samples(text, "addon_webhooks_total")
    assert labels
    assert {label["event_type"] for label in labels} <= CLOCKIFY_EVENT_TYPES | {"unknown"}
