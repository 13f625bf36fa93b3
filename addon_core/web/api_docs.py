"""The add-ons' own OpenAPI document, served at `/schema/openapi.json` (and `/schema`).

Litestar builds the paths, parameters and operation ids from the `/api/` handlers. The
handlers read their JSON bodies themselves and return plain dicts, so what each takes and
answers is declared here, by handler name, in `OPERATIONS`, and merged into Litestar's
document once, on the first request for it. Only `/api/` is described: the lifecycle,
webhook, probe, metrics and sandbox routes are called by Clockify or an operator, not by a
client with a user token, and are left out.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from addon_core.flows.example import tag_meetings
from addon_core.web import api_shapes as shapes
from addon_core.web import flow_shapes
from addon_core.web.caller import DEFAULT_LIMIT, MAX_LIMIT, MAX_ROW_ID

SCHEMA_PATH = "/schema"
API_PREFIX = "/api/"
SECURITY_SCHEME = "userToken"
_SCHEMA_REF = "#/components/schemas/{model}"

#: Refusals every operation may answer, with what each means here.
_ERRORS = {
    400: "Malformed input: a query parameter, cursor or JSON body that cannot be read.",
    401: "No user token, or one that is not valid for this add-on.",
    403: "A valid token that may not do this: a role that may not write (OWNER or ADMIN may).",
    404: "No such object in the token's workspace.",
    409: "The add-on is not installed in the workspace, or the object's state forbids it.",
    503: "A dependency is unavailable (the database, Clockify's OpenAPI document).",
}
_BODY_ERRORS = {
    413: "The body is larger than the server's limit.",
    422: "Well-formed but not acceptable; `extra.errors` lists every problem with its field.",
}

#: Query parameters every list shares, described once.
_LIST_PARAMETERS = {
    "limit": {
        "description": f"page size, 1 to {MAX_LIMIT}",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    "cursor": {
        "description": "the `next` of the previous page; omit it for the first",
        "schema": {"type": "string"},
    },
}

#: The contract's example flow, the example body of a flow save.
_FLOW_EXAMPLE = tag_meetings()


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says of one handler beyond what Litestar sees."""

    tag: str
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    body_required: bool = True
    example: Any = None


_PAGE_OF_FLOWS = shapes.page(flow_shapes.Flow)

