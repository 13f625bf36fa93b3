"""What every `/api/` handler shares: who is calling, what they may do, how lists page.

The JSON API is called by the add-on's pages inside Clockify with the user token
Clockify hands to UI components (`Authorization: Bearer <auth_token>`). The token's
workspace scopes every read and write: another workspace's object is answered 404,
exactly as one that does not exist, so ids leak nothing. Writes need the workspace
role OWNER or ADMIN, and an ACTIVE installation in the token's workspace: every
non-GET call for a workspace where the add-on was never installed, was deleted or is
INACTIVE answers 409 and writes nothing (an inactive add-on is off in Clockify, and
the DELETED purge must leave nothing for a later reinstall to find).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import PathParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.clockify.tokens import TokenKind
from addon_core.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
)
from addon_core.runtime import AddonRuntime
from addon_core.storage.models import Installation
from addon_core.storage.scope import scoped

WRITER_ROLES = frozenset({"OWNER", "ADMIN"})
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
#: Methods that write nothing: the only ones a workspace without an active installation may use.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

#: The largest id a row can have: a signed 64-bit integer on SQLite and PostgreSQL.
MAX_ROW_ID = 2**63 - 1
#: Our cursors are a few dozen characters; anything far longer was not one of ours.
MAX_CURSOR_LENGTH = 512
_FOREIGN_CURSOR = (
    "the cursor is not one this API returned; pass the 'next' value of the previous page"
)

T = TypeVar("T")
Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified user behind an `/api/` request."""

    workspace_id: str
    user_id: str | None
    role: str

    @property
    def can_write(self) -> bool:
        return self.role in WRITER_ROLES

    def require_writer(self, action: str) -> None:
        """Refuse (403) a user whose workspace role may not `action`."""
        if not self.can_write:
            raise ForbiddenError(
                f"{action} needs the workspace role OWNER or ADMIN (yours is {self.role})",
                reason="role",
            )


def bearer_token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(
            "send the user token Clockify gives the add-on's pages as "
            "'Authorization: Bearer <token>'",
            reason="missing",
        )
    return token.strip()


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Verify the user token (RS256, this add-on, not expired) and name the caller.

    A write (any method but GET, HEAD, OPTIONS) also needs the add-on active in the
    caller's workspace.
    """
    runtime: AddonRuntime = request.app.state.runtime
    claims = runtime.verify_token(bearer_token(request), TokenKind.USER)
    if request.method.upper() not in READ_METHODS:
        await require_active_installation(runtime, claims.workspace_id)
    return Caller(
        workspace_id=claims.workspace_id,
        user_id=claims.user_id,
        role=claims.workspace_role or "",
    )


async def require_active_installation(runtime: AddonRuntime, workspace_id: str) -> None:
    """Refuse (409) a write for a workspace where the add-on is not installed and active."""
    async with runtime.sessions() as session:
        status = await session.scalar(
            select(Installation.status).where(
                *scoped(Installation, runtime.addon_key, workspace_id),
            )
        )
    if status == "ACTIVE":
        return
    if status == "INACTIVE":
        raise ConflictError(
            "the add-on is inactive in this workspace, so nothing can be changed; "
            "an owner or admin can turn it back on in Clockify's add-on settings",
            reason="inactive",
        )
    raise ConflictError(
        f"the add-on is not installed in this workspace ({workspace_id}); install it from "
        "Clockify's marketplace, then try again",
        reason="not_installed",
    )


#: How `/api/` handlers ask for the caller: `caller: CallerDep`.
CallerDep = NamedDependency[Caller]

#: A row id in a path: 1 to MAX_ROW_ID, else a 400 before any query (a larger one overflows).
RowId = Annotated[int, PathParameter(ge=1, le=MAX_ROW_ID)]


async def find_in_workspace(
    session: AsyncSession,
    model: type[Row],
    object_id: int | str,
    *,
    addon_key: str,
    workspace_id: str,
    missing: str,
    for_update: bool = False,
) -> Row:
    """The row of `model` with this id in the caller's workspace, or 404 saying `missing`.

    Another workspace's row answers exactly as one that does not exist.
    """
    table: Any = model
    query = select(model).where(table.id == object_id, *scoped(table, addon_key, workspace_id))
    row = await session.scalar(query.with_for_update() if for_update else query)
    if row is None:
        raise NotFoundError(missing)
    return row


def page_limit(limit: int | None) -> int:
    """Check a `limit` query parameter (1..200, default 50)."""
    if limit is None:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequestError(f"limit must be between 1 and {MAX_LIMIT} (got {limit})")
    return limit


async def refuse_ids_out_of_range(request: Request[Any, Any, Any]) -> None:
    """Refuse (400) an integer path parameter no row can have, before any handler runs.

    The database drivers cannot even bind an integer past 64 bits: left alone, it is a 500.
    A coroutine although it awaits nothing: Litestar runs a plain function given as
    `before_request` in a worker thread, a thread hop on every request (the webhook's too).
    """
    for name, value in request.path_params.items():
        if isinstance(value, int) and not 0 <= value <= MAX_ROW_ID:
            raise BadRequestError(
                f"{name} {value} is out of range: ids are whole numbers from 0 to {MAX_ROW_ID}",
                reason="path",
            )


def encode_cursor(value: int | str) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """Read a `next` cursor back; a cursor that was not ours is a 400, not a crash."""
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise BadRequestError(_FOREIGN_CURSOR)
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(_FOREIGN_CURSOR) from None


def decode_int_cursor(cursor: str | None) -> int | None:
    """An id cursor: lists are newest first, so the next page holds ids below it."""
    text = decode_cursor(cursor)
    if text is None:
        return None
    # isdigit() alone admits digits such as "²", which int() refuses.
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_ROW_ID:
        raise BadRequestError(_FOREIGN_CURSOR)
    return int(text)


def page_of(
    rows: Sequence[T], limit: int, *, render: Callable[[T], Any], key: Callable[[T], int | str]
) -> dict[str, Any]:
    """`{"items", "next"}` from up to `limit + 1` rows fetched newest first."""
    items = [render(row) for row in rows[:limit]]
    following = encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None
    return {"items": items, "next": following}
