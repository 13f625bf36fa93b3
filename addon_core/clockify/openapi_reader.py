"""Reading Clockify's OpenAPI document into operations: $refs, parameters, bodies, paging, scopes.

Raises only `ValueError`, `KeyError` and `TypeError` on a malformed document; the catalogue
turns them into its `CatalogueError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from addon_core.clockify.openapi_schema import (
    SchemaRegistry,
    convert_schema,
    find_body_paging,
    maximum,
)
from addon_core.clockify.operation import Operation, Pagination, Parameter, ServerKind

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
_LOCATIONS = frozenset({"path", "query", "header", "cookie"})
_MAX_REF_HOPS = 16

# A POST whose operationId reads as a query carries its filter (or report definition) in the
# body and changes nothing: getInvoicesInfo, filterUsersOfWorkspace, generateDetailedReport.
_READING_POST_PREFIXES = ("get", "filter", "find", "generate")

# Manifest scope areas (schema 1.6, definitions.scope: AREA_READ / AREA_WRITE) by tag, less
# " (Deprecated)"; any tag ending in "Report" needs REPORTS_*.
_TAG_SCOPES = {
    "time entry": "TIME_ENTRY",
    "project": "PROJECT",
    "client": "CLIENT",
    "tag": "TAG",
    "task": "TASK",
    "expense": "EXPENSE",
    "invoice": "INVOICE",
    "user": "USER",
    "group": "GROUP",
    "workspace": "WORKSPACE",
    "webhooks": "WORKSPACE",
    "custom fields": "CUSTOM_FIELDS",
    "approval": "APPROVAL",
    "scheduling": "SCHEDULING",
    "time off": "TIME_OFF",
    "balance": "TIME_OFF",
    "policy": "TIME_OFF",
    "holiday": "TIME_OFF",
}


def read_operations(document: dict[str, Any], registry: SchemaRegistry) -> Iterator[Operation]:
    seen: set[str] = set()
    for path, raw_item in document["paths"].items():
        item = _resolve(document, raw_item)
        for method, spec in item.items():
            if method not in _METHODS:
                continue
            operation = _read_operation(document, registry, path, method, item, spec)
            if operation.operation_id in seen:
                raise ValueError(f"operationId {operation.operation_id} is used twice")
            seen.add(operation.operation_id)
            yield operation


def _read_operation(
    document: dict[str, Any],
    registry: SchemaRegistry,
    path: str,
    method: str,
    item: dict[str, Any],
    spec: dict[str, Any],
) -> Operation:
    operation_id = spec.get("operationId")
    if not isinstance(operation_id, str) or not operation_id:
        raise ValueError(f"{method.upper()} {path} has no operationId")
    tag = str((spec.get("tags") or [""])[0])
    writes = _writes(method.upper(), operation_id)
    parameters = _read_parameters(document, item, spec)
    body_schema, media_type, body_required = _read_body(document, registry, spec)
    servers = spec.get("servers") or item.get("servers") or document.get("servers") or []
    return Operation(
        operation_id=operation_id,
        method=method.upper(),
        path=path,
        summary=str(spec.get("summary") or ""),
        tag=tag,
        server_kind=_server_kind(servers),
        writes=writes,
        scope=_scope(tag, writes),
        parameters=parameters,
        body_schema=body_schema,
        body_media_type=media_type,
        body_required=body_required,
        pagination=_query_pagination(parameters) or _body_pagination(body_schema),
        deprecated=bool(spec.get("deprecated")) or tag.endswith("(Deprecated)"),
    )


def _resolve(document: dict[str, Any], node: Any) -> Any:
    """Follow a local `$ref` to a path item, parameter or request body."""
    for _ in range(_MAX_REF_HOPS):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str):
            return node
        if not ref.startswith("#/"):
            raise ValueError(f"unsupported $ref {ref!r}: only local references are resolved")
        node = document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    raise ValueError(f"$ref chain longer than {_MAX_REF_HOPS} hops")


def _read_parameters(
    document: dict[str, Any], item: dict[str, Any], spec: dict[str, Any]
) -> tuple[Parameter, ...]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*item.get("parameters", []), *spec.get("parameters", [])]:
        parameter = _resolve(document, raw)
        if parameter["in"] not in _LOCATIONS:
            raise ValueError(f"parameter {parameter['name']} is in {parameter['in']!r}")
        merged[(parameter["name"], parameter["in"])] = parameter  # the operation's one wins
    return tuple(
        Parameter(
            name=parameter["name"],
            location=parameter["in"],
            required=bool(parameter.get("required")) or parameter["in"] == "path",
            schema=convert_schema(parameter.get("schema", {})),
            description=str(
                parameter.get("description") or parameter.get("schema", {}).get("description") or ""
            ),
        )
        for parameter in merged.values()
    )


def _read_body(
    document: dict[str, Any], registry: SchemaRegistry, spec: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None, bool]:
    if "requestBody" not in spec:
        return None, None, False
    body = _resolve(document, spec["requestBody"])
    content = body.get("content", {})
    required = bool(body.get("required"))
    for media_type, media in content.items():
        if media_type == "application/json" or media_type.endswith("+json"):
            schema = registry.standalone(convert_schema(media.get("schema", {})))
            return schema, media_type, required
    return None, next(iter(content), None), required


def _server_kind(servers: list[dict[str, Any]]) -> ServerKind:
    url = urlsplit(str(servers[0].get("url", "")) if servers else "")
    host = url.hostname or ""
    if host.startswith("reports."):
        return "reports"
    if host.startswith("api.") or url.path.rstrip("/") == "/api":
        return "regular"
    return "time_off"  # pto.api.*, or the document's http://localhost:5050 placeholder


def _writes(method: str, operation_id: str) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (method == "POST" and operation_id.startswith(_READING_POST_PREFIXES))


def _scope(tag: str, writes: bool) -> str | None:
    area_tag = tag.split(" (", 1)[0].strip().lower()
    area = "REPORTS" if area_tag.endswith("report") else _TAG_SCOPES.get(area_tag)
    if area is None:
        return None  # "Entity changes (Experimental)" has no scope of its own
    return f"{area}_{'WRITE' if writes else 'READ'}"


def _query_pagination(parameters: tuple[Parameter, ...]) -> Pagination | None:
    query = {parameter.name: parameter for parameter in parameters if parameter.location == "query"}
    if "page" not in query:
        return None
    for size in ("page-size", "pageSize"):
        if size in query:
            return Pagination("query", "page", size, maximum(query[size].schema))
    return None


def _body_pagination(schema: dict[str, Any] | None) -> Pagination | None:
    paging = find_body_paging(schema) if schema is not None else None
    if paging is None:
        return None
    prefix, max_size = paging
    return Pagination("body", f"{prefix}page", f"{prefix}pageSize", max_size)
