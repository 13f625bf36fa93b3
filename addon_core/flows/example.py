"""The contract's example flow, "Tag meetings", written once.

The OpenAPI document shows it as the example of a flow body; the tests, benchmarks and
scripts import it from here rather than write it out again.
"""

from __future__ import annotations

import copy
from typing import Any, Final

#: Where the example's retag step takes its tags from in the contract: the entry's own.
EVENT_TAG_IDS: Final = "{{ event.tagIds }}"

_TAG_MEETINGS: Final[dict[str, Any]] = {
    "name": "Tag meetings",
    "enabled": True,
    "trigger": {"source": "clockify", "events": ["NEW_TIME_ENTRY"]},
    "conditions": {
        "mode": "all",
        "rules": [{"path": "event.description", "op": "contains", "value": "meeting"}],
    },
    "actions": [
        {
            "id": "project",
            "type": "clockify",
            "operation": "getProject",
            "params": {"projectId": "{{ event.projectId }}"},
        },
        {
            "id": "retag",
            "type": "clockify",
            "operation": "updateTimeEntry",
            "params": {"id": "{{ event.id }}"},
            "body": {
                "start": "{{ event.timeInterval.start }}",
                "description": "{{ event.description }} / {{ actions.project.body.name }}",
                "tagIds": EVENT_TAG_IDS,
            },
        },
    ],
}


def tag_meetings(*, tag_ids: str | None = EVENT_TAG_IDS, **changes: Any) -> dict[str, Any]:
    """Return a fresh copy of the example: read the entry's project, then retag the entry.

    Args:
        tag_ids: the template of the retag step's `tagIds`; None leaves the field out (for
            events that carry no tags).
        changes: top-level fields that replace the example's (`name=`, `actions=`, ...).
    """
    document = copy.deepcopy(_TAG_MEETINGS)
    body = document["actions"][1]["body"]
    if tag_ids is None:
        del body["tagIds"]
    else:
        body["tagIds"] = tag_ids
    document.update(changes)
    return document
