"""The add-on manifests: data in `manifests/`, served with `baseUrl` and `key` filled in."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from addon_core.clockify.event_types import CLOCKIFY_EVENT_TYPES, WEBHOOK_PATH_PREFIX, webhook_path
from addon_core.resources import resource_dir

#: Clockify's cap on webhooks per add-on (manifest docs, "Webhooks").
MAX_MANIFEST_WEBHOOKS = 10


class ManifestError(ValueError):
    """A manifest breaks a rule of Clockify's or of this project's."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest template: everything but `baseUrl` and `key`."""

    template: Mapping[str, Any]

    @property
    def schema_version(self) -> str:
        return str(self.template.get("schemaVersion", ""))

    @property
    def lifecycle_paths(self) -> dict[str, str]:
        """Lifecycle type → path."""
        return {item["type"]: item["path"] for item in self.template.get("lifecycle", [])}

    @property
    def webhook_events(self) -> dict[str, str]:
        """Webhook path → event type."""
        return {item["path"]: item["event"] for item in self.template.get("webhooks", [])}

    def render(self, *, base_url: str, key: str) -> dict[str, Any]:
        """Return the runtime manifest served to Clockify."""
        head = {
            "schemaVersion": self.template.get("schemaVersion"),
            "key": key,
            "baseUrl": base_url,
        }
        return {**head, **{k: v for k, v in self.template.items() if k not in head}}

    def setting_defaults(self) -> dict[str, Any]:
        """Setting id → its default value, from the structured settings."""
        return {s["id"]: s.get("value") for s in _iter_settings(self.template.get("settings"))}

    def setting_names(self) -> dict[str, str]:
        """Setting id → its name, from the structured settings."""
        return {
            s["id"]: str(s.get("name") or s["id"])
            for s in _iter_settings(self.template.get("settings"))
        }

    def check_rules(self) -> list[str]:
        """Return what breaks the rules the schema cannot express."""
        problems: list[str] = []
        if "$schema" in self.template:
            problems.append("a runtime manifest must not contain $schema")
        problems.extend(
            f"{name} comes from the settings and must not be in the file"
            for name in ("key", "baseUrl")
            if name in self.template
        )
        webhooks = self.template.get("webhooks", [])
        if len(webhooks) > MAX_MANIFEST_WEBHOOKS:
            problems.append(f"{len(webhooks)} webhooks; Clockify allows {MAX_MANIFEST_WEBHOOKS}")
        events = [w.get("event") for w in webhooks]
        paths = [w.get("path") for w in webhooks]
        if len(set(events)) != len(events):
            problems.append("an event is subscribed twice")
        if len(set(paths)) != len(paths):
            problems.append("two webhooks share a path; each event needs its own")
        problems.extend(f"unknown event {e!r}" for e in events if e not in CLOCKIFY_EVENT_TYPES)
        problems.extend(
            f"{w.get('event')} must be received on {webhook_path(w.get('event', ''))}"
            for w in webhooks
            if w.get("event") in CLOCKIFY_EVENT_TYPES and w.get("path") != webhook_path(w["event"])
        )
        lifecycle = self.lifecycle_paths
        for required in ("INSTALLED", "STATUS_CHANGED", "SETTINGS_UPDATED", "DELETED"):
            if required not in lifecycle:
                problems.append(f"no {required} lifecycle path")
        return problems


def _iter_settings(settings: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(settings, Mapping):
        return
    for tab in settings.get("tabs", []):
        yield from tab.get("settings", [])
        for group in tab.get("groups", []):
            yield from group.get("settings", [])


def load_manifest(app_name: str) -> Manifest:
    """Read `manifests/<app_name>.json` and check this project's rules on it."""
    path = resource_dir("manifests") / f"{app_name}.json"
    manifest = Manifest(json.loads(path.read_text()))
    problems = manifest.check_rules()
    if problems:
        raise ManifestError(f"{path}: " + "; ".join(problems))
    return manifest


def validate_against_schema(document: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Validate a runtime manifest against Clockify's JSON schema; return the errors."""
    import jsonschema.validators  # only `manifest validate` needs it, not a serving process

    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]


def schema_path(reference_dir: Path, version: str) -> Path:
    return reference_dir / f"manifest-schema-{version}.json"


def normalize_webhook_path(value: str, base_url: str) -> str:
    """Reduce an INSTALLED `webhooks[].path` (declared path or full URL) to the declared path.

    A full URL is matched on its webhook part, so a `baseUrl` that moved since the
    manifest was registered (another prefix or host) still ties each token to its path.
    """
    path = urlsplit(value).path if "://" in value else "/" + value.lstrip("/")
    if WEBHOOK_PATH_PREFIX in path:
        return path[path.index(WEBHOOK_PATH_PREFIX) :]
    base_path = urlsplit(base_url).path.rstrip("/")
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    return path
