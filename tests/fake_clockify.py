"""Clockify's side of the add-on contract, for tests: signed tokens and the payloads Clockify sends.

Tokens are minted with a per-run RSA key through `TokenSigner`, and verified by
the apps through the production `TokenVerifier` with that key's public half.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from addon_core.event_types import webhook_path
from addon_core.security import TokenSigner

_ids = itertools.count(1)


def object_id() -> str:
    """A fresh 24-hex-digit id shaped like Clockify's."""
    return f"{next(_ids):024x}"


@dataclass
class Workspace:
    """One workspace with the add-on installed (or about to be)."""

    signer: TokenSigner
    workspace_id: str = field(default_factory=object_id)
    addon_id: str = field(default_factory=object_id)
    owner_id: str = field(default_factory=object_id)
    base_urls: dict[str, str] = field(
        default_factory=lambda: {
            "backendUrl": "https://api.clockify.me/api",
            "reportsUrl": "https://reports.api.clockify.me",
            "locationsUrl": "https://locations.api.clockify.me",
            "screenshotsUrl": "https://screenshots.api.clockify.me",
        }
    )
    webhook_tokens: dict[str, str] = field(default_factory=dict)

    # --- tokens ---------------------------------------------------------------------------

    def installation_token(self, **extra: Any) -> str:
        claims: dict[str, Any] = {"user": self.owner_id, **self.base_urls, **extra}
        return self.signer.token(self.workspace_id, self.addon_id, **claims)

    def lifecycle_token(self, *, iat: float | None = None, **extra: Any) -> str:
        claims: dict[str, Any] = dict(extra)
        if iat is not None:
            claims["iat"] = iat
        return self.signer.token(self.workspace_id, self.addon_id, **claims)

    def webhook_token(self, event_type: str) -> str:
        if event_type not in self.webhook_tokens:
            self.webhook_tokens[event_type] = self.signer.token(
                self.workspace_id, self.addon_id, eventType=event_type
            )
        return self.webhook_tokens[event_type]

    def user_token(self, role: str = "OWNER", *, expires_in: float = 1800) -> str:
        return self.signer.token(
            self.workspace_id,
            self.addon_id,
            expires_in=expires_in,
            user=self.owner_id,
            workspaceRole=role,
            language="EN",
            theme="DEFAULT",
            **self.base_urls,
        )

    # --- payloads -------------------------------------------------------------------------

    def installed_body(
        self, events: list[str], *, full_url_base: str | None = None
    ) -> dict[str, Any]:
        """The INSTALLED body (marketplace docs, "Lifecycle"), one webhook per event."""
        return {
            "addonId": self.addon_id,
            "authToken": self.installation_token(),
            "workspaceId": self.workspace_id,
            "asUser": self.owner_id,
            "apiUrl": "https://api.clockify.me/api",
            "addonUserId": object_id(),
            "webhooks": [
                {
                    "path": (full_url_base or "") + webhook_path(event),
                    "webhookType": "ADDON",
                    "authToken": self.webhook_token(event),
                }
                for event in events
            ],
        }


class Clockify:
    """Sends what Clockify sends to an app under test."""

    def __init__(self, client: AsyncTestClient[Any], manifest: dict[str, Any]) -> None:
        self.client = client
        self.manifest = manifest
        self.lifecycle_paths = {item["type"]: item["path"] for item in manifest["lifecycle"]}
        self.events = [item["event"] for item in manifest["webhooks"]]

    async def lifecycle(
        self,
        workspace: Workspace,
        lifecycle_type: str,
        body: dict[str, Any],
        *,
        token: str | None = None,
        iat: float | None = None,
    ) -> Any:
        return await self.client.post(
            self.lifecycle_paths[lifecycle_type],
            content=json.dumps(body),
            headers={
                "content-type": "application/json",
                "x-addon-lifecycle-token": token or workspace.lifecycle_token(iat=iat),
            },
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
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {
            "content-type": content_type,
            "clockify-webhook-event-type": event_header or event_type,
        }
        signature = token if token is not None else workspace.webhook_token(event_type)
        if signature:
            headers["clockify-signature"] = signature
        return await self.client.post(
            path or webhook_path(event_type), content=body, headers=headers
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
