"""The one test harness: what many tests share, written once.

Free ports, `bearer()` headers, waiting for a condition, the shape of a refusal, the
contract's example flow, fake Clockify transports (passed to `create_addon_app`, never
swapped on a built app), the settings that point an app at the sandbox, a receiver that
records what it is sent, the console script, and `Api`: an app under test installed in a
workspace. The fixtures that build these (`install_app`, `api`, `uw`, `sandbox`) are in
`tests/conftest.py`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from addon_core.clockify.tokens import TokenSigner
from addon_core.flows import example
from addon_core.runtime import AddonRuntime
from addon_core.storage.database import create_engine
from tests.fake_clockify import Clockify, Workspace

if TYPE_CHECKING:
    from addon_core.sandbox import Sandbox
    from tests.served_app import AppProcess

#: The console script of this environment, as operators run it.
SCRIPT = Path(sys.executable).with_name("clockify-addons")
#: The event of the contract's example flow.
EVENT = "NEW_TIME_ENTRY"
#: The name of the one project `answer_clockify` knows.
PROJECT_NAME = "Meetings"


def free_port() -> int:
    """Return a loopback port the OS has just handed out (tests never use fixed ports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion and capture its output."""
    return subprocess.run(  # noqa: S603
        [str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header of an /api/ call with this user token."""
    return {"Authorization": f"Bearer {token}"}


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, patience: float = 30.0
) -> None:
    """Wait until `check` holds (a guard against hanging, not a timing assert)."""
    deadline = time.monotonic() + patience
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def assert_refused(response: httpx.Response, status: int, *mentions: str) -> dict[str, Any]:
    """Check a refusal: `status`, the JSON error shape, and a detail naming each of `mentions`."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert error["status_code"] == status
    assert error["detail"]
    for mention in mentions:
        assert mention in error["detail"], (mention, error["detail"])
    return error


# --- data and settings many tests share --------------------------------------------------


#: The lists bootstrap copies by default, in the order it fetches them.
BOOTSTRAP_LISTS = (
    "getApprovalRequests",
    "getClients",
    "getExpenses",
    "getCategories",
    "getInvoices",
    "getProjects",
    "getTags",
    "getInProgressTimeEntries",
    "findPoliciesForWorkspace",
    "getUserGroups",
    "getUsersOfWorkspace",
)
#: An http action with a secret in its URL's query and in its Authorization header.
SECRET_ACTION: dict[str, Any] = {
    "id": "notify",
    "type": "http",
    "method": "POST",
    "url": "https://hooks.example.com/in?api_key=abc123",
    "headers": {"Authorization": "Bearer s3cr3t-value", "X-Team": "ops"},
    "body": {"entry": "{{ event.id }}"},
}


def sandbox_settings(
    sandbox: Sandbox, folder: Path, reference_dir: Path | None = None
) -> dict[str, Any]:
    """Settings that point an app at the sandbox: trust its key, call its host over plain
    HTTP and, given `reference_dir`, read Clockify's OpenAPI document from there."""
    settings: dict[str, Any] = {
        "clockify_public_key_file": sandbox.write_public_key(folder / "sandbox.pem"),
        "clockify_api_allowed_hosts": (f"127.0.0.1:{sandbox.port}",),
        "allow_insecure_http": True,
    }
    if reference_dir is not None:
        settings["clockify_openapi_file"] = reference_dir / "openapi.json"
    return settings


# --- the contract's example flow ---------------------------------------------------------


def time_entry(**changes: Any) -> dict[str, Any]:
    """A NEW_TIME_ENTRY payload the example flow matches (its description holds "meeting")."""
    entry: dict[str, Any] = {
        "id": "5f118c837db7a8637ffcaf36",
        "description": "weekly meeting",
        "projectId": "5f11849d4e759e12c40733d5",
        "timeInterval": {"start": "2024-05-01T09:00:00Z", "end": "2024-05-01T10:00:00Z"},
    }
    entry.update(changes)
    return entry


def tag_meetings(**changes: Any) -> dict[str, Any]:
    """The contract's example flow without its `tagIds`, since `time_entry()` carries none."""
    return example.tag_meetings(tag_ids=None, **changes)


# --- fake Clockify transports ------------------------------------------------------------


def answer_clockify(sent: list[httpx.Request]) -> httpx.MockTransport:
    """A Clockify that knows one project; it records every request and refuses the rest."""

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "GET" and "/projects/" in request.url.path:
            return httpx.Response(200, json={"id": "p1", "name": PROJECT_NAME})
        return httpx.Response(404, json={"message": "not in this fake", "code": 404})

    return httpx.MockTransport(handle)


def refusing_clockify(status: int = 404, message: str = "no") -> httpx.MockTransport:
    """A Clockify that answers every call with one refusal."""
    return httpx.MockTransport(lambda request: httpx.Response(status, json={"message": message}))


def full_clockify() -> httpx.MockTransport:
    """Clockify for the install-time coverage job: no webhooks, and no room for more."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"webhooks": [], "workspaceWebhookCount": 0})
        return httpx.Response(400, json={"message": "webhook limit reached", "code": 501})

    return httpx.MockTransport(answer)


# --- what an add-on or an http action calls ----------------------------------------------


class Receiver:
    """An ASGI app that answers `status` with a small JSON body and keeps each request's
    target (path and query), headers and raw body: an add-on or an http action's target."""

    ANSWER = b'{"received": true}'

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.calls: list[tuple[str, dict[str, str], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = scope["query_string"].decode()
        self.calls.append((scope["path"] + (f"?{query}" if query else ""), headers, body))
        await send({"type": "http.response.start", "status": self.status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": self.ANSWER})


# --- an installed app --------------------------------------------------------------------


async def execute(database_url: str, sql: str, **params: Any) -> None:
    """Run one write statement on a connection of the test's own."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(sql), params)
    finally:
        await engine.dispose()


@dataclass
class Api:
    """An app under test, installed in a workspace, with the requests it sent to Clockify."""

    client: AsyncTestClient[Litestar]
    clockify: Clockify
    workspace: Workspace
    database_url: str
    app_name: str
    sent: list[httpx.Request] = field(default_factory=list)

    def sent_for_flows(self) -> list[httpx.Request]:
        """What reached Clockify apart from Universal Webhook's webhook registration."""
        return [r for r in self.sent if "/webhooks" not in r.url.path]

    @property
    def runtime(self) -> AddonRuntime:
        runtime: AddonRuntime = self.client.app.state.runtime
        return runtime

    @property
    def signs(self) -> bool:
        return self.app_name == "universal-webhook"

    def headers(self, role: str = "OWNER", workspace: Workspace | None = None) -> dict[str, str]:
        return bearer((workspace or self.workspace).user_token(role))

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        role: str = "OWNER",
        workspace: Workspace | None = None,
        **params: Any,
    ) -> httpx.Response:
        return await self.client.request(
            method,
            path,
            headers=self.headers(role, workspace),
            content=None if body is None else json.dumps(body),
            params=params or None,
        )

    async def create(self, document: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.call("POST", "/api/flows", document or tag_meetings())
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def new_workspace(self, signer: TokenSigner) -> Workspace:
        other = Workspace(signer)
        await self.clockify.install(other)
        return other


#: The `install_app` fixture: `async with install_app(app_name, **overrides) as api: ...`.
InstallApp = Callable[..., AbstractAsyncContextManager[Api]]
#: The `serve_app` fixture: `[app] = await serve_app(JOB_LEASE_SECONDS="3")`, started.
ServeApp = Callable[..., Awaitable[list["AppProcess"]]]