#: Every `/api/` handler by its route name; a handler missing here fails the document.
OPERATIONS: Mapping[str, Operation] = {
    "explorer:operations": Operation("explorer", shapes.page(shapes.OperationSummary)),
    "explorer:operation": Operation("explorer", shapes.OperationDetail),
    "explorer:execute": Operation(
        "explorer",
        shapes.ExecuteResult,
        shapes.ExecuteRequest,
        body_required=False,
        example={"params": {"projectId": "5f11849d4e759e12c40733d5"}},
    ),
    "explorer:calls": Operation("explorer", shapes.page(shapes.Call)),
    "explorer:call": Operation("explorer", shapes.CallDetail),
    "explorer:call-action": Operation("explorer", shapes.CallAction),
    "flows:create": Operation(
        "flows", flow_shapes.Flow, flow_shapes.FLOW_DOCUMENT, example=_FLOW_EXAMPLE
    ),
    "flows:list": Operation("flows", _PAGE_OF_FLOWS),
    "flows:get": Operation("flows", flow_shapes.Flow),
    "flows:update": Operation(
        "flows", flow_shapes.Flow, flow_shapes.FLOW_DOCUMENT, example=_FLOW_EXAMPLE
    ),
    "flows:delete": Operation("flows", None),
    "flows:resume": Operation("flows", flow_shapes.Flow),
    "flows:rotate-secret": Operation("flows", flow_shapes.SigningSecret),
    "flows:versions": Operation("flows", shapes.page(flow_shapes.FlowVersion)),
    "flows:version": Operation("flows", flow_shapes.FlowVersion),
    "flows:executions": Operation("flows", shapes.page(flow_shapes.Execution)),
    "flows:execution": Operation("flows", flow_shapes.Execution),
    "flows:test": Operation(
        "flows",
        flow_shapes.DryRun,
        flow_shapes.DryRunRequest,
        example={
            "eventType": "NEW_TIME_ENTRY",
            "event": {"id": "5f118c837db7a8637ffcaf36", "description": "weekly meeting"},
        },
    ),
    "events:list": Operation("events", shapes.page(shapes.Event)),
    "events:get": Operation("events", shapes.Event),
    "events:replay": Operation(
        "events",
        shapes.Replay,
        shapes.ReplayRequest,
        body_required=False,
        example={"flowIds": ["kq3v0c2s1n8d"]},
    ),
    "bootstrap:progress": Operation("bootstrap", shapes.Bootstrap),
    "bootstrap:rerun": Operation("bootstrap", shapes.Bootstrap),
    "jobs:dead": Operation("jobs", shapes.page(shapes.Job)),
    "jobs:replay": Operation("jobs", shapes.Job),
    "flows:export": Operation("flows", flow_shapes.ExportedFlow),
    "flows:import": Operation("flows", flow_shapes.Flow, flow_shapes.ImportRequest),
    "flows:gallery": Operation("flows", flow_shapes.Gallery),
    "flows:gallery-import": Operation(
        "flows", flow_shapes.Flow, flow_shapes.GalleryBind, body_required=False
    ),
    "audit:list": Operation("audit", shapes.page(shapes.AuditEntry)),
    "overview": Operation("overview", shapes.Overview),
    "events:executions": Operation("events", shapes.page(flow_shapes.Execution)),
    "events:types": Operation("events", shapes.page(shapes.EventType)),
    "events:sample": Operation("events", shapes.EventSample),
    "bootstrap:retry": Operation("bootstrap", shapes.Bootstrap),
    "test-endpoint": Operation("endpoints", shapes.TestDelivery, body_required=False),
    "endpoint-deliveries": Operation("endpoints", shapes.page(shapes.Event)),
    "create-endpoint": Operation(
        "endpoints",
        shapes.Endpoint,
        shapes.EndpointRequest,
        example={"name": "Billing system", "eventTypePath": "type"},
    ),
    "list-endpoints": Operation("endpoints", shapes.page(shapes.Endpoint)),
    "get-endpoint": Operation("endpoints", shapes.Endpoint),
    "delete-endpoint": Operation("endpoints", None),
    "rotate-endpoint": Operation("endpoints", shapes.Endpoint),
    "coverage": Operation("coverage", shapes.Coverage),
}

_TAGS = {
    "explorer": "Browse and run the operations of Clockify's OpenAPI document; the call history.",
    "flows": "Flows (webhook, conditions, actions), their versions, executions and dry runs.",
    "events": "Received webhook events (payloads redacted) and replays.",
    "bootstrap": "The install-time fetch of the workspace's lists.",
    "jobs": "Background jobs that failed their last attempt.",
    "endpoints": "Universal Webhook: custom inbound webhooks (Standard Webhooks signatures).",
    "coverage": "Universal Webhook: how each Clockify event type is delivered.",
}


def openapi_config(title: str, version: str) -> OpenAPIConfig:
    """Litestar's OpenAPI settings for one add-on: the user token scheme, our JSON renderer."""
    return OpenAPIConfig(
        title=f"{title} API",
        version=version,
        description=(
            f"The JSON API of the {title} add-on for Clockify. Authenticate with the user token "
            "Clockify gives the add-on's pages (`Authorization: Bearer <auth_token>`); data is "
            "scoped to its workspace, and writes need the workspace role OWNER or ADMIN."
        ),
        path=SCHEMA_PATH,
        render_plugins=[ApiDocumentPlugin()],
        use_handler_docstrings=True,
        security=[{SECURITY_SCHEME: []}],
        components=Components(
            security_schemes={
                SECURITY_SCHEME: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="The `auth_token` Clockify hands the add-on's UI components "
                    "(RS256, signed by Clockify, for this add-on and one workspace).",
                )
            }
        ),
    )


