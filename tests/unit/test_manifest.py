"""The manifests: project rules, rendering, setting defaults and INSTALLED webhook paths."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from addon_core.clockify.event_types import webhook_path
from addon_core.clockify.manifest import Manifest, load_manifest, normalize_webhook_path

APP_NAMES = ["api-studio", "universal-webhook"]
SPARE_EVENTS = [
    "TAG_UPDATED",
    "TAG_DELETED",
    "TASK_UPDATED",
    "TASK_DELETED",
    "CLIENT_UPDATED",
    "CLIENT_DELETED",
    "PROJECT_DELETED",
    "EXPENSE_CREATED",
    "EXPENSE_UPDATED",
    "EXPENSE_DELETED",
    "NEW_INVOICE",
]


def minimal_template() -> dict[str, Any]:
    return {
        "schemaVersion": "1.6",
        "name": "Test",
        "lifecycle": [
            {"type": kind, "path": f"/lifecycle/{kind.lower()}"}
            for kind in ("INSTALLED", "STATUS_CHANGED", "SETTINGS_UPDATED", "DELETED")
        ],
        "webhooks": [{"event": "NEW_TAG", "path": webhook_path("NEW_TAG")}],
    }


def with_webhooks(*events: str) -> Callable[[dict[str, Any]], None]:
    def change(template: dict[str, Any]) -> None:
        template["webhooks"] += [{"event": e, "path": webhook_path(e)} for e in events]

    return change


def with_webhook(event: str, path: str) -> Callable[[dict[str, Any]], None]:
    def change(template: dict[str, Any]) -> None:
        template["webhooks"].append({"event": event, "path": path})

    return change


def without_lifecycle(kind: str) -> Callable[[dict[str, Any]], None]:
    def change(template: dict[str, Any]) -> None:
        template["lifecycle"] = [i for i in template["lifecycle"] if i["type"] != kind]

    return change


@pytest.mark.parametrize("app_name", APP_NAMES)
def test_shipped_manifest_follows_the_rules(app_name: str) -> None:
    manifest = load_manifest(app_name)

    assert manifest.check_rules() == []
    assert manifest.schema_version == "1.6"
    assert set(manifest.lifecycle_paths) == {
        "INSTALLED",
        "STATUS_CHANGED",
        "SETTINGS_UPDATED",
        "DELETED",
    }
    assert all(path == webhook_path(event) for path, event in manifest.webhook_events.items())


def test_minimal_template_follows_the_rules() -> None:
    assert Manifest(minimal_template()).check_rules() == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param(with_webhooks(*SPARE_EVENTS[:10]), "11 webhooks", id="eleven-webhooks"),
        pytest.param(with_webhook("NEW_TAG", "/webhooks/clockify/tag"), "twice", id="duplicate"),
        pytest.param(
            with_webhook("NEW_TASK", "/webhooks/clockify/task"),
            "NEW_TASK must be received on /webhooks/clockify/new-task",
            id="wrong-path",
        ),
        pytest.param(
            with_webhook("NEW_THING", "/webhooks/clockify/new-thing"),
            "unknown event 'NEW_THING'",
            id="unknown-event",
        ),
        pytest.param(
            lambda t: t.update({"$schema": "https://example.com/schema.json"}),
            "$schema",
            id="dollar-schema",
        ),
        *(
            pytest.param(without_lifecycle(kind), f"no {kind} lifecycle path", id=f"no-{kind}")
            for kind in ("INSTALLED", "STATUS_CHANGED", "SETTINGS_UPDATED", "DELETED")
        ),
    ],
)
def test_rule_breach_is_reported(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    template = minimal_template()
    change(template)

    problems = Manifest(template).check_rules()

    assert any(problem in p for p in problems), problems


def test_ten_webhooks_are_allowed() -> None:
    template = minimal_template()
    with_webhooks(*SPARE_EVENTS[:9])(template)

    assert Manifest(template).check_rules() == []


def test_two_events_on_one_path_are_reported() -> None:
    template = minimal_template()
    template["webhooks"].append({"event": "NEW_TASK", "path": webhook_path("NEW_TAG")})

    assert any("share a path" in p for p in Manifest(template).check_rules())


@pytest.mark.parametrize("app_name", APP_NAMES)
def test_render_fills_key_and_base_url(app_name: str) -> None:
    manifest = load_manifest(app_name)

    rendered = manifest.render(base_url="https://addons.example.com/x", key="my-key")

    assert rendered["key"] == "my-key"
    assert rendered["baseUrl"] == "https://addons.example.com/x"
    assert {k: v for k, v in rendered.items() if k not in ("key", "baseUrl")} == manifest.template


def test_render_overrides_a_stale_key_and_base_url_in_the_template() -> None:
    template = {**minimal_template(), "key": "stale", "baseUrl": "http://localhost:1"}

    rendered = Manifest(template).render(base_url="https://addons.example.com", key="live")

    assert (rendered["key"], rendered["baseUrl"]) == ("live", "https://addons.example.com")


def test_render_leaves_the_template_untouched() -> None:
    template = minimal_template()
    original = copy.deepcopy(template)

    Manifest(template).render(base_url="https://addons.example.com", key="live")

    assert template == original


def test_setting_defaults_cover_tabs_and_groups() -> None:
    template = {
        **minimal_template(),
        "settings": {
            "tabs": [
                {
                    "id": "one",
                    "settings": [{"id": "a", "type": "TXT", "value": "x"}],
                    "groups": [
                        {"id": "g", "settings": [{"id": "b", "type": "NUMBER", "value": 3}]}
                    ],
                },
                {"id": "two", "settings": [{"id": "c", "type": "CHECKBOX"}]},
            ]
        },
    }

    assert Manifest(template).setting_defaults() == {"a": "x", "b": 3, "c": None}


def test_shipped_setting_defaults_are_read() -> None:
    assert load_manifest("api-studio").setting_defaults() == {
        "explorerAllowWrites": True,
        "eventRetentionDays": 30,
    }


def test_manifest_without_settings_has_no_defaults() -> None:
    assert Manifest(minimal_template()).setting_defaults() == {}


@pytest.mark.parametrize(
    ("value", "base_url", "expected"),
    [
        ("/webhooks/clockify/new-time-entry", "https://h/uw", "/webhooks/clockify/new-time-entry"),
        ("webhooks/clockify/new-time-entry", "https://h/uw", "/webhooks/clockify/new-time-entry"),
        (
            "https://h/uw/webhooks/clockify/new-time-entry",
            "https://h/uw",
            "/webhooks/clockify/new-time-entry",
        ),
        (
            "https://h/uw/webhooks/clockify/new-time-entry",
            "https://h/uw/",
            "/webhooks/clockify/new-time-entry",
        ),
        (
            "https://h/webhooks/clockify/new-time-entry",
            "https://h",
            "/webhooks/clockify/new-time-entry",
        ),
        (
            "https://h/webhooks/clockify/new-time-entry",
            "https://h/",
            "/webhooks/clockify/new-time-entry",
        ),
        # baseUrl moved since the manifest was registered: the webhook part still matches
        (
            "https://old-host/uwx/webhooks/clockify/new-tag",
            "https://h/uw",
            "/webhooks/clockify/new-tag",
        ),
        ("https://h/uw/lifecycle/installed", "https://h/uw", "/lifecycle/installed"),
    ],
)
def test_installed_webhook_path_is_normalised(value: str, base_url: str, expected: str) -> None:
    assert normalize_webhook_path(value, base_url) == expected
