"""Clockify's reference data that ships inside the package, and how it is built.

`addon_core/_data/clockify/` holds a compact operation catalogue (Clockify's OpenAPI document
less its prose and examples), the manifest JSON Schema the manifests target and Clockify's
public key, so a fresh install works offline. `scripts/build_package_data.py` writes them
from a folder of reference data; `build_package_data` here is what it (and the drift test) runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

SHIPPED_DIR = Path(__file__).parent.parent / "_data" / "clockify"
CATALOGUE_FILE = "openapi-catalogue.json"
PUBLIC_KEY_FILE = "clockify-public-key.pem"
BUILD_SCRIPT = "scripts/build_package_data.py"

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
# What the catalogue reads of an operation; descriptions, examples and responses are dropped.
_OPERATION_KEYS = ("operationId", "summary", "tags", "deprecated", "security", "servers")
_PARAMETER_KEYS = ("name", "in", "required")
# Schema keywords holding one schema, a list of them, or a map of name to schema.
_ONE_SCHEMA = frozenset({"items", "not", "additionalProperties", "contains"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties"})
_PROSE = frozenset({"description", "title", "example", "examples", "externalDocs", "xml"})
_COMPONENT_PREFIX = "#/components/schemas/"


def manifest_schema_file(version: str) -> str:
    """Name the shipped manifest JSON Schema of one schema version."""
    return f"manifest-schema-{version}.json"


def shipped_manifest_schema(version: str) -> Path:
    """Return where the manifest schema of `version` ships (it may not exist)."""
    return SHIPPED_DIR / manifest_schema_file(version)


def encode(document: Any) -> bytes:
    """Serialise deterministically: sorted keys, compact separators, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def compact_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Keep what the operation catalogue reads of an OpenAPI 3 document, and nothing else.

    Operations keep their id, method, path, servers, parameters, JSON body schema, security
    and summary; component schemas are kept only when an operation reaches them.
    """
    paths: dict[str, Any] = {}
    for path, item in document.get("paths", {}).items():
        kept: dict[str, Any] = {}
        if item.get("servers"):
            kept["servers"] = _servers(item["servers"])
        if item.get("parameters"):
            kept["parameters"] = [_parameter(p) for p in item["parameters"]]
        for method, spec in item.items():
            if method in _METHODS:
                kept[method] = _operation(spec)
        paths[path] = kept
    components = document.get("components", {})
    schemas = components.get("schemas", {})
    reached = _reachable(paths, schemas)
    compact: dict[str, Any] = {
        "openapi": document.get("openapi"),
        "info": {k: document["info"][k] for k in ("title", "version") if k in document["info"]},
        "servers": _servers(document.get("servers", [])),
        "paths": paths,
        "components": {"schemas": {name: _schema(schemas[name]) for name in sorted(reached)}},
    }
    if components.get("securitySchemes"):
        compact["components"]["securitySchemes"] = components["securitySchemes"]
    return compact


def _servers(servers: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"url": server["url"]} for server in servers if "url" in server]


def _operation(spec: dict[str, Any]) -> dict[str, Any]:
    kept = {key: spec[key] for key in _OPERATION_KEYS if key in spec}
    if "servers" in kept:
        kept["servers"] = _servers(kept["servers"])
    if spec.get("parameters"):
        kept["parameters"] = [_parameter(p) for p in spec["parameters"]]
    if "requestBody" in spec:
        body = spec["requestBody"]
        if "$ref" in body:
            kept["requestBody"] = {"$ref": body["$ref"]}
        else:
            content = {
                media_type: {"schema": _schema(media.get("schema", {}))}
                for media_type, media in body.get("content", {}).items()
            }
            kept["requestBody"] = {"content": content, "required": bool(body.get("required"))}
    return kept


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in parameter:
        return {"$ref": parameter["$ref"]}
    kept = {key: parameter[key] for key in _PARAMETER_KEYS if key in parameter}
    schema = parameter.get("schema", {})
    # A parameter's one line of help is what the explorer shows beside the field.
    help_text = parameter.get("description") or schema.get("description")
    if help_text:
        kept["description"] = help_text
    kept["schema"] = _schema(schema)
    return kept


def _schema(schema: Any) -> Any:
    """Drop prose and examples from a schema, keeping property names that look like keywords."""
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _PROSE:
            continue
        if key in _ONE_SCHEMA:
            kept[key] = _schema(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            kept[key] = [_schema(item) for item in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            kept[key] = {name: _schema(item) for name, item in value.items()}
        else:
            kept[key] = value
    # A Java enum drawn as an object holding one enum branch is read as a list of values
    # when its example is a list (openapi_schema._unwrap_enum_object): keep that example.
    example = schema.get("example")
    branches = schema.get("oneOf")
    if isinstance(example, list) and isinstance(branches, list) and len(branches) == 1:
        kept["example"] = example
    return kept


def _reachable(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    """Name every component schema the kept paths reach, through other components too."""
    reached: set[str] = set()
    pending = list(_component_refs(paths))
    while pending:
        name = pending.pop()
        if name in reached or name not in schemas:
            continue
        reached.add(name)
        pending.extend(_component_refs(schemas[name]))
    return reached


def _component_refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str) and ref.startswith(_COMPONENT_PREFIX):
                yield ref.removeprefix(_COMPONENT_PREFIX)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def manifest_schema_versions(manifests_dir: Path) -> list[str]:
    """List the schema versions the manifests in `manifests_dir` target, sorted."""
    versions = {
        str(json.loads(path.read_text())["schemaVersion"])
        for path in sorted(manifests_dir.glob("*.json"))
    }
    return sorted(versions)


def build_package_data(reference_dir: Path, manifests_dir: Path) -> dict[str, bytes]:
    """Return each shipped file's name and content, built from Clockify's reference data.

    Raises `FileNotFoundError` naming the reference file that is missing.
    """
    document = json.loads((reference_dir / "openapi.json").read_bytes())
    files = {CATALOGUE_FILE: encode(compact_openapi(document))}
    for version in manifest_schema_versions(manifests_dir):
        name = manifest_schema_file(version)
        files[name] = (reference_dir / name).read_bytes()
    files[PUBLIC_KEY_FILE] = (reference_dir / PUBLIC_KEY_FILE).read_bytes()
    return files
