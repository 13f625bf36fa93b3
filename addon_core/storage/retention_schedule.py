"""The retention schedule: `run_retention` every interval under a named lease, one
replica at a time, and the operator's one-off run (`clockify-addons retention`).

Apart from `storage/retention.py` (what is deleted) because when and where it runs is
its own concern: leases, a background task, stopping with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.metrics import Metrics
from addon_core.redaction import redact_text
from addon_core.settings import AddonSettings
from addon_core.storage.database import create_engine
from addon_core.storage.leases import acquire_lease, release_lease
from addon_core.storage.retention import RetentionPolicy, run_retention

log = logging.getLogger(__name__)


def default_holder_id() -> str:
    """Name this process for lease tables: host, pid and a random suffix."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RetentionScheduler:
    """Run retention every interval, in whichever replica holds `retention:<addon_key>`.

    The lease lives two intervals and the holder renews it each tick, so the same
    replica keeps the schedule; if it dies, another takes over within three intervals.
    A run outlasting the lease only lets a second replica delete the same rows again,
    which is harmless: every batch is idempotent and committed on its own.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        addon_key: str,
        policy: RetentionPolicy,
        *,
        interval_seconds: float,
        holder_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"the retention interval must be > 0 (got {interval_seconds})")
        self.engine = engine
        self.addon_key = addon_key
        self.policy = policy
        self.interval_seconds = interval_seconds
        self.holder_id = holder_id or default_holder_id()
        self.metrics = metrics
        self.lease_name = f"retention:{addon_key}"
        self.lease_seconds = 2 * interval_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the schedule: a first run now, then one every interval."""
        if self.running:
            return
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name=f"retention:{self.addon_key}")

    async def stop(self) -> None:
        """Stop the schedule (a run in progress rolls back its current batch), free the lease."""
        if self._task is None:
            return
        self._stopping.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            # Free the lease now, so another replica need not wait for it to expire.
            await release_lease(self.engine, self.lease_name, self.holder_id)
        except Exception as exc:
            log.warning("could not release the retention lease: %s", redact_text(str(exc)))

    async def tick(self, *, now: datetime | None = None) -> dict[str, int] | None:
        """Run retention once if this process holds (or takes) the lease; None if not."""
        if not await acquire_lease(
            self.engine, self.lease_name, self.holder_id, self.lease_seconds, now=now
        ):
            return None
        deleted = await run_retention(
            self.engine, self.addon_key, self.policy, now=now, metrics=self.metrics
        )
        if any(deleted.values()):
            log.info("retention deleted %s", deleted, extra={"addon": self.addon_key})
        return deleted

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:
                # Retried next interval; the formatter redacts the traceback too.
                log.error(
                    "retention failed for %s, retrying in %.0fs: %s",
                    self.addon_key,
                    self.interval_seconds,
                    redact_text(f"{type(exc).__name__}: {exc}"),
                    exc_info=exc,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_seconds)


async def run_once(settings: AddonSettings) -> dict[str, int]:
    """Run retention once for an app's settings (the `retention` CLI command).

    No lease is taken: the replica holding it would refuse an operator's run for up to
    two intervals, and a run beside the scheduler's is harmless (see the scheduler).
    """
    engine = create_engine(settings.database_url)
    try:
        return await run_retention(
            engine, settings.addon_key, RetentionPolicy.from_settings(settings)
        )
    finally:
        await engine.dispose()
