"""No token Clockify signs and no encryption key reaches a log record or an HTTP response."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.clockify.tokens import TokenSigner
from addon_core.logs import JsonFormatter, RedactingFormatter
from addon_core.redaction import MASK
from tests.fake_clockify import Clockify, Workspace
from tests.harness import bearer

ADDON_KEY = "universal-webhook"
EVENT = "NEW_TIME_ENTRY"
#: Formats a record with everything it carries (message, exception, stack), masking nothing.
PLAIN = logging.Formatter("%(name)s %(levelname)s %(message)s")


def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture every logger at DEBUG, including those that set a level of their own."""
    caplog.set_level(logging.DEBUG)
    names = {"sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "aiosqlite", "asyncio"}
    names |= {
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    for name in sorted(names):
        caplog.set_level(logging.DEBUG, logger=name)


class Recorder:
    """Keeps every response the test receives, and every secret it minted."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []
        self.secrets: dict[str, str] = {}

    def secret(self, name: str, value: str) -> str:
        self.secrets[name] = value
        return value

    def keep(self, response: httpx.Response) -> httpx.Response:
        self.responses.append(response)
        return response


def _leaks(secrets: dict[str, str], texts: Iterable[tuple[str, str]]) -> list[str]:
    return [
        f"{name} in {where}"
        for where, text in texts
        for name, secret in secrets.items()
        if secret and secret in text
    ]


async def test_no_secret_reaches_a_log_record_or_a_response(
    caplog: pytest.LogCaptureFixture,
    make_app: Callable[..., Litestar],
    signer: Callable[[str], TokenSigner],
    encryption_key: str,
) -> None:
    _capture_everything(caplog)
    seen = Recorder()
    seen.secret("encryption key", encryption_key)
    seen.secret("encryption key (unpadded)", encryption_key.rstrip("="))
    intruder = TokenSigner(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), ADDON_KEY
    )

    async with AsyncTestClient(app=make_app(ADDON_KEY)) as client:
        clockify = Clockify.for_app(client, ADDON_KEY)
        workspace = Workspace(signer(ADDON_KEY))
        stranger = Workspace(signer(ADDON_KEY))
        body = workspace.installed_body(clockify.events)
        seen.secret("installation token", body["authToken"])
        for event, token in workspace.webhook_tokens.items():
            seen.secret(f"{event} webhook token", token)
        seen.secret("stranger's webhook token", stranger.webhook_token(EVENT))
        user_token = seen.secret("user token", workspace.user_token())
        expired_user_token = seen.secret("expired user token", workspace.user_token(expires_in=-60))

        # Lifecycle: refused calls first (nothing installed yet), then the real ones.
        forged = seen.secret(
            "forged lifecycle token", intruder.token(workspace.workspace_id, workspace.addon_id)
        )
        seen.keep(await clockify.lifecycle(workspace, "INSTALLED", body, token=forged))
        seen.keep(
            await client.post(
                "/lifecycle/installed",
                content=json.dumps(body),
                headers={
                    "content-type": "application/json",
                    "clockify-signature": seen.secret(
                        "lifecycle token in the wrong header", workspace.lifecycle_token(iat=1)
                    ),
                },
            )
        )
        bad_install = dict(body)
        bad_install["authToken"] = seen.secret(
            "forged installation token",
            intruder.token(workspace.workspace_id, workspace.addon_id, user=workspace.owner_id),
        )
        seen.keep(
            await clockify.lifecycle(
                workspace,
                "INSTALLED",
                bad_install,
                token=seen.secret("lifecycle token 1", workspace.lifecycle_token(iat=2)),
            )
        )
        evil = {**body, "apiUrl": "https://evil.example.com/api"}
        seen.keep(
            await clockify.lifecycle(
                workspace,
                "INSTALLED",
                evil,
                token=seen.secret("lifecycle token 2", workspace.lifecycle_token(iat=3)),
            )
        )
        installed_at = int(time.time()) - 30
        install_token = seen.secret(
            "lifecycle token 3", workspace.lifecycle_token(iat=installed_at)
        )
        installed = seen.keep(
            await clockify.lifecycle(workspace, "INSTALLED", body, token=install_token)
        )
        assert installed.status_code == 200, installed.text
        seen.keep(
            await clockify.lifecycle(
                workspace,
                "SETTINGS_UPDATED",
                {"workspaceId": workspace.workspace_id, "settings": {"not": "a list"}},
                token=seen.secret("lifecycle token 4", workspace.lifecycle_token(iat=installed_at)),
            )
        )

        # Webhooks: accepted, duplicate and every kind of refusal.
        payload = {"id": "te1", "workspaceId": workspace.workspace_id, "description": "x"}
        accepted = seen.keep(await clockify.send_webhook(workspace, EVENT, payload))
        assert accepted.json() == {"status": "accepted"}
        seen.keep(await clockify.send_webhook(workspace, EVENT, payload))
        seen.keep(
            await clockify.send_webhook(
                workspace,
                EVENT,
                payload,
                token=seen.secret(
                    "forged webhook token",
                    intruder.token(workspace.workspace_id, workspace.addon_id, eventType=EVENT),
                ),
            )
        )
        seen.keep(
            await clockify.send_webhook(workspace, EVENT, payload, event_header="NEW_PROJECT")
        )
        seen.keep(await clockify.send_webhook(workspace, EVENT, b"{not json"))
        seen.keep(await clockify.send_webhook(workspace, EVENT, payload, content_type="text/plain"))
        seen.keep(await clockify.send_webhook(stranger, EVENT, {"id": "te2"}))
        seen.keep(
            await clockify.send_webhook(
                workspace, EVENT, payload, token=workspace.webhook_token("NEW_PROJECT")
            )
        )

        # The user token, as Clockify hands it to UI components and the API.
        seen.keep(await client.get("/ui/sidebar", params={"auth_token": user_token}))
        for token in (user_token, expired_user_token):
            seen.keep(await client.get("/api/flows", headers=bearer(token)))

        # Probes and documents, after all the above.
        for path in ("/manifest", "/manifest.json", "/livez", "/readyz", "/healthz", "/metrics"):
            response = seen.keep(await client.get(path))
            assert response.status_code == 200, (path, response.text)

        deleted = seen.keep(
            await clockify.lifecycle(
                workspace,
                "DELETED",
                {"addonId": workspace.addon_id, "workspaceId": workspace.workspace_id},
                token=seen.secret("lifecycle token 5", workspace.lifecycle_token()),
            )
        )
        assert deleted.status_code == 200, deleted.text
        seen.keep(await client.get("/metrics"))

    statuses = {r.status_code for r in seen.responses}
    assert {200, 400, 401, 403, 409, 415, 422} <= statuses
    records = caplog.records
    # The capture works: the app's own records and the database's are in it.
    assert any(r.name.startswith("addon_core") for r in records)
    assert any(r.name.startswith("sqlalchemy") for r in records)
    log_texts = [
        (f"log record {r.name}:{r.lineno}", PLAIN.format(r))
        for r in records
        if not _is_test_client_record(r)
    ]
    response_texts = [
        (
            f"response to {r.request.method} {r.request.url.path} ({r.status_code})",
            r.text + json.dumps(dict(r.headers)),
        )
        for r in seen.responses
    ]
    assert _leaks(seen.secrets, log_texts) == []
    assert _leaks(seen.secrets, response_texts) == []


def _is_test_client_record(record: logging.LogRecord) -> bool:
    """httpx's log of the requests this test sends: Clockify's side, not the app's."""
    return record.name == "httpx" and "http://testserver.local/" in record.getMessage()


def _record(message: str, *args: Any) -> logging.LogRecord:
    return logging.LogRecord("addon_core.test", logging.INFO, __file__, 1, message, args, None)


@pytest.mark.parametrize(
    "template",
    ["token %s", "X-Addon-Token: %s", "clockify-signature=%s", '{"authToken": "%s"}'],
)
def test_redacting_formatter_masks_a_token_logged_on_purpose(
    signer: Callable[[str], TokenSigner], template: str
) -> None:
    workspace = Workspace(signer(ADDON_KEY))
    tokens = {
        "installation": workspace.installation_token(),
        "webhook": workspace.webhook_token(EVENT),
        "lifecycle": workspace.lifecycle_token(),
        "user": workspace.user_token(),
    }
    for kind, token in tokens.items():
        for formatter in (RedactingFormatter("%(levelname)s %(message)s"), JsonFormatter()):
            line = formatter.format(_record(template, token))

            assert token not in line, (kind, type(formatter).__name__)
            assert MASK in line, (kind, type(formatter).__name__)


def test_redacting_formatter_masks_a_token_in_a_logged_traceback(
    signer: Callable[[str], TokenSigner],
) -> None:
    token = Workspace(signer(ADDON_KEY)).installation_token()
    try:
        raise ValueError(f"could not use {token}")
    except ValueError:
        record = logging.LogRecord(
            "addon_core.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    line = RedactingFormatter("%(message)s").format(record)

    assert "ValueError" in line
    assert token not in line
    assert MASK in line


def test_a_log_line_through_a_redacting_handler_masks_the_token(
    caplog: pytest.LogCaptureFixture, signer: Callable[[str], TokenSigner]
) -> None:
    token = Workspace(signer(ADDON_KEY)).webhook_token(EVENT)
    caplog.set_level(logging.INFO)
    log = logging.getLogger("addon_core.test")

    log.info("token %s", token)

    [record] = [r for r in caplog.records if r.name == "addon_core.test"]
    line = RedactingFormatter("%(message)s").format(record)
    assert line == f"token {MASK}"
