"""Which stored columns hold encrypted tokens, what each is bound to, and key rotation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from addon_core.storage.encryption import KeyRing
from addon_core.storage.models import Endpoint, Flow, Installation, WebhookRegistration

INSTALLATION_PURPOSE = "installation"


# The purpose each kind of secret is bound to, named here only: rotation re-encrypts by
# them, so a purpose written differently anywhere else could no longer be opened.
def webhook_purpose(path: str) -> str:
    """A webhook's token (manifest or API-registered), bound to the webhook's path."""
    return path


def endpoint_purpose(endpoint_id: str) -> str:
    """A custom endpoint's secret (current and previous)."""
    return f"endpoint:{endpoint_id}"


def flow_purpose(flow_id: str) -> str:
    """A flow's signing secret for its http actions."""
    return f"flow:{flow_id}"


def token_context(addon_key: str, workspace_id: str, purpose: str) -> str:
    """The associated data a token is encrypted under: its add-on, workspace and use."""
    return f"{addon_key}|{workspace_id}|{purpose}"


@dataclass(frozen=True, slots=True)
class _Secret:
    """One encrypted column, and how a row names the purpose its secret is bound to."""

    table: Table
    column: str
    purpose: Callable[[Row[Any]], str]


def _secrets() -> list[_Secret]:
    installation: Table = Installation.__table__  # type: ignore[assignment]
    registration: Table = WebhookRegistration.__table__  # type: ignore[assignment]
    endpoint: Table = Endpoint.__table__  # type: ignore[assignment]
    flow: Table = Flow.__table__  # type: ignore[assignment]
    return [
        _Secret(installation, "auth_token", lambda row: INSTALLATION_PURPOSE),
        _Secret(registration, "auth_token", lambda row: webhook_purpose(str(row.path))),
        _Secret(endpoint, "secret", lambda row: endpoint_purpose(str(row.id))),
        _Secret(endpoint, "previous_secret", lambda row: endpoint_purpose(str(row.id))),
        _Secret(flow, "signing_secret", lambda row: flow_purpose(str(row.id))),
    ]


async def rotate_secrets(
    conn: AsyncConnection, addon_key: str, ring: KeyRing, touched: set[str] | None = None
) -> int:
    """Re-encrypt every stored token and secret of an add-on not yet under the ring's first key.

    The ids of the workspaces whose secrets changed are added to `touched`.
    """
    count = 0
    for secret in _secrets():
        table, column = secret.table, secret.table.c[secret.column]
        rows = await conn.execute(
            select(table).where(table.c.addon_key == addon_key, column.is_not(None))
        )
        for row in rows.all():
            stored = row._mapping[column]
            if ring.is_current(stored):
                continue
            context = token_context(addon_key, row.workspace_id, secret.purpose(row))
            fresh = ring.encrypt(ring.decrypt(stored, context), context)
            await conn.execute(
                update(table).where(table.c.id == row.id).values({secret.column: fresh})
            )
            count += 1
            if touched is not None:
                touched.add(row.workspace_id)
    return count
