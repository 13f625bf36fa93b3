"""What every `/api/` handler shares: who is calling, what they may do, how lists page.

The JSON API is called by the add-on's pages inside Clockify with the user token
Clockify hands to UI components (`Authorization: Bearer <auth_token>`). The token's
workspace scopes every read and write: another workspace's object is answered 404,
exactly as one that does not exist, so ids leak nothing. Writes need the workspace
role OWNER or ADMIN.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Request
from litestar.di import NamedDependency
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError
from addon_core.runtime import AddonRuntime
from addon_core.security import TokenKind

WRITER_ROLES = frozenset({"OWNER", "ADMIN"})
DEFAULT_LIMIT = 50
MAX_LIMIT = 200

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


def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Verify the user token (RS256, this add-on, not expired) and name the caller."""
    runtime: AddonRuntime = request.app.state.runtime
    claims = runtime.verify_token(bearer_token(request), TokenKind.USER)
    return Caller(
        workspace_id=claims.workspace_id,
        user_id=claims.user_id,
        role=claims.workspace_role or "",
    )


#: How `/api/` handlers ask for the caller: `caller: CallerDep`.
CallerDep = NamedDependency[Caller]


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
    query = select(model).where(
        table.id == object_id, table.addon_key == addon_key, table.workspace_id == workspace_id
    )
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


def encode_cursor(value: int | str) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """Read a `next` cursor back; a cursor that was not ours is a 400, not a crash."""
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequestError(
            "the cursor is not one this API returned; pass the 'next' value of the previous page"
        ) from None


def decode_int_cursor(cursor: str | None) -> int | None:
    """An id cursor: lists are newest first, so the next page holds ids below it."""
    text = decode_cursor(cursor)
    if text is None:
        return None
    # ASCII digits only ("²" is a digit to str.isdigit, not to int()), and at most an int64.
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        raise BadRequestError(
            "the cursor is not one this API returned; pass the 'next' value of the previous page"
        )
    return int(text)


def page_of(
    rows: Sequence[T], limit: int, *, render: Callable[[T], Any], key: Callable[[T], int | str]
) -> dict[str, Any]:
    """`{"items", "next"}` from up to `limit + 1` rows fetched newest first."""
    items = [render(row) for row in rows[:limit]]
    following = encode_cursor(key(rows[limit - 1])) if len(rows) > limit else None
    return {"items": items, "next": following}
