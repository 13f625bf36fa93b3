"""Durable webhook intake: deliveries are committed in coalesced transactions before the 2xx.

Concurrent deliveries queue here; one writer task takes whatever is queued and,
in one transaction, checks each against the installation and the webhook token
stored for its path, then inserts the accepted ones with their dedupe key
(a redelivered identical body inserts nothing). Each delivery's future resolves
only after the commit, so nothing is acknowledged that is not stored. Events past
their workspace's daily quota are stored and acknowledged too, marked: a webhook is
never refused for a quota.

A redelivery of an event this process committed within the dedupe window, with the
same webhook token, is answered from memory (`RecentKeys`) without a transaction: the
database would answer the same, and nothing is stored or run either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from addon_core.clockify.tokens import ClaimMismatchError
from addon_core.errors import AddonError, ConflictError
from addon_core.intake.store import Registry, StoreOptions, open_event_store
from addon_core.metrics import Metrics
from addon_core.storage.database import DatabaseUnavailableError, translate_errors

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


class NotInstalledError(ConflictError):
    """The workspace has no active installation of this add-on."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail, reason=reason)


@dataclass(slots=True)
class Delivery:
    """One verified, parsed webhook delivery waiting for its commit."""

    workspace_id: str
    event_type: str
    path: str
    addon_id: str | None
    token_digest: bytes
    dedupe_key: str
    payload: str
    #: the request's headers minus credentials; encoded as JSON when stored, so that a
    #: redelivery answered from memory never pays for it
    headers: Mapping[str, str]
    source: str = "clockify"
    endpoint_id: str | None = None
    future: asyncio.Future[Outcome] = field(init=False)


class RecentKeys:
    """The dedupe keys this process committed lately, to answer their redeliveries at once.

    Bounded (least recently stored first out) and timed on the monotonic clock from
    before the commit, so an entry expires no later than the database's key does. A key
    only answers for the token it was stored with: a reinstall issues new tokens, and its
    deliveries go to the database. A lifecycle call forgets its workspace's keys.
    """

    def __init__(self, window_seconds: float, size: int = 16_384) -> None:
        self._window = window_seconds
        self._size = size
        self._keys: OrderedDict[str, tuple[float, bytes, str]] = OrderedDict()

    def seen(self, delivery: Delivery) -> bool:
        entry = self._keys.get(delivery.dedupe_key)
        if entry is None:
            return False
        at, digest, _workspace = entry
        if time.monotonic() - at >= self._window:
            del self._keys[delivery.dedupe_key]
            return False
        return hmac.compare_digest(digest, delivery.token_digest)

    def remember(self, delivery: Delivery, at: float) -> None:
        self._keys[delivery.dedupe_key] = (at, delivery.token_digest, delivery.workspace_id)
        self._keys.move_to_end(delivery.dedupe_key)
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)

    def forget(self, workspace_id: str) -> None:
        for key in [k for k, (_, _, w) in self._keys.items() if w == workspace_id]:
            del self._keys[key]


