"""What one Clockify operation is: its parameters, paging and server, as the catalogue holds it.

Kept apart from the catalogue so the OpenAPI reader and the catalogue's callers share the
shapes without importing the reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

WORKSPACE_PARAM = "workspaceId"

ServerKind = Literal["regular", "reports", "time_off"]
ParameterLocation = Literal["path", "query", "header", "cookie"]

#: Install-payload / token-claim keys holding each server's base URL, first match wins.
BASE_URL_KEYS: dict[ServerKind, tuple[str, ...]] = {
    "regular": ("backendUrl", "apiUrl"),
    "reports": ("reportsUrl",),
    "time_off": ("ptoUrl",),
}


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: ParameterLocation
    required: bool
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True, slots=True)
class Pagination:
    """How an operation pages: `page`/`page-size` in the query, or `page`/`pageSize` in the body.

    For body paging the params are dotted paths into the body (`detailedFilter.page`).
    """

    kind: Literal["query", "body"]
    page_param: str
    size_param: str
    max_size: int | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """One Clockify operation; `body_schema` is a self-contained JSON Schema, read-only."""

    operation_id: str
    method: str
    path: str
    summary: str
    tag: str
    server_kind: ServerKind
    writes: bool
    scope: str | None
    parameters: tuple[Parameter, ...]
    body_schema: dict[str, Any] | None
    body_media_type: str | None
    body_required: bool
    pagination: Pagination | None
    deprecated: bool

    @property
    def takes_workspace(self) -> bool:
        """Whether the path names a workspace, which the installation then fills in."""
        return any(p.name == WORKSPACE_PARAM and p.location == "path" for p in self.parameters)
