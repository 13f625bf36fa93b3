"""What stands before the sandbox's API: recording, injected faults, auth and the rate limit.

A raw ASGI wrapper around the Litestar app, because a fault may drop the connection
without an answer, which a framework handler cannot do. Control paths (`/_sandbox/`)
and the shell page at `/` pass straight through and are not recorded.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

# Plain ASGI shapes: the gate passes messages through, whichever kind they are.
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

CONTROL_PREFIX = "/_sandbox"
#: The Clockify-like shell that frames the add-on's pages (`addon_core.sandbox.shell`).
SHELL_PATH = "/"
TOKEN_HEADER = b"x-addon-token"
#: Clockify's error codes in `{"message", "code"}` bodies, by HTTP status.
ERROR_CODES = {400: 501, 401: 1000, 403: 1000, 404: 501}
_WORKSPACE_IN_PATH = re.compile(r"/v1/workspaces/([^/]+)")


class RecordedRequest(NamedTuple):
    """One API request: `path` holds the query string too; `status` 0 is a dropped connection."""

    method: str
    path: str
    status: int
    at: float
    body: Any

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    @property
    def workspace_id(self) -> str | None:
        match = _WORKSPACE_IN_PATH.search(self.route)
        return match.group(1) if match else None


@dataclass
class Fault:
    """An injected failure for the requests it matches, `times` times (None: until cleared).

    `status` answers that status (None: let the request through after `latency`);
    `drop` closes the connection without an answer.
    """

    status: int | None = 503
    times: int | None = 1
    path_contains: str = ""
    method: str | None = None
    retry_after: float | None = None
    latency: float = 0.0
    drop: bool = False
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return self.path_contains in path and self.method in (None, method)

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def describe(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "times": self.times,
            "pathContains": self.path_contains,
            "method": self.method,
            "retryAfter": self.retry_after,
            "latency": self.latency,
            "drop": self.drop,
            "hits": self.hits,
        }


class SlidingWindow:
    """At most `limit` accepted requests per key in any `window`-second span."""

    def __init__(self, limit: int, clock: Callable[[], float], window: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._accepted: defaultdict[str, deque[float]] = defaultdict(deque)

    def admit(self, key: str) -> bool:
        """Record and admit a request now, or refuse it (and record nothing)."""
        now = self._clock()
        accepted = self._accepted[key]
        while accepted and accepted[0] <= now - self.window:
            accepted.popleft()
        if len(accepted) >= self.limit:
            return False
        accepted.append(now)
        return True

    def clear(self) -> None:
        self._accepted.clear()


class Gate:
    """The ASGI app uvicorn serves: checks each API request, then hands it to `app`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        public_key: RSAPublicKey,
        rate_limit: int,
        retry_after: float | None,
        clock: Callable[[], float],
    ) -> None:
        self.app = app
        self.public_key = public_key
        self.retry_after = retry_after
        self.clock = clock
        self.limiter = SlidingWindow(rate_limit, clock)
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.throttled = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == SHELL_PATH or path.startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        method, at = scope["method"], self.clock()
        query = scope.get("query_string", b"").decode("latin-1")
        path = f"{scope['path']}?{query}" if query else scope["path"]
        raw = await _read_body(receive)
        status = await self._answer(scope, raw, receive, send, method, path)
        self.requests.append(RecordedRequest(method, path, status, at, _json_or_text(raw)))

    async def _answer(
        self, scope: Scope, raw: bytes, receive: Receive, send: Send, method: str, path: str
    ) -> int:
        fault = next((f for f in self.faults if f.matches(method, path)), None)
        if fault is not None:
            fault.hits += 1
            if fault.latency:
                await asyncio.sleep(fault.latency)
            if fault.drop:
                await _drop_connection(send)
                return 0
            if fault.status is not None:
                headers = _retry_after_header(fault.retry_after)
                message = f"Injected fault: {fault.status}"
                await send_error(send, fault.status, message, headers)
                return fault.status
        refusal = self._authenticate(scope, path)
        if refusal is not None:
            await send_error(send, *refusal)
            return refusal[0]
        workspace_id = scope["state"]["claims"]["workspaceId"]
        if not self.limiter.admit(str(workspace_id)):
            self.throttled += 1
            message = "Too many requests: the rate limit is per add-on and workspace"
            await send_error(send, 429, message, _retry_after_header(self.retry_after))
            return 429
        return await self._forward(scope, raw, receive, send)

    def _authenticate(self, scope: Scope, path: str) -> tuple[int, str] | None:
        """Verify `X-Addon-Token` and its workspace; put the claims in the request state."""
        token = dict(scope["headers"]).get(TOKEN_HEADER, b"").decode("latin-1")
        if not token:
            return 401, "Full authentication is required: send the X-Addon-Token header"
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                issuer="clockify",
                options={"require": ["iss", "sub", "workspaceId"], "verify_aud": False},
            )
        except jwt.InvalidTokenError as exc:
            return 401, f"The X-Addon-Token is not valid: {exc}"
        if "eventType" in claims:
            return 401, "A webhook token cannot call the API"
        match = _WORKSPACE_IN_PATH.search(path.split("?", 1)[0])
        if match and match.group(1) != claims["workspaceId"]:
            return 403, "The token is not for this workspace"
        scope.setdefault("state", {})["claims"] = claims
        return None

    async def _forward(self, scope: Scope, raw: bytes, receive: Receive, send: Send) -> int:
        status = 500
        delivered = False

        async def replay() -> Message:
            # The body was read here first: hand it over whole, then the client's own events.
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, replay, watch)
        return status

    def peak_rate(self, workspace_id: str | None = None, window: float = 1.0) -> int:
        """Return the most requests (answered or not) that arrived within any `window`."""
        times = sorted(r.at for r in self.requests if workspace_id in (None, r.workspace_id))
        peak, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= window:
                first += 1
            peak = max(peak, last - first + 1)
        return peak


async def send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with Clockify's error body, `{"message": ..., "code": ...}`."""
    body = json.dumps({"message": message, "code": ERROR_CODES.get(status, status)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _retry_after_header(seconds: float | None) -> list[tuple[bytes, bytes]]:
    if seconds is None:
        return []
    return [(b"retry-after", str(math.ceil(seconds)).encode())]


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


async def _drop_connection(send: Send) -> None:
    """Close the connection without an answer: the client sees a transport error.

    ASGI has no message for this; uvicorn's `send` is bound to the request cycle, which
    holds the transport. Elsewhere, fall back to breaking off after the status line.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        return
    transport.close()
    # connection_lost runs on a later turn of the loop; once it has, uvicorn sends nothing.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)
