"""Clockify's webhook event types, their slugs, paths and metric labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addon_core.event_types import (
    CLOCKIFY_EVENT_TYPES,
    event_for_slug,
    event_slug,
    metric_label,
    webhook_path,
)


def test_event_types_are_the_manifest_schema_enum(reference_dir: Path) -> None:
    schema = json.loads((reference_dir / "manifest-schema-1.6.json").read_text())

    enum = schema["definitions"]["webhook"]["properties"]["event"]["enum"]

    assert set(enum) == CLOCKIFY_EVENT_TYPES
    assert len(enum) == 51


@pytest.mark.parametrize("event_type", sorted(CLOCKIFY_EVENT_TYPES))
def test_slug_round_trips(event_type: str) -> None:
    slug = event_slug(event_type)

    assert event_for_slug(slug) == event_type
    assert webhook_path(event_type) == f"/webhooks/clockify/{slug}"


def test_known_slug_and_path_shape() -> None:
    assert webhook_path("NEW_TIME_ENTRY") == "/webhooks/clockify/new-time-entry"
    assert event_for_slug("new-time-entry") == "NEW_TIME_ENTRY"


@pytest.mark.parametrize("slug", ["new_time_entry", "NEW-TIME-ENTRY", "no-such-event", ""])
def test_unknown_slug_has_no_event(slug: str) -> None:
    assert event_for_slug(slug) is None


@pytest.mark.parametrize(
    ("event_type", "label"),
    [
        ("NEW_TIME_ENTRY", "NEW_TIME_ENTRY"),
        ("USERS_INVITED_TO_WORKSPACE", "USERS_INVITED_TO_WORKSPACE"),
        ("NEW_THING", "unknown"),
        ("new_time_entry", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_metric_label_is_bounded(event_type: str | None, label: str) -> None:
    assert metric_label(event_type) == label
