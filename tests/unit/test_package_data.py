"""The Clockify data shipped in the package: built from the reference data, and equivalent to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from addon_core.clockify.catalogue import Catalogue, Operation, load_catalogue, parse_catalogue
from addon_core.clockify.shipped_data import (
    BUILD_SCRIPT,
    CATALOGUE_FILE,
    PUBLIC_KEY_FILE,
    SHIPPED_DIR,
    build_package_data,
    compact_openapi,
    encode,
    manifest_schema_versions,
    shipped_manifest_schema,
)
from addon_core.resources import resource_dir

_PROSE = frozenset({"description", "examples", "title"})


@pytest.fixture(scope="module")
def built(reference_dir: Path) -> dict[str, bytes]:
    return build_package_data(reference_dir, resource_dir("manifests"))


def test_the_shipped_files_are_what_the_build_script_makes_of_the_reference_data(
    built: dict[str, bytes], reference_dir: Path
) -> None:
    stale = [
        name
        for name, content in built.items()
        if not (SHIPPED_DIR / name).is_file() or (SHIPPED_DIR / name).read_bytes() != content
    ]
    assert not stale, (
        f"{', '.join(stale)} in {SHIPPED_DIR} drifted from {reference_dir}: "
        f"run `CLOCKIFY_REFERENCE_DIR={reference_dir} uv run python {BUILD_SCRIPT}` and commit"
    )


def test_nothing_is_shipped_that_the_build_does_not_make(built: dict[str, bytes]) -> None:
    assert sorted(path.name for path in SHIPPED_DIR.iterdir()) == sorted(built)


def test_the_schema_of_every_manifest_version_and_the_public_key_ship() -> None:
    for version in manifest_schema_versions(resource_dir("manifests")):
        assert shipped_manifest_schema(version).is_file()
    assert b"-----BEGIN PUBLIC KEY-----" in (SHIPPED_DIR / PUBLIC_KEY_FILE).read_bytes()


def test_the_build_is_deterministic_and_compact(reference_dir: Path) -> None:
    document = json.loads((reference_dir / "openapi.json").read_bytes())
    first = encode(compact_openapi(document))
    reordered = json.loads(json.dumps(document, sort_keys=True))
    assert encode(compact_openapi(reordered)) == first
    assert b": " not in first[:2000]
    assert len(first) < (reference_dir / "openapi.json").stat().st_size / 3


def _without_prose(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_prose(v) for k, v in value.items() if k not in _PROSE}
    if isinstance(value, list):
        return [_without_prose(item) for item in value]
    return value


def _comparable(operation: Operation) -> dict[str, Any]:
    return {
        "method": operation.method,
        "path": operation.path,
        "summary": operation.summary,
        "tag": operation.tag,
        "server_kind": operation.server_kind,
        "writes": operation.writes,
        "scope": operation.scope,
        "parameters": [
            (p.name, p.location, p.required, _without_prose(p.schema), p.description)
            for p in operation.parameters
        ],
        "body_schema": _without_prose(operation.body_schema),
        "body": (operation.body_media_type, operation.body_required),
        "pagination": operation.pagination,
        "deprecated": operation.deprecated,
    }


def test_the_shipped_catalogue_has_every_operation_of_the_full_document_unchanged(
    reference_dir: Path,
) -> None:
    full = load_catalogue(reference_dir / "openapi.json")
    shipped = load_catalogue(SHIPPED_DIR / CATALOGUE_FILE)
    assert {op.operation_id: _comparable(op) for op in shipped} == {
        op.operation_id: _comparable(op) for op in full
    }


def _list_valued_enums(catalogue: Catalogue) -> set[tuple[str, str]]:
    return {
        (name, prop)
        for name, definition in catalogue.definitions.items()
        for prop, schema in definition.get("properties", {}).items()
        if schema.get("type") == "array" and "enum" in schema.get("items", {})
    }


def test_a_list_valued_enum_still_reads_as_a_list_in_the_shipped_catalogue(
    reference_dir: Path,
) -> None:
    # Feature and friends: an object holding one enum branch, with a list as the example.
    full = load_catalogue(reference_dir / "openapi.json")
    shipped = parse_catalogue((SHIPPED_DIR / CATALOGUE_FILE).read_bytes())
    expected = {pair for pair in _list_valued_enums(full) if pair[0] in shipped.definitions}
    assert ("UpdateExpenseV1Request", "changeFields") in expected
    assert _list_valued_enums(shipped) == expected


def test_validation_answers_the_same_on_the_shipped_and_the_full_catalogue(
    reference_dir: Path,
) -> None:
    full = load_catalogue(reference_dir / "openapi.json")
    shipped = load_catalogue(SHIPPED_DIR / CATALOGUE_FILE)
    body = {"start": "yesterday", "billable": "yes", "tagIds": "one"}
    assert shipped.validate("createTimeEntry", {}, body, workspace_id="w1") == full.validate(
        "createTimeEntry", {}, body, workspace_id="w1"
    )
