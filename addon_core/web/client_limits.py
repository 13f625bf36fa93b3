"""A guard against hostile clients, below the app: header and body time, header size and count.

uvicorn bounds neither the time a client may take to send its headers or body nor the
size and count of headers on its httptools parser, so one slow or bloated client can
hold a connection (and its memory) for as long as it likes. `GuardedHttpToolsProtocol`
adds those bounds at the protocol, below the app: a client that has not sent its whole
header block within the header timeout gets 408 and is cut off (this also covers a
connection that sends nothing), one past the header count or size gets 431. The body
reader (`addon_core.web.body`) answers 408 to a body not in within the body timeout; the
guard cuts, a second later, a body the app is not reading.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from addon_core.settings import AddonSettings

#: How long after the body bound the server cuts a body the app is not reading.
_BODY_GRACE_SECONDS = 1.0
_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True, slots=True)
class ClientLimits:
    """What one client may take: header count and size, time for headers and for a body."""

    max_header_count: int = 100
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: AddonSettings) -> ClientLimits:
        return cls(
            max_header_count=settings.max_header_count,
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.client_header_timeout_seconds,
            body_timeout=settings.client_body_timeout_seconds,
        )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body bounds (see the module docstring)."""

    limits: ClassVar[ClientLimits] = ClientLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        #: "headers" or "body" while one is on the clock, else None (idle: keep-alive's job)
        self._phase: str | None = None
        #: once answered by the guard, nothing more of this connection is parsed
        self._refused = False

    @classmethod
    def with_limits(cls, limits: ClientLimits) -> type[GuardedHttpToolsProtocol]:
        """Return a subclass bound to `limits` (uvicorn instantiates the class it is given)."""
        return type(cls.__name__, (cls,), {"limits": limits})

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A client that connects and sends nothing is on the header clock from the start.
        self._start("headers", self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._refused:
            super().data_received(data)

    # -- the parser's callbacks (after a refusal they do nothing: no app call starts) --------

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._header_bytes = 0
        if self._phase is None:  # a keep-alive request: its own header clock
            self._start("headers", self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        if not self._refused and self._within(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused or not self._within(len(name) + len(value) + 4):
            return
        if len(self.headers) >= self.limits.max_header_count:
            self._answer(431, f"more than {self.limits.max_header_count} headers")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._stop()
        super().on_headers_complete()
        # The body reader answers 408 at the bound; this cuts a body nobody reads a little
        # later. Stopped at once when there is no body.
        self._start("body", self.limits.body_timeout + _BODY_GRACE_SECONDS)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._stop()
        super().on_message_complete()

    # -- bounds -----------------------------------------------------------------------------

    def _within(self, size: int) -> bool:
        self._header_bytes += size
        if self._header_bytes <= self.limits.max_header_bytes:
            return True
        self._answer(431, f"the headers are over {self.limits.max_header_bytes} bytes")
        return False

    def _start(self, phase: str, delay: float) -> None:
        self._stop()
        self._phase = phase
        self._timer = self.loop.call_later(delay, self._expire)

    def _stop(self) -> None:
        self._phase = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        phase, self._timer = self._phase, None
        if self.transport.is_closing() or phase is None:
            return
        if phase == "body" and self.cycle is not None and self.cycle.response_started:
            self._refused = True  # too late for a status: cut the connection
            self._phase = None
            self.transport.close()
            return
        self._answer(408, f"the {phase} took too long to arrive")

    def _answer(self, status: int, message: str) -> None:
        """Answer with a short plain-text error and close, whatever the app is doing."""
        self._refused = True
        self._stop()
        if self.cycle is not None and not self.cycle.response_complete:
            # The app's task, if one runs, sees the client gone and its answer is dropped.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        body = f"{message}\n".encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
        ) % (status, _REASONS[status], len(body))
        self.transport.write(head + body)
        self.transport.close()
