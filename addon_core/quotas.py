"""Quotas per workspace, so one noisy workspace cannot starve the others on a shared server.

Counts (flows, custom endpoints) are checked inside the transaction that would add one,
with the workspace's installation row locked, so two requests (or two processes on one
PostgreSQL) cannot both take the last place: over a count quota is a 409. Flow versions
are not refused: only the newest `quota_flow_versions` of a flow are kept. Rates (explorer
calls, dry runs, outbound http actions a minute) are GCRA limits in this process's memory,
like the custom endpoints' (`addon_core.rate_limit`): over a rate quota is a 429 with
`Retry-After` and `X-RateLimit-*`. Every refusal names the quota, its limit and when it
resets, and is counted by quota name (no workspace label). Incoming Clockify webhooks are
never refused for a quota. The limits are settings (`{P}QUOTA_*`).
"""

from __future__ import annotations

from typing import Final, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.errors import ConflictError, TooManyRequestsError
from addon_core.metrics import Metrics
from addon_core.rate_limit import RateLimiter
from addon_core.settings import AddonSettings
from addon_core.storage.models import Installation

RateQuota = Literal["explorer_calls_per_minute", "dry_runs_per_minute", "outbound_per_minute"]
CountQuota = Literal["flows", "endpoints"]
RATE_QUOTAS: Final[tuple[RateQuota, ...]] = (
    "explorer_calls_per_minute",
    "dry_runs_per_minute",
    "outbound_per_minute",
)


class QuotaExceededError(ConflictError):
    """A count quota is reached (409)."""


class RateQuotaExceededError(TooManyRequestsError):
    """A rate quota is spent for now (429)."""


class Quotas:
    """The quotas of one app: its settings' limits, its rate limiters, its refusal counter."""

    def __init__(self, settings: AddonSettings, metrics: Metrics, addon_key: str) -> None:
        self._settings = settings
        self._refused = metrics.quota_refusals
        self._addon = addon_key
        self._limiters = {name: RateLimiter(self.limit(name)) for name in RATE_QUOTAS}

    def limit(self, quota: RateQuota | CountQuota) -> int:
        limit: int = getattr(self._settings, f"quota_{quota}")
        return limit

    def limit_versions(self) -> int:
        """How many versions of a flow are kept (older ones are deleted, not refused)."""
        return self._settings.quota_flow_versions

    def charge(self, workspace_id: str, quota: RateQuota) -> dict[str, str]:
        """Count one use; the rate headers, or `RateQuotaExceededError` once spent."""
        decision = self._limiters[quota].check(workspace_id)
        headers = decision.headers()
        if decision.allowed:
            return headers
        self._refused.labels(self._addon, quota).inc()
        raise RateQuotaExceededError(
            f"this workspace's quota {quota} ({decision.limit}) is spent; "
            f"it resets in {decision.reset_seconds}s",
            extra={"quota": quota, "limit": decision.limit, "resetSeconds": decision.reset_seconds},
            reason="quota",
            headers=headers,
        )

    @staticmethod
    async def lock_workspace(session: AsyncSession, addon_key: str, workspace_id: str) -> None:
        """Lock the workspace's installation row until the transaction ends, so that two
        requests adding to one count quota take turns (SQLite writes one at a time anyway)."""
        await session.execute(
            select(Installation.id)
            .where(Installation.addon_key == addon_key, Installation.workspace_id == workspace_id)
            .with_for_update()
        )

    def check_count(self, quota: CountQuota, current: int, *, what: str) -> None:
        """Refuse (409) adding one more when `current` is already at the quota."""
        limit = self.limit(quota)
        if current < limit:
            return
        self._refused.labels(self._addon, quota).inc()
        raise QuotaExceededError(
            f"this workspace has {current} {what}, its quota {quota} allows {limit}; "
            f"delete one first (the operator sets {self._settings.env_name('quota_' + quota)})",
            extra={"quota": quota, "limit": limit, "resetSeconds": None},
            reason="quota",
        )
