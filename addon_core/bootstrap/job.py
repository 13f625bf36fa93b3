"""The `bootstrap` job: a run's lists paged through together and stored in the entity cache.

A page's entities and its list's `next_page` commit in one transaction, guarded by the
row still being at that page of that run: a run cut short resumes at the next page, a
newer run takes the rows over, and each entity is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from addon_core.bootstrap.lists import Listing, entity_key, listing, unwrap_items
from addon_core.bootstrap.runs import DONE, FAILED, PENDING, RUNNING, plan_rows
from addon_core.clockify.catalogue import WORKSPACE_PARAM, Catalogue, build_url
from addon_core.clockify.client import (
    ClockifyAPIError,
    ClockifyUnavailableError,
    InstallationContext,
)
from addon_core.errors import AddonError, ConflictError, NotFoundError
from addon_core.installations.context import context_for
from addon_core.jobs.queue import ClaimedJob, RetryJobError
from addon_core.redaction import redact_text
from addon_core.runtime import AddonRuntime
from addon_core.storage.database import is_sqlite
from addon_core.storage.models import BootstrapProgress, CachedEntity
from addon_core.storage.scope import scoped

log = logging.getLogger(__name__)

#: Page requests a job keeps in flight, all lists together: enough to use the 50 calls
#: a second at Clockify's latency (0.2 s x 50/s); the pacer holds the rate, not this.
IN_FLIGHT = 10
#: Once two pages came back full, a list keeps two pages in flight, one more for every
#: RAMP full pages after, up to MAX_AHEAD: the next page is on its way while a page is
#: stored, a long list is fetched in parallel, and the pages requested past the end
#: (empty answers) stay few, none for a list of one or two pages.
RAMP = 3
MAX_AHEAD = 6
#: A list that keeps answering full pages is stopped here rather than paged forever.
MAX_PAGES = 10_000
_ERROR_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Progress:
    """What the job needs of a progress row, read once."""

    addon_key: str
    workspace_id: str
    operation_id: str
    run: int
    status: str
    next_page: int

    def where(self) -> tuple[Any, ...]:
        """This list's row, if it still belongs to this run."""
        return (
            *scoped(BootstrapProgress, self.addon_key, self.workspace_id),
            BootstrapProgress.operation_id == self.operation_id,
            BootstrapProgress.run == self.run,
        )