class IntakeWriter:
    """Commit deliveries in batches; one writer task per process."""

    def __init__(
        self,
        engine: AsyncEngine,
        addon_key: str,
        metrics: Metrics,
        *,
        batch_size: int = 256,
        dedupe_window: timedelta = timedelta(minutes=10),
        job_attempts: int = 8,
        events_per_day: int = 200_000,
        on_jobs_queued: Callable[[], None] | None = None,
    ) -> None:
        self._store = open_event_store(
            engine,
            StoreOptions(
                dedupe_window=dedupe_window,
                job_attempts=job_attempts,
                events_per_day=events_per_day,
            ),
        )
        self._on_jobs_queued = on_jobs_queued
        self._addon_key = addon_key
        self._metrics = metrics
        self._batch_size = batch_size
        self.recent = RecentKeys(dedupe_window.total_seconds())
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[Delivery] = []
        #: True from a batch the database refused (down, disk full) until one is stored or
        #: /readyz's write probe passes: readiness must not report a store that cannot write.
        self.write_failed = False
        self._depth = metrics.intake_queue.labels(addon_key)
        self._batch_sizes = metrics.intake_batch_size.labels(addon_key)
        self._over_quota = metrics.quota_refusals.labels(addon_key, "events_per_day")

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"intake-writer:{self._addon_key}")

    async def stop(self, grace: float = 10.0) -> None:
        """Commit what is queued within `grace` seconds, then end the writer task.

        Deliveries still waiting after that are answered 503 (Clockify may deliver them
        again); one whose commit was under way may be stored all the same, and then
        its redelivery is answered as a duplicate.
        """
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), grace)
        except TimeoutError:
            log.error("intake: deliveries not committed %.0f s after shutdown began", grace)
        in_flight = self._in_flight  # the batch under way, if any: cancelling clears it
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        shutdown = DatabaseUnavailableError("the add-on is shutting down; deliver again")
        for delivery in [*in_flight, *_drain(self._queue)]:
            if not delivery.future.done():
                delivery.future.set_exception(shutdown)
        await self._store.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def submit(self, delivery: Delivery) -> Outcome:
        """Queue a delivery and wait until it is committed (or refused)."""
        if not self.running:
            raise DatabaseUnavailableError("the intake writer is not running; retry later")
        if self.recent.seen(delivery):
            return Outcome.DUPLICATE
        delivery.future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(delivery)
        self._depth.inc()
        return await delivery.future

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._in_flight = batch
            try:
                await self._write(batch)
                self.write_failed = False
            except Exception as exc:
                if isinstance(exc, DatabaseUnavailableError) or not isinstance(exc, AddonError):
                    self.write_failed = True
                error = (
                    exc
                    if isinstance(exc, AddonError)
                    else DatabaseUnavailableError("the event could not be stored; retry later")
                )
                if not isinstance(exc, AddonError):
                    log.exception("intake batch of %d failed", len(batch))
                for delivery in batch:
                    if not delivery.future.done():
                        delivery.future.set_exception(error)
            finally:
                self._in_flight = []
                self._depth.dec(len(batch))
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[Delivery]) -> None:
        problems: dict[int, AddonError] = {}
        firsts: dict[str, int] = {}

        def plan(registry: Registry) -> list[tuple[Any, ...]]:
            # Runs inside the transaction (on the store's thread for SQLite): pure, no I/O.
            rows = []
            for index, delivery in enumerate(batch):
                problem = _check(delivery, registry)
                if problem is not None:
                    problems[index] = problem
                elif delivery.dedupe_key not in firsts:
                    firsts[delivery.dedupe_key] = index
                    rows.append(self._row(delivery))
            return rows

        workspaces = sorted({d.workspace_id for d in batch})
        paths = sorted({d.path for d in batch})
        started = time.monotonic()
        async with translate_errors("storing webhook events"):
            stored = await self._store.write(self._addon_key, workspaces, paths, plan)
        self._batch_sizes.observe(len(batch))
        inserted = stored.keys
        if stored.over_quota:
            # Stored and acknowledged all the same; they run no flow (flows.dispatch).
            self._over_quota.inc(stored.over_quota)
        if stored.jobs and self._on_jobs_queued is not None:
            self._on_jobs_queued()  # wake the claimer: their flows may start now
        for index, delivery in enumerate(batch):
            if delivery.future.done():
                continue  # its request was cancelled; the event is stored all the same
            if index in problems:
                delivery.future.set_exception(problems[index])
            elif firsts[delivery.dedupe_key] == index and delivery.dedupe_key in inserted:
                self.recent.remember(delivery, started)
                delivery.future.set_result(Outcome.ACCEPTED)
            else:
                delivery.future.set_result(Outcome.DUPLICATE)

    def _row(self, delivery: Delivery) -> tuple[Any, ...]:
        # EVENT_COLUMNS order, received_at excepted (the store stamps the batch).
        return (
            self._addon_key,
            delivery.workspace_id,
            delivery.event_type,
            delivery.source,
            delivery.dedupe_key,
            delivery.payload,
            msgspec.json.encode(delivery.headers).decode(),
            delivery.endpoint_id,
        )


def _drain(queue: asyncio.Queue[Delivery]) -> list[Delivery]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
        queue.task_done()
    return items


def _check(delivery: Delivery, registry: Registry) -> AddonError | None:
    """Return why a delivery must be refused, or None if it may be stored."""
    entry = registry.get(delivery.workspace_id)
    if entry is None or entry[0] == "DELETED":
        return NotInstalledError(
            f"workspace {delivery.workspace_id} has no installation of this add-on",
            "not_installed",
        )
    status, addon_id, digests = entry
    if status != "ACTIVE":
        return NotInstalledError(
            f"the add-on is {status.lower()} on workspace {delivery.workspace_id}; "
            "events are refused until it is activated again",
            "inactive",
        )
    if delivery.addon_id is not None and delivery.addon_id != addon_id:
        return ClaimMismatchError(
            "addon_id", "the token belongs to another installation of this add-on (addonId)"
        )
    if delivery.source == "custom":
        return None  # verified by its Standard Webhooks signature; it carries no Clockify token
    expected = digests.get(delivery.path)
    if expected is None or not hmac.compare_digest(expected, delivery.token_digest):
        return ClaimMismatchError(
            "webhook_token", "the signature is not the token Clockify issued for this webhook"
        )
    return None
