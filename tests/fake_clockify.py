"""Clockify's side of the add-on contract, for tests: the calls Clockify sends an app in-process.

The calls go through the sandbox's driver (`addon_core.sandbox.driver`), the one Clockify
caller the tests and the sandbox share, on the app's `AsyncTestClient`. `Workspace` (signed
tokens, the INSTALLED body) lives in `addon_core.sandbox` and is re-exported here; tokens
are verified by the apps through the production `TokenVerifier`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.manifest import load_manifest
from addon_core.sandbox import driver
from addon_core.sandbox.workspace import Workspace, object_id

__all__ = ["Clockify", "Request", "Workspace", "now", "object_id", "post_concurrently"]


class Clockify:
    """Sends what Clockify sends to an app under test."""

    def __init__(self, client: AsyncTestClient[Any], manifest: dict[str, Any]) -> None:
        self.client = client
        self.manifest = manifest
        self.lifecycle_paths = {item["type"]: item["path"] for item in manifest["lifecycle"]}
        self.events = driver.manifest_events(manifest)

    @classmethod
    def for_app(cls, client: AsyncTestClient[Any], app_name: str) -> Clockify:
        """Clockify as it sees APP's manifest (paths are relative: the base URL is moot)."""
        manifest = load_manifest(app_name).render(
            base_url=f"https://addons.example.com/{app_name}", key=app_name
        )
        return cls(client, manifest)

    async def lifecycle(
        self,
        workspace: Workspace,
        lifecycle_type: str,
        body: dict[str, Any],
        *,
        token: str | None = None,
        iat: float | None = None,
    ) -> Any:
        return await driver.send_lifecycle(
            self.client,
            "",
            self.manifest,
            workspace,
            lifecycle_type,
            body,
            token=token or workspace.lifecycle_token(iat=iat),
        )

    async def install(self, workspace: Workspace, *, iat: float | None = None) -> Any:
        response = await self.lifecycle(
            workspace, "INSTALLED", workspace.installed_body(self.events), iat=iat
        )
        assert response.status_code == 200, response.text
        return response

    async def send_webhook(
        self,
        workspace: Workspace,
        event_type: str,
        payload: dict[str, Any] | bytes,
        *,
        token: str | None = None,
        event_header: str | None = None,
        content_type: str = "application/json",
        path: str | None = None,
    ) -> Any:
        signature = token if token is not None else workspace.webhook_token(event_type)
        return await driver.deliver(
            self.client,
            path or webhook_path(event_type),
            signature,
            event_header or event_type,
            payload,
            content_type=content_type,
        )


def now() -> float:
    return time.time()


#: one request to send: path, body, headers
Request = tuple[str, bytes, dict[str, str]]


def post_concurrently(client: AsyncTestClient[Any], requests: list[Request]) -> list[Any]:
    """POST all requests to the app at once, on the event loop the app runs on.

    AsyncTestClient serves each request synchronously through its blocking portal, so
    requests gathered on the test's loop reach the app one after the other, and the app
    cannot be called from the test's loop (its intake writer lives on the portal's).
    """
    return list(client.blocking_portal.call(_gather_posts, client.app, requests))


async def _gather_posts(app: Any, requests: list[Request]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as http:
        posts = (http.post(path, content=body, headers=headers) for path, body, headers in requests)
        return list(await asyncio.gather(*posts))
