"""Which event types Universal Webhook registers through Clockify's webhooks API, and in what order.

Pure: the types the API offers (`PRIORITY`, less the manifest's own), the `COVERAGE_PRIORITY`
setting's check, and the order `registration` walks until Clockify refuses one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from addon_core.runtime import AddonRuntime

#: Clockify's webhooks API offers every event type but this one (its `WebhookEventType`).
NOT_IN_WEBHOOKS_API = frozenset({"TIME_OFF_REQUEST_STARTED"})

#: Which uncovered event types are registered first (those in the manifest are skipped).
PRIORITY: tuple[str, ...] = (
    # the life cycle of what the manifest follows
    "TIME_ENTRY_SPLIT",
    "TIME_ENTRY_RESTORED",
    "PROJECT_DELETED",
    "CLIENT_UPDATED",
    "CLIENT_DELETED",
    "APPROVAL_REQUEST_STATUS_UPDATED",
    # what time entries refer to
    "NEW_TASK",
    "TASK_UPDATED",
    "TASK_DELETED",
    "NEW_TAG",
    "TAG_UPDATED",
    "TAG_DELETED",
    # people
    "USER_UPDATED",
    "USER_DELETED_FROM_WORKSPACE",
    "USER_DEACTIVATED_ON_WORKSPACE",
    "USER_ACTIVATED_ON_WORKSPACE",
    "USER_EMAIL_CHANGED",
    "USERS_INVITED_TO_WORKSPACE",
    "LIMITED_USERS_ADDED_TO_WORKSPACE",
    "USER_GROUP_CREATED",
    "USER_GROUP_UPDATED",
    "USER_GROUP_DELETED",
    # time off
    "TIME_OFF_REQUESTED",
    "TIME_OFF_REQUEST_APPROVED",
    "TIME_OFF_REQUEST_REJECTED",
    "TIME_OFF_REQUEST_UPDATED",
    "TIME_OFF_REQUEST_WITHDRAWN",
    "BALANCE_UPDATED",
    # expenses and invoices
    "EXPENSE_CREATED",
    "EXPENSE_UPDATED",
    "EXPENSE_DELETED",
    "EXPENSE_RESTORED",
    "NEW_INVOICE",
    "INVOICE_UPDATED",
    # scheduling
    "ASSIGNMENT_CREATED",
    "ASSIGNMENT_UPDATED",
    "ASSIGNMENT_DELETED",
    "ASSIGNMENT_PUBLISHED",
    # rates
    "BILLABLE_RATE_UPDATED",
    "COST_RATE_UPDATED",
    # the manifest's own, in case a manifest leaves them out
    "NEW_TIME_ENTRY",
    "TIME_ENTRY_UPDATED",
    "TIME_ENTRY_DELETED",
    "NEW_TIMER_STARTED",
    "TIMER_STOPPED",
    "NEW_PROJECT",
    "PROJECT_UPDATED",
    "NEW_CLIENT",
    "USER_JOINED_WORKSPACE",
    "NEW_APPROVAL_REQUEST",
)


def check_priority(event_types: Sequence[str]) -> tuple[str, ...]:
    """Check a `COVERAGE_PRIORITY` list: event types the webhooks API offers, each once."""
    unknown = [e for e in event_types if e not in PRIORITY]
    if unknown:
        raise ValueError(
            f"{', '.join(unknown)} cannot be registered through Clockify's webhooks API; "
            "name event types such as NEW_TASK,TAG_UPDATED (docs/configuration.md)"
        )
    repeated = sorted({e for e in event_types if event_types.count(e) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} named more than once; name each type once")
    return tuple(event_types)


def priority_order(first: Iterable[str] = ()) -> list[str]:
    """Every event type the webhooks API offers: `first`, then the rest in `PRIORITY` order."""
    ahead = list(first)
    return ahead + [e for e in PRIORITY if e not in ahead]


def wanted_event_types(runtime: AddonRuntime) -> list[str]:
    """The event types to register through the API, in priority order (the manifest's left out)."""
    manifest = set(runtime.manifest.webhook_events.values())
    # Only Universal Webhook's settings have the field; the default order serves the rest.
    first: tuple[str, ...] = getattr(runtime.settings, "coverage_priority", ())
    return [e for e in priority_order(first) if e not in manifest]
