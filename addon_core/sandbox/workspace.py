"""Clockify's side of one workspace: the tokens it signs and the INSTALLED body it sends.

Tokens are minted through `TokenSigner`, so an app verifies them on its production path.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.tokens import TokenSigner

_ids = itertools.count(1)

#: Clockify's production base URLs: what a workspace made outside the sandbox carries.
CLOCKIFY_BASE_URLS = {
    "backendUrl": "https://api.clockify.me/api",
    "reportsUrl": "https://reports.api.clockify.me",
    "locationsUrl": "https://locations.api.clockify.me",
    "screenshotsUrl": "https://screenshots.api.clockify.me",
}


def object_id() -> str:
    """Return a fresh 24-hex-digit id shaped like Clockify's."""
    return f"{next(_ids):024x}"


@dataclass
class Workspace:
    """One workspace with the add-on installed (or about to be)."""

    signer: TokenSigner
    workspace_id: str = field(default_factory=object_id)
    addon_id: str = field(default_factory=object_id)
    owner_id: str = field(default_factory=object_id)
    base_urls: dict[str, str] = field(default_factory=lambda: dict(CLOCKIFY_BASE_URLS))
    webhook_tokens: dict[str, str] = field(default_factory=dict)

    def installation_token(self, **extra: Any) -> str:
        """Sign the installation token: admin over the workspace, no expiry, base URLs."""
        claims: dict[str, Any] = {"user": self.owner_id, **self.base_urls, **extra}
        return self.signer.token(self.workspace_id, self.addon_id, **claims)

    def lifecycle_token(self, *, iat: float | None = None, **extra: Any) -> str:
        """Sign the token of one lifecycle call (`X-Addon-Lifecycle-Token`)."""
        claims: dict[str, Any] = dict(extra)
        if iat is not None:
            claims["iat"] = iat
        return self.signer.token(self.workspace_id, self.addon_id, **claims)

    def webhook_token(self, event_type: str) -> str:
        """Return the installation's token for one webhook event, the same on every call."""
        if event_type not in self.webhook_tokens:
            self.webhook_tokens[event_type] = self.signer.token(
                self.workspace_id, self.addon_id, eventType=event_type
            )
        return self.webhook_tokens[event_type]

    def user_token(
        self, role: str = "OWNER", *, expires_in: float = 1800, theme: str = "DEFAULT"
    ) -> str:
        """Sign the owner's user token (the iframe's `auth_token`), 30 minutes by default."""
        return self.signer.token(
            self.workspace_id,
            self.addon_id,
            expires_in=expires_in,
            user=self.owner_id,
            workspaceRole=role,
            language="EN",
            theme=theme,
            **self.base_urls,
        )

    def installed_body(
        self, events: list[str], *, full_url_base: str | None = None
    ) -> dict[str, Any]:
        """The INSTALLED body (marketplace docs, "Lifecycle"), one webhook per event."""
        return {
            "addonId": self.addon_id,
            "authToken": self.installation_token(),
            "workspaceId": self.workspace_id,
            "asUser": self.owner_id,
            "apiUrl": self.base_urls.get("backendUrl", CLOCKIFY_BASE_URLS["backendUrl"]),
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
