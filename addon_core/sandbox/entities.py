"""One Clockify entity at a time, shaped like the response schemas of its OpenAPI document.

Ids, instants, durations, rates, memberships and time entries, as both the seeder and the
sandbox's writes (a created or edited time entry) build them.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

Entity = dict[str, Any]

#: The day seeded dates count back from.
EPOCH = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
CURRENCY = "USD"


def new_id(rng: random.Random) -> str:
    """Draw a 24-hex-digit id from `rng`."""
    return f"{rng.getrandbits(96):024x}"


def iso(moment: datetime) -> str:
    """Format an instant as Clockify answers it, in UTC to the second."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: int) -> str:
    """Format seconds as the ISO 8601 duration Clockify answers (`PT1H30M`)."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if v)
    return f"PT{text or '0S'}"


def rate(amount: int) -> Entity:
    """Build a rate in cents of the sandbox's one currency."""
    return {"amount": amount, "currency": CURRENCY}


def membership(user_id: str, target_id: str, kind: str) -> Entity:
    """Build an active membership of a user in a workspace or project."""
    return {
        "userId": user_id,
        "targetId": target_id,
        "membershipType": kind,
        "membershipStatus": "ACTIVE",
        "hourlyRate": None,
        "costRate": None,
    }


def time_interval(start: datetime, end: datetime | None) -> Entity:
    """Build a time interval; a running entry has no end and no duration."""
    return {
        "start": iso(start),
        "end": iso(end) if end else None,
        "duration": duration(int((end - start).total_seconds())) if end else None,
    }


def time_entry(
    entry_id: str,
    workspace_id: str,
    user_id: str,
    fields: Entity,
    start: datetime,
    end: datetime | None,
) -> Entity:
    """Build a time entry (TimeEntryWithRatesDtoV1) from its editable fields."""
    return {
        "id": entry_id,
        "workspaceId": workspace_id,
        "userId": user_id,
        "description": fields.get("description") or "",
        "projectId": fields.get("projectId"),
        "taskId": fields.get("taskId"),
        "tagIds": list(fields.get("tagIds") or []),
        "billable": bool(fields.get("billable")),
        "type": fields.get("type") or "REGULAR",
        "isLocked": False,
        "kioskId": None,
        "customFieldValues": [],
        "hourlyRate": rate(5000) if fields.get("billable") else None,
        "costRate": None,
        "timeInterval": time_interval(start, end),
    }