class Bootstrapper:
    """Runs the `bootstrap` jobs of one app."""

    def __init__(self, runtime: AddonRuntime) -> None:
        self.runtime = runtime
        # SQLite has one writer: the lists' commits queue here, in order, rather than
        # in SQLite's busy handler, which polls with sleeps of up to 100 ms.
        self._sqlite_writes = asyncio.Lock()

    async def run(self, job: ClaimedJob) -> None:
        """Fetch every list of the job's run not done yet, all at once, from its next page."""
        runtime = self.runtime
        workspace_id, run = job.workspace_id, int(job.payload.get("run", 0))
        try:
            context = await context_for(runtime, workspace_id)
        except (NotFoundError, ConflictError) as exc:
            log.info("bootstrap: %s has nothing to fetch with: %s", workspace_id, exc.detail)
            return
        rows = await self._read_rows(workspace_id) or await self._plan_now(workspace_id, run)
        if any(row.run != run for row in rows):
            log.info("bootstrap: run %d of %s was superseded by a newer run", run, workspace_id)
            return
        catalogue = runtime.catalogue
        slots = asyncio.Semaphore(IN_FLIGHT)
        unavailable: list[str] = []

        async def fetch(row: Progress) -> None:
            try:
                await self._fetch(context, catalogue, row, slots)
            except ClockifyUnavailableError as exc:
                unavailable.append(row.operation_id)
                await self._record_error(row, exc.detail, final=job.last_attempt)

        try:
            async with asyncio.TaskGroup() as group:
                for row in rows:
                    if row.status in (PENDING, RUNNING):
                        group.create_task(fetch(row))
        except BaseExceptionGroup as errors:
            raise errors.exceptions[0] from None
        if unavailable and not job.last_attempt:
            raise RetryJobError(
                f"Clockify was unavailable for {', '.join(sorted(unavailable))}; "
                "they resume from the page they reached"
            )

    async def _fetch(
        self,
        context: InstallationContext,
        catalogue: Catalogue,
        row: Progress,
        slots: asyncio.Semaphore,
    ) -> None:
        """Page through one list from its next page until a short page, storing in order."""
        described = await self._listing(catalogue, row)
        if described is None or not await self._mark_running(row):
            return
        size = described.page_size
        first = page = row.next_page
        ahead: dict[int, asyncio.Task[Any]] = {}

        def request_from(start: int) -> None:
            """Have the window of pages from `start` in flight."""
            window = 1
            if size is not None and start > first + 1:
                window = min(MAX_AHEAD, 2 + (start - first - 2) // RAMP)
            for wanted in range(start, min(start + window, MAX_PAGES + 1)):
                if wanted not in ahead:
                    ahead[wanted] = asyncio.create_task(
                        self._get_page(context, described, wanted, slots)
                    )

        try:
            while True:
                request_from(page)
                items = await self._items(row, described, ahead.pop(page))
                if items is None:
                    return
                # Pages after it that are in already commit with it: one commit, not several.
                batch = [items]
                if size is not None and len(items) >= size:
                    batch += take_ready(ahead, page + 1, described)
                end = page + len(batch) - 1
                full = size is not None and len(batch[-1]) >= size
                last = not full or end >= MAX_PAGES
                if not last:
                    request_from(end + 1)  # the next pages travel while these commit
                if not await self._store_pages(row, page, batch, last=last):
                    log.info("bootstrap: %s of %s was taken over", row.operation_id, row.run)
                    return
                if last:
                    if full:
                        await self._record_error(
                            row, f"stopped after {MAX_PAGES} pages", final=True
                        )
                    return
                page = end + 1
        finally:
            for task in ahead.values():
                task.cancel()
            # Pages past the end are dropped; their outcome, even an error, is moot.
            await asyncio.gather(*ahead.values(), return_exceptions=True)

    async def _listing(self, catalogue: Catalogue, row: Progress) -> Listing | None:
        """The list operation a row pages through; None (recorded) when it is not one."""
        try:
            described = listing(catalogue.get(row.operation_id))
        except AddonError as exc:
            await self._record_error(row, exc.detail, final=True)
            return None
        if described is None:
            await self._record_error(row, "the operation is not a workspace list", final=True)
        return described

    async def _items(
        self, row: Progress, described: Listing, page: asyncio.Task[Any]
    ) -> list[Any] | None:
        """One page's items; None (recorded as final) when Clockify gave none."""
        try:
            body = await page
        except ClockifyAPIError as exc:
            # A 403 or 404 is usually a feature the workspace's plan lacks.
            error = f"Clockify answered {exc.status}: {exc.message}"
            await self._record_error(row, error, final=True)
            return None
        except ClockifyUnavailableError:
            raise
        except AddonError as exc:  # the host or base URL refused before any call
            await self._record_error(row, exc.detail, final=True)
            return None
        items = unwrap_items(body, described.noun)
        if items is None:
            await self._record_error(row, "Clockify's answer holds no list", final=True)
        return items

    async def _get_page(
        self,
        context: InstallationContext,
        described: Listing,
        page: int,
        slots: asyncio.Semaphore,
    ) -> Any:
        operation = described.operation
        params = {**described.params, WORKSPACE_PARAM: context.workspace_id}
        if operation.pagination is not None:
            pagination = operation.pagination
            params |= {pagination.page_param: page, pagination.size_param: described.page_size}
        url = build_url(operation, params, context.base_urls)
        async with slots:
            response = await self.runtime.clockify.call(
                context, "GET", url, operation=operation.operation_id, lane="bootstrap"
            )
        return response.body

    async def _store_pages(
        self, row: Progress, page: int, batch: Sequence[Sequence[Any]], *, last: bool
    ) -> bool:
        """Store consecutive pages' entities and advance the list's row, in one transaction.

        False when the row is no longer at this page of this run (a newer run, or another
        worker after a lease expired): then nothing is written.
        """
        runtime = self.runtime
        now = datetime.now(UTC)
        entities = {
            key: item for items in batch for item in items if (key := entity_key(item)) is not None
        }
        engine, sessions = runtime.engine, runtime.sessions
        lock = self._sqlite_writes if is_sqlite(engine) else contextlib.nullcontext()
        async with lock, sessions.begin() as session:
            # First, as it locks the row: a second writer of this page waits, then misses.
            advanced = await session.execute(
                update(BootstrapProgress)
                .where(
                    *row.where(),
                    BootstrapProgress.next_page == page,
                    BootstrapProgress.status.in_((PENDING, RUNNING)),
                )
                .values(
                    next_page=page + len(batch),
                    pages=BootstrapProgress.pages + len(batch),
                    items=BootstrapProgress.items + len(entities),
                    status=DONE if last else RUNNING,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not advanced.rowcount:  # type: ignore[attr-defined]
                return False
            if page == 1:
                # A run's first page replaces the list's cache, so deleted entities leave it.
                await session.execute(
                    delete(CachedEntity).where(
                        *scoped(CachedEntity, runtime.addon_key, row.workspace_id),
                        CachedEntity.entity_type == row.operation_id,
                    )
                )
            if entities:
                # Core, not the ORM's bulk path: the same statement at half the cost.
                connection = await session.connection()
                rows = cache_rows(runtime.addon_key, row, entities, now)
                await connection.execute(upsert_statement(is_sqlite(engine)), rows)
        runtime.metrics.bootstrap_items.labels(runtime.addon_key, row.operation_id).inc(
            len(entities)
        )
        return True

    async def _mark_running(self, row: Progress) -> bool:
        """Show the list as running; False if a newer run took its row over."""
        return await self._update(
            row, status=RUNNING, when=(BootstrapProgress.status.in_((PENDING, RUNNING)),)
        )

    async def _record_error(self, row: Progress, error: str, *, final: bool) -> None:
        """Count an error on a list's row; a final one fails the list for this run."""
        message = redact_text(error)[:_ERROR_LIMIT]
        log.warning("bootstrap: %s of %s: %s", row.operation_id, row.workspace_id, message)
        values: dict[str, Any] = {"errors": BootstrapProgress.errors + 1, "last_error": message}
        if final:
            values["status"] = FAILED
        await self._update(row, **values)

    async def _update(self, row: Progress, *, when: tuple[Any, ...] = (), **values: Any) -> bool:
        engine, sessions = self.runtime.engine, self.runtime.sessions
        lock = self._sqlite_writes if is_sqlite(engine) else contextlib.nullcontext()
        async with lock, sessions.begin() as session:
            result = await session.execute(
                update(BootstrapProgress)
                .where(*row.where(), *when)
                .values(updated_at=datetime.now(UTC), **values)
                .execution_options(synchronize_session=False)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _read_rows(self, workspace_id: str) -> list[Progress]:
        async with self.runtime.sessions() as session:
            rows = await session.scalars(
                select(BootstrapProgress).where(
                    *scoped(BootstrapProgress, self.runtime.addon_key, workspace_id)
                )
            )
            return [
                Progress(r.addon_key, r.workspace_id, r.operation_id, r.run, r.status, r.next_page)
                for r in rows
            ]

    async def _plan_now(self, workspace_id: str, run: int) -> list[Progress]:
        """Plan a run whose start could not (the OpenAPI document was missing then)."""
        rows = plan_rows(self.runtime, workspace_id, run)
        if rows:
            async with self.runtime.sessions.begin() as session:
                await session.execute(insert(BootstrapProgress), rows)
        return await self._read_rows(workspace_id)


def take_ready(ahead: dict[int, asyncio.Task[Any]], page: int, described: Listing) -> list[Any]:
    """Take the item lists of the full pages from `page` on that have arrived, in order."""
    size = described.page_size
    taken: list[Any] = []
    while size is not None and len(taken) < MAX_AHEAD:
        task = ahead.get(page)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            break
        items = unwrap_items(task.result(), described.noun)
        if items is None:
            break  # left for the loop, which records the error
        del ahead[page]
        taken.append(items)
        if len(items) < size:
            break  # the last page: nothing after it counts
        page += 1
    return taken


def upsert_statement(on_sqlite: bool) -> Any:
    """Insert cache rows, or refresh the ones already cached (executed with many rows)."""
    statement = (sqlite if on_sqlite else postgresql).insert(CachedEntity.__table__)
    return statement.on_conflict_do_update(
        index_elements=["addon_key", "workspace_id", "entity_type", "entity_id"],
        set_={"data": statement.excluded.data, "fetched_at": statement.excluded.fetched_at},
    )


def cache_rows(
    addon_key: str, row: Progress, entities: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    return [
        {
            "addon_key": addon_key,
            "workspace_id": row.workspace_id,
            "entity_type": row.operation_id,
            "entity_id": key,
            "data": item,
            "fetched_at": now,
        }
        for key, item in entities.items()
    ]
