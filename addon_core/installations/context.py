"""The installation a request or a job acts for, and what Clockify calls need from it.

These look-ups belong to the installations domain, not to the runtime: the runtime
only lends its add-on key, key ring and sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.client import InstallationContext
from addon_core.errors import ConflictError, NotFoundError
from addon_core.storage.models import Installation
from addon_core.storage.scope import scoped
from addon_core.storage.vault import INSTALLATION_PURPOSE, token_context

if TYPE_CHECKING:
    from addon_core.runtime import AddonRuntime


async def live_installation(
    session: AsyncSession, runtime: AddonRuntime, workspace_id: str
) -> Installation:
    """This add-on's live installation in a workspace, or 404."""
    installation = await session.scalar(
        select(Installation).where(
            *scoped(Installation, runtime.addon_key, workspace_id),
        )
    )
    if installation is None or installation.status == "DELETED":
        raise NotFoundError(f"the add-on is not installed in workspace {workspace_id}")
    return installation


def installation_context(runtime: AddonRuntime, installation: Installation) -> InstallationContext:
    """What the Clockify client needs to call for an installation (token decrypted)."""
    if not installation.auth_token:
        raise ConflictError(
            f"the installation in workspace {installation.workspace_id} has no token; "
            "reinstall the add-on"
        )
    token = runtime.key_ring.decrypt(
        installation.auth_token,
        token_context(runtime.addon_key, installation.workspace_id, INSTALLATION_PURPOSE),
    )
    return InstallationContext(
        workspace_id=installation.workspace_id,
        token=token,
        base_urls=dict(installation.api_urls),
    )


async def context_for(runtime: AddonRuntime, workspace_id: str) -> InstallationContext:
    """Read the installation of a workspace and build its call context."""
    async with runtime.sessions() as session:
        return installation_context(
            runtime, await live_installation(session, runtime, workspace_id)
        )
