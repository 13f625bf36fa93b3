"""Which stored columns hold encrypted tokens, what each is bound to, and key rotation."""

from __future__ import annotations

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from addon_core.encryption import KeyRing
from addon_core.models import Installation, WebhookRegistration

INSTALLATION_PURPOSE = "installation"


def token_context(addon_key: str, workspace_id: str, purpose: str) -> str:
    """The associated data a token is encrypted under: its add-on, workspace and use."""
    return f"{addon_key}|{workspace_id}|{purpose}"


def _tables() -> list[tuple[Table, str | None]]:
    """Each table with an encrypted `auth_token`, and the column naming its purpose."""
    return [
        (Installation.__table__, None),  # type: ignore[list-item]
        (WebhookRegistration.__table__, "path"),  # type: ignore[list-item]
    ]


async def rotate_secrets(conn: AsyncConnection, addon_key: str, ring: KeyRing) -> int:
    """Re-encrypt every stored token of an add-on not yet under the ring's first key."""
    count = 0
    for table, purpose_column in _tables():
        purpose = table.c[purpose_column] if purpose_column else None
        columns = [table.c.id, table.c.workspace_id, table.c.auth_token]
        rows = await conn.execute(
            select(*columns, *([purpose] if purpose is not None else [])).where(
                table.c.addon_key == addon_key, table.c.auth_token.is_not(None)
            )
        )
        for row in rows.all():
            if ring.is_current(row.auth_token):
                continue
            use = row[3] if purpose is not None else INSTALLATION_PURPOSE
            context = token_context(addon_key, row.workspace_id, use)
            fresh = ring.encrypt(ring.decrypt(row.auth_token, context), context)
            await conn.execute(update(table).where(table.c.id == row.id).values(auth_token=fresh))
            count += 1
    return count
