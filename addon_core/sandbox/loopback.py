"""Serve an ASGI app with uvicorn on this event loop, on loopback, for as long as needed.

The sandbox runs on it, and tests use it to run an add-on app as a real HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import uvicorn

STARTUP_TIMEOUT_SECONDS = 10.0
Lifespan = Literal["auto", "on", "off"]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process hosting the server owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class LoopbackServer:
    """One uvicorn server for `app` on `host:port` (port 0 picks a free one)."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, lifespan: Lifespan = "off"
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.lifespan = lifespan
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the port, start serving and return once uvicorn is up."""
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY on accepted connections only
        # then, and without it every answer waits out Nagle and delayed ACKs (~40 ms).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        self.port = listener.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            interface="asgi3",
            lifespan=self.lifespan,
            ws="none",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        server = self._server = _EmbeddedServer(config)
        task = self._task = asyncio.create_task(server.serve(sockets=[listener]))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if task.done() or loop.time() > deadline:
                server.should_exit = True
                listener.close()
                await task  # raises what stopped it, if anything did
                self._server = self._task = None
                raise RuntimeError(f"the server on {self.host}:{self.port} did not start")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """Stop serving (in-flight requests get a short grace period)."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def serving(app: Any, *, port: int = 0, lifespan: Lifespan = "on") -> AsyncIterator[str]:
    """Serve `app` on loopback for the block and yield its URL (lifespan on, for apps)."""
    server = LoopbackServer(app, port=port, lifespan=lifespan)
    await server.start()
    try:
        yield server.url
    finally:
        await server.stop()
