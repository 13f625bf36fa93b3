"""Request ids: what ties together the log lines of one request and of the work it causes.

A request keeps the `X-Request-Id` it came with (when it is a sane token) or gets a new
one; the id is returned on the response, written into the request's headers (so a
stored webhook event keeps it, and the job made from it carries it) and held, with the
add-on and the workspace, in context variables that every log line reads.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from random import getrandbits
from typing import Final

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER: Final = "x-request-id"
_HEADER_BYTES = REQUEST_ID_HEADER.encode()
#: What a caller's id may look like to be kept: printable, short, no spaces or quotes.
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_workspace_id: ContextVar[str | None] = ContextVar("workspace_id", default=None)
_addon: ContextVar[str | None] = ContextVar("addon", default=None)
_FIELDS = (("request_id", _request_id), ("workspace_id", _workspace_id), ("addon", _addon))


def bind(
    *, request_id: str | None = None, workspace_id: str | None = None, addon: str | None = None
) -> None:
    """Set the given ids for the rest of the current task (and the tasks it starts)."""
    if request_id is not None:
        _request_id.set(request_id)
    if workspace_id is not None:
        _workspace_id.set(workspace_id)
    if addon is not None:
        _addon.set(addon)


def current_request_id() -> str | None:
    return _request_id.get()


def current_ids() -> dict[str, str]:
    """The ids bound in this context, by log field name."""
    ids = {}
    for name, variable in _FIELDS:
        value = variable.get()
        if value is not None:
            ids[name] = value
    return ids


def accept_request_id(value: str | None) -> str:
    """Keep a caller's request id if it is a sane token, else make a new one."""
    if value is not None and _ACCEPTED_ID.fullmatch(value):
        return value
    # 128 random bits, written like a UUID's hex, from the process's seeded generator: an id
    # to find log lines by, not a secret, and no system call on every request (uuid4 makes
    # one, a measurable share of the webhook path).
    return f"{getrandbits(128):032x}"


class ContextFilter(logging.Filter):
    """Copy the bound ids onto each record (a record's own extras win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in _FIELDS:
            value = variable.get()
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


def with_request_id(app: ASGIApp, addon: str) -> ASGIApp:
    """Give each HTTP request an id: bound for its logs, in its headers and on its response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = None
        others = []
        for name, value in scope["headers"]:
            if name.lower() == _HEADER_BYTES:
                given = given or value.decode("latin-1")
            else:
                others.append((name, value))
        request_id = accept_request_id(given)
        encoded = request_id.encode()
        scope["headers"] = [*others, (_HEADER_BYTES, encoded)]
        tokens = (_request_id.set(request_id), _workspace_id.set(None), _addon.set(addon))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_HEADER_BYTES, encoded)]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            for (_name, variable), token in zip(_FIELDS, tokens, strict=True):
                variable.reset(token)

    return middleware
