"""Which of Clockify's operations are workspace lists, how to page them, how to read a page.

Pure functions over the operation catalogue: bootstrap plans its runs with them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from addon_core.clockify.catalogue import WORKSPACE_PARAM, Catalogue, Operation

log = logging.getLogger(__name__)

#: The page size where the document declares no maximum (it documents 50 as the
#: default): 200, the smallest cap it declares on any list, so a conservative one.
UNCAPPED_PAGE_SIZE = 200
_CAMEL = re.compile(r"[-_](\w)")


@dataclass(frozen=True, slots=True)
class Listing:
    """How one list operation is fetched: fixed params, page size (None: one request)."""

    operation: Operation
    params: Mapping[str, Any]
    page_size: int | None

    @property
    def noun(self) -> str:
        """The list's name, the key a wrapped answer holds it under (`/expenses` → expenses)."""
        segments = [s for s in self.operation.path.split("/") if s and not s.startswith("{")]
        return _CAMEL.sub(lambda match: match.group(1).upper(), segments[-1] if segments else "")


def listing(operation: Operation) -> Listing | None:
    """Describe how to fetch every item of a workspace list, or None if it cannot be.

    A list is a GET that writes nothing, names the workspace in its path, pages (if at
    all) by query, and needs nothing besides `workspaceId` but parameters with a default
    (getUsersOfWorkspace's `include-roles`), which are sent as that default.
    """
    if operation.method != "GET" or operation.writes or not operation.takes_workspace:
        return None
    pagination = operation.pagination
    if pagination is not None and pagination.kind != "query":
        return None
    params: dict[str, Any] = {}
    for parameter in operation.parameters:
        if not parameter.required or parameter.name == WORKSPACE_PARAM:
            continue
        if "default" not in parameter.schema:
            return None
        params[parameter.name] = parameter.schema["default"]
    size = None
    if pagination is not None:
        size = pagination.max_size or UNCAPPED_PAGE_SIZE
    return Listing(operation, params, size)


def is_default(operation: Operation) -> bool:
    """Whether a list is fetched unless excluded: a paged, current list of the regular API.

    Reports and time-off lists (other servers, other plans) are fetched only when included.
    """
    return (
        operation.server_kind == "regular"
        and operation.pagination is not None
        and not operation.deprecated
        and listing(operation) is not None
    )


def select_listings(
    catalogue: Catalogue, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[Listing]:
    """The lists a run fetches: the default ones, plus `include`, less `exclude`, in order."""
    chosen = {op.operation_id: op for op in catalogue if is_default(op)}
    for operation_id in include:
        if operation_id not in catalogue:
            log.warning("bootstrap: %s is not an operation of the catalogue; skipped", operation_id)
            continue
        operation = catalogue.get(operation_id)
        if listing(operation) is None:
            log.warning(
                "bootstrap: %s is not a workspace list (a GET needing only workspaceId); skipped",
                operation_id,
            )
            continue
        chosen[operation_id] = operation
    for operation_id in exclude:
        chosen.pop(operation_id, None)
    return [described for op in chosen.values() if (described := listing(op)) is not None]


def unwrap_items(body: Any, noun: str) -> list[Any] | None:
    """Find the item list in a list operation's answer (None if it holds no list).

    Most lists answer an array. Some wrap it (getExpenses: `{"expenses": {"expenses":
    [...], "count"}, "dailyTotals": [...]}`, getInvoices: `{"invoices": [...], "total"}`):
    then the value named like the list wins, looked for level by level, else the first
    array found breadth-first.
    """
    if isinstance(body, list):
        return body
    if not isinstance(body, dict):
        return None
    named = body.get(noun)
    if isinstance(named, list):
        return named
    if isinstance(named, dict) and (inner := unwrap_items(named, noun)) is not None:
        return inner
    for value in body.values():
        if isinstance(value, list):
            return value
    for value in body.values():
        if isinstance(value, dict) and (inner := unwrap_items(value, noun)) is not None:
            return inner
    return None


def entity_key(item: Any) -> str | None:
    """An item's id: its `id`, else the `id` of its first object field (an approval
    request's lives in `approvalRequest`); None if it has none."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("id"), str) and item["id"]:
        return str(item["id"])
    for value in item.values():
        if isinstance(value, dict) and isinstance(value.get("id"), str) and value["id"]:
            return str(value["id"])
    return None