class ApiDocumentPlugin(JsonRenderPlugin):
    """Serve Litestar's document completed by `complete_document`, built once per app."""

    def __init__(self) -> None:
        super().__init__(path="/openapi.json")
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = msgspec.json.encode(complete_document(request.app, openapi_schema))
        return self._rendered


def complete_document(app: Litestar, generated: Mapping[str, Any]) -> dict[str, Any]:
    """Keep `/api/` and add each operation's tag, summary, bodies, answers and errors."""
    document = {key: value for key, value in generated.items() if key != "paths"}
    handlers = _api_handlers(app)
    models: set[type[BaseModel]] = {shapes.ErrorBody}
    for spec in OPERATIONS.values():
        models.update(model for model in (spec.answer, spec.body) if model is not None)
    refs, definitions = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=_SCHEMA_REF,
    )
    ref_of = {model: ref for (model, _mode), ref in refs.items()}
    paths: dict[str, Any] = {}
    for path, item in generated.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        paths[path] = {
            method: _complete(operation, handlers[path, method.upper()], ref_of)
            for method, operation in item.items()
        }
    components = dict(document.get("components", {}))
    components["schemas"] = {**components.get("schemas", {}), **definitions.get("$defs", {})}
    document["components"] = components
    document["paths"] = paths
    document["tags"] = [{"name": name, "description": text} for name, text in _TAGS.items()]
    return document


def _complete(
    operation: Mapping[str, Any], handler: HTTPRouteHandler, ref_of: Mapping[Any, Any]
) -> dict[str, Any]:
    spec = OPERATIONS.get(handler.name or "")
    if spec is None:
        raise LookupError(
            f"the /api/ handler {handler.name!r} is not described: add it to "
            "addon_core.web.api_docs.OPERATIONS"
        )
    doc = inspect.getdoc(handler.fn) or ""
    completed = dict(operation)
    completed["operationId"] = _camel(handler.handler_name)
    completed["tags"] = [spec.tag]
    completed["summary"] = doc.split("\n", 1)[0] or completed.get("summary", "")
    if completed.get("description") == completed["summary"]:
        del completed["description"]
    if "parameters" in completed:
        completed["parameters"] = [_parameter(item) for item in completed["parameters"]]
    success = str(handler.status_code)
    answer: dict[str, Any] = {"description": completed["summary"]}
    if spec.answer is not None:
        answer["content"] = {"application/json": {"schema": ref_of[spec.answer]}}
    errors = {**_ERRORS, **(_BODY_ERRORS if spec.body is not None else {})}
    completed["responses"] = {
        success: answer,
        **{str(code): _error_response(code, text) for code, text in sorted(errors.items())},
    }
    if spec.body is not None:
        media: dict[str, Any] = {"schema": ref_of[spec.body]}
        if spec.example is not None:
            media["example"] = spec.example
        completed["requestBody"] = {
            "required": spec.body_required,
            "content": {"application/json": media},
        }
    return completed


def _parameter(parameter: Mapping[str, Any]) -> dict[str, Any]:
    """Describe the list parameters; give row ids their exact bounds (Litestar's are floats)."""
    described = dict(parameter)
    if parameter["in"] == "query" and parameter["name"] in _LIST_PARAMETERS:
        described.update(_LIST_PARAMETERS[parameter["name"]])
    elif parameter["in"] == "path" and parameter["schema"].get("type") == "integer":
        described["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID}
    return described


def _error_response(status: int, text: str) -> dict[str, Any]:
    return {
        "description": text,
        "content": {
            "application/json": {
                "schema": {"$ref": _SCHEMA_REF.format(model=shapes.ErrorBody.__name__)},
            }
        },
    }


def _api_handlers(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path_format.startswith(API_PREFIX):
            for method, (handler, _) in route.route_handler_map.items():
                found[route.path_format, method] = handler
    return found


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)
