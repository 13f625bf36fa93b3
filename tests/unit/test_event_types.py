"""Clockify's webhook event types, their slugs, paths and metric labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from addon_core.clockify.event_types import (
    CLOCKIFY_EVENT_TYPES,
    event_slug,
    metric_label,
    webhook_path,
)


def test_event_types_are_the_manifest_schema_enum(reference_dir: Path) -> None:
    schema = json.loads((reference_dir / "manifest-schema-1.6.json").read_text())

    enum = schema["definitions"]["webhook"]["properties"]["event"]["enum"]

    assert set(enum) == CLOCKIFY_EVENT_TYPES
    assert len(enum) == 51


def test_every_event_type_has_a_path_of_its_own() -> None:
    paths = {webhook_path(event_type) for event_type in CLOCKIFY_EVENT_TYPES}

    assert len(paths) == len(CLOCKIFY_EVENT_TYPES)
    assert all(p == f"/webhooks/clockify/{p.rsplit('/', 1)[1]}" for p in paths)


def test_known_slug_and_path_shape() -> None:
    assert event_slug("NEW_TIME_ENTRY") == "new-time-entry"
    assert webhook_path("NEW_TIME_ENTRY") == "/webhooks/clockify/new-time-entry"


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
