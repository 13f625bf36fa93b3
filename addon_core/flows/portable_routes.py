"""The routes that move flows between workspaces: export, import, and the gallery."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath

from addon_core import audit
from addon_core.flows import portable, service
from addon_core.flows.document import FlowValidationError
from addon_core.flows.routes import read_json, render_created
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.web.caller import Caller, CallerDep


@get("/api/flows/{flow_id:str}/export", name="flows:export")
async def export_flow(
    runtime: Runtime, sessions: Sessions, caller: CallerDep, flow_id: FromPath[str]
) -> dict[str, Any]:
    """The flow as a portable document: no secrets, no ids of this workspace."""
    async with sessions() as session:
        flow = await service.find_flow(session, runtime, caller.workspace_id, flow_id)
    return portable.export_flow(flow)


@post("/api/flows/import", name="flows:import", status_code=201)
async def import_flow(
    request: Request[Any, Any, Any], runtime: Runtime, caller: CallerDep
) -> dict[str, Any]:
    """Save an exported flow in this workspace, with the values its `needs` list bound."""
    caller.require_writer("importing a flow")
    document = portable.prepare_import(await read_json(request, runtime))
    return await _save(runtime, caller, document)


@get("/api/flows/gallery", name="flows:gallery")
async def list_gallery(runtime: Runtime, caller: CallerDep) -> dict[str, Any]:
    """The ready flows this add-on offers, with the values each needs."""
    return {"items": portable.gallery_items(runtime.flow_action_types)}


@post("/api/flows/gallery/{item_id:str}/import", name="flows:gallery-import", status_code=201)
async def import_from_gallery(
    request: Request[Any, Any, Any], runtime: Runtime, caller: CallerDep, item_id: FromPath[str]
) -> dict[str, Any]:
    """Import one gallery flow; the body may bind its needs: `{"bind": {"<field>": value}}`."""
    caller.require_writer("importing a flow")
    item = portable.gallery_item(item_id, runtime.flow_action_types)
    body = await read_json(request, runtime, empty={})
    bind = body.get("bind", {}) if isinstance(body, dict) else body
    document = portable.prepare_import({**item, "bind": bind})
    return await _save(runtime, caller, document)


async def _save(runtime: AddonRuntime, caller: Caller, document: Any) -> dict[str, Any]:
    try:
        saved = await service.create_flow(
            runtime,
            caller.workspace_id,
            caller.user_id,
            document,
            actor=audit.by(caller),
            kind="flow.imported",
        )
    except FlowValidationError as exc:
        raise portable.in_export_terms(exc) from None
    return await render_created(runtime, caller, saved)


PORTABLE_ROUTES: list[BaseRouteHandler] = [
    export_flow,
    import_flow,
    list_gallery,
    import_from_gallery,
]
