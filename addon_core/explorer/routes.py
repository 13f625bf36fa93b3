"""The API explorer's routes: Clockify's operations listed and described; the route list.

Operations list in the OpenAPI document's order, not newest first: they have no time,
and a stable order keeps `next` cursors (offsets) valid. Running one is
`explorer.execution`, the calls kept are `explorer.history`.
"""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery

from addon_core.clockify.catalogue import WORKSPACE_PARAM, Operation, Parameter
from addon_core.errors import BadRequestError
from addon_core.explorer.execution import execute_operation
from addon_core.explorer.history import get_call, get_call_action, list_calls
from addon_core.runtime import Runtime
from addon_core.web.caller import CallerDep, decode_int_cursor, page_limit, page_of

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


@get("/api/operations", name="explorer:operations")
async def list_operations(
    runtime: Runtime,
    caller: CallerDep,
    tag: FromQuery[str | None] = None,
    method: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List Clockify's operations by tag, method and text, in the document's order."""
    size = page_limit(limit)
    if method and method.upper() not in _METHODS:
        raise BadRequestError(
            f"method must be one of {', '.join(sorted(_METHODS))} (got {method!r})"
        )
    start = decode_int_cursor(cursor) or 0
    matching = runtime.catalogue.filter(tag=tag, method=method, text=q)
    rows = list(enumerate(matching))[start : start + size + 1]
    return page_of(rows, size, render=lambda row: summarise(row[1]), key=lambda row: row[0] + 1)


@get("/api/operations/{operation_id:str}", name="explorer:operation")
async def describe_operation(
    runtime: Runtime, caller: CallerDep, operation_id: FromPath[str]
) -> dict[str, Any]:
    """Describe one operation: parameters, body schema, pagination, scope."""
    catalogue = runtime.catalogue
    operation = catalogue.get(operation_id)
    return {
        **summarise(operation),
        "parameters": [describe_parameter(parameter) for parameter in operation.parameters],
        "body": None
        if operation.body_media_type is None
        else {
            "mediaType": operation.body_media_type,
            "required": operation.body_required,
            "schema": operation.body_schema,
        },
        "pagination": None
        if operation.pagination is None
        else {
            "in": operation.pagination.kind,
            "pageParam": operation.pagination.page_param,
            "sizeParam": operation.pagination.size_param,
            "maxSize": operation.pagination.max_size,
        },
    }


def summarise(operation: Operation) -> dict[str, Any]:
    """Render what a list of operations shows of one."""
    return {
        "operationId": operation.operation_id,
        "method": operation.method,
        "path": operation.path,
        "summary": operation.summary,
        "tag": operation.tag,
        "serverKind": operation.server_kind,
        "writes": operation.writes,
        "scope": operation.scope,
        "paginated": operation.pagination is not None,
        "deprecated": operation.deprecated,
    }


def describe_parameter(parameter: Parameter) -> dict[str, Any]:
    """Render a parameter; `workspaceId` in the path is filled from the installation."""
    schema = parameter.schema
    items = schema.get("items")
    item_enum = items.get("enum") if isinstance(items, dict) else None
    filled = parameter.name == WORKSPACE_PARAM and parameter.location == "path"
    return {
        "name": parameter.name,
        "in": parameter.location,
        "required": parameter.required and not filled,
        "filledByInstallation": filled,
        "description": parameter.description,
        "type": schema.get("type"),
        "enum": schema.get("enum") or item_enum,
        "schema": schema,
    }


EXPLORER_ROUTES: list[BaseRouteHandler] = [
    list_operations,
    describe_operation,
    execute_operation,
    list_calls,
    get_call,
    get_call_action,
]
