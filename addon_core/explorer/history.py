"""The explorer's call history: the workspace's calls listed, shown, and turned into actions."""

from __future__ import annotations

import re
from typing import Any

from litestar import get
from litestar.params import FromQuery
from sqlalchemy import select

from addon_core.clockify.catalogue import WORKSPACE_PARAM
from addon_core.runtime import AddonRuntime, Runtime, Sessions
from addon_core.storage.models import ApiCall
from addon_core.storage.scope import scoped
from addon_core.web.caller import (
    CallerDep,
    RowId,
    decode_int_cursor,
    find_in_workspace,
    page_limit,
    page_of,
)

_WORD_START = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_ACTION_ID_LENGTH = 64


@get("/api/calls", name="explorer:calls")
async def list_calls(
    runtime: Runtime,
    sessions: Sessions,
    caller: CallerDep,
    limit: FromQuery[int | None] = None,
    cursor: FromQuery[str | None] = None,
    operation: FromQuery[str | None] = None,
) -> dict[str, Any]:
    """List the workspace's explorer calls, newest first, optionally of one operation."""
    size = page_limit(limit)
    before = decode_int_cursor(cursor)
    query = (
        select(ApiCall)
        .where(*scoped(ApiCall, runtime.addon_key, caller.workspace_id))
        .order_by(ApiCall.id.desc())
        .limit(size + 1)
    )
    if before is not None:
        query = query.where(ApiCall.id < before)
    if operation:
        query = query.where(ApiCall.operation_id == operation)
    async with sessions() as session:
        rows = list((await session.scalars(query)).all())
    return page_of(rows, size, render=render_call, key=lambda row: row.id)


@get("/api/calls/{call_id:int}", name="explorer:call")
async def get_call(runtime: Runtime, caller: CallerDep, call_id: RowId) -> dict[str, Any]:
    """Show one call in full: what was sent and Clockify's (redacted) answer."""
    call = await _find_call(runtime, caller.workspace_id, call_id)
    return {
        **render_call(call),
        "params": call.params,
        "body": call.body,
        "response": call.response,
    }


@get("/api/calls/{call_id:int}/action", name="explorer:call-action")
async def get_call_action(runtime: Runtime, caller: CallerDep, call_id: RowId) -> dict[str, Any]:
    """Turn a tried call into a flow action (CONTRACT.md, "Flow document") to paste in a flow."""
    call = await _find_call(runtime, caller.workspace_id, call_id)
    params = {k: v for k, v in (call.params or {}).items() if k != WORKSPACE_PARAM}
    action: dict[str, Any] = {
        "id": action_id(call.operation_id),
        "type": "clockify",
        "operation": call.operation_id,
        "params": params,
    }
    if call.body is not None:
        action["body"] = call.body
    return action


def render_call(call: ApiCall) -> dict[str, Any]:
    """Render what a list of calls shows of one."""
    return {
        "id": call.id,
        "operationId": call.operation_id,
        "method": call.method,
        "url": call.url,
        "status": call.status,
        "latencyMs": call.latency_ms,
        "error": call.error,
        "userId": call.user_id,
        "at": call.at.isoformat(),
    }


def action_id(operation_id: str) -> str:
    """Name an action after its operation in snake case: `getProjects` -> `get_projects`."""
    snake = _WORD_START.sub("_", operation_id).lower()
    snake = re.sub(r"[^a-z0-9_-]", "_", snake)
    if not snake or not (snake[0].isalpha() or snake[0] == "_"):
        snake = f"call_{snake}"
    return snake[:_ACTION_ID_LENGTH]


async def _find_call(runtime: AddonRuntime, workspace_id: str, call_id: int) -> ApiCall:
    async with runtime.sessions() as session:
        return await find_in_workspace(
            session,
            ApiCall,
            call_id,
            addon_key=runtime.addon_key,
            workspace_id=workspace_id,
            missing=f"no explorer call {call_id} in this workspace; GET /api/calls lists them",
        )
