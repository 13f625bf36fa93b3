"""Clockify's webhook event types and the path each is received on.

The set is the `webhook.event` enum of manifest schema 1.6, which is also the
`WebhookEventType` enum of the workspace webhooks API in Clockify's OpenAPI
document. Every type has its own path (`/webhooks/clockify/new-time-entry`):
Clockify's INSTALLED payload ties a token to a path, never to an event.
"""

from __future__ import annotations

CLOCKIFY_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "APPROVAL_REQUEST_STATUS_UPDATED",
        "ASSIGNMENT_CREATED",
        "ASSIGNMENT_DELETED",
        "ASSIGNMENT_PUBLISHED",
        "ASSIGNMENT_UPDATED",
        "BALANCE_UPDATED",
        "BILLABLE_RATE_UPDATED",
        "CLIENT_DELETED",
        "CLIENT_UPDATED",
        "COST_RATE_UPDATED",
        "EXPENSE_CREATED",
        "EXPENSE_DELETED",
        "EXPENSE_RESTORED",
        "EXPENSE_UPDATED",
        "INVOICE_UPDATED",
        "LIMITED_USERS_ADDED_TO_WORKSPACE",
        "NEW_APPROVAL_REQUEST",
        "NEW_CLIENT",
        "NEW_INVOICE",
        "NEW_PROJECT",
        "NEW_TAG",
        "NEW_TASK",
        "NEW_TIME_ENTRY",
        "NEW_TIMER_STARTED",
        "PROJECT_DELETED",
        "PROJECT_UPDATED",
        "TAG_DELETED",
        "TAG_UPDATED",
        "TASK_DELETED",
        "TASK_UPDATED",
        "TIME_ENTRY_DELETED",
        "TIME_ENTRY_RESTORED",
        "TIME_ENTRY_SPLIT",
        "TIME_ENTRY_UPDATED",
        "TIME_OFF_REQUEST_APPROVED",
        "TIME_OFF_REQUEST_REJECTED",
        "TIME_OFF_REQUEST_STARTED",
        "TIME_OFF_REQUEST_UPDATED",
        "TIME_OFF_REQUEST_WITHDRAWN",
        "TIME_OFF_REQUESTED",
        "TIMER_STOPPED",
        "USER_ACTIVATED_ON_WORKSPACE",
        "USER_DEACTIVATED_ON_WORKSPACE",
        "USER_DELETED_FROM_WORKSPACE",
        "USER_EMAIL_CHANGED",
        "USER_GROUP_CREATED",
        "USER_GROUP_DELETED",
        "USER_GROUP_UPDATED",
        "USER_JOINED_WORKSPACE",
        "USER_UPDATED",
        "USERS_INVITED_TO_WORKSPACE",
    }
)

WEBHOOK_PATH_PREFIX = "/webhooks/clockify/"


def event_slug(event_type: str) -> str:
    return event_type.lower().replace("_", "-")


def webhook_path(event_type: str) -> str:
    """Return the path an event type is received on."""
    return f"{WEBHOOK_PATH_PREFIX}{event_slug(event_type)}"


def metric_label(event_type: str | None) -> str:
    """Return a bounded label: the event type if Clockify knows it, else `unknown`."""
    return event_type if event_type in CLOCKIFY_EVENT_TYPES else "unknown"
