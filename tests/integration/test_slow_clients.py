"""Hostile clients against a really served app: slow headers and bodies, bloated headers.

The app runs on uvicorn with the guard `clockify-addons serve` uses
(`addon_core.serving.server_config`), on an OS-assigned port, with short bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar

from addon_core.intake.routes import webhook_path
from addon_core.serving import server_config
from tests.db import count
from tests.fake_clockify import Clockify, Workspace
from tests.harness import refusing_clockify

APP = "universal-webhook"
BOUND = 1.0  # seconds for headers and for a body
#: Long enough that only a bound can end a wait this test makes.
PATIENCE = 15.0
LIMITS = {
    "client_header_timeout_seconds": BOUND,
    "client_body_timeout_seconds": BOUND,
    "max_header_count": 20,
    "max_header_bytes": 8192,
}


@dataclass
class Served:
    host: str
    port: int
    clockify: Clockify
    workspace: Workspace

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)


@pytest.fixture
async def served(
    make_app: Callable[..., Litestar], signer: Callable[[str], Any]
) -> AsyncIterator[Served]:
    app = make_app(APP, clockify_transport=refusing_clockify(400, "no webhooks here"), **LIMITS)
    settings = app.state.runtime.settings
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=0))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the server did not start"
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            clockify = Clockify.for_app(client, APP)  # type: ignore[arg-type]
            workspace = Workspace(signer(APP))
            await clockify.install(workspace)
            yield Served("127.0.0.1", port, clockify, workspace)
    finally:
        server.should_exit = True
        await task


async def answer_of(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    return await asyncio.wait_for(reader.read(), PATIENCE)


async def trickle(writer: asyncio.StreamWriter, lines: list[bytes], pause: float) -> None:
    """Send a line at a time, slowly, until done or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for line in lines:
            writer.write(line)
            await writer.drain()
            await asyncio.sleep(pause)


def close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        writer.close()


async def test_a_client_trickling_headers_is_cut_off_with_408(served: Served) -> None:
    reader, writer = await served.connect()
    lines = [b"GET /livez HTTP/1.1\r\n", b"Host: x\r\n"] + [b"X-Slow: 1\r\n"] * 100
    sending = asyncio.create_task(trickle(writer, lines, BOUND / 5))

    answer = await answer_of(reader)

    # Cut off while headers were still coming (100 lines take 20 x the bound).
    assert not sending.done()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"the headers took too long" in answer
    sending.cancel()
    close(writer)


async def test_a_connection_that_sends_nothing_is_closed(served: Served) -> None:
    reader, writer = await served.connect()

    answer = await answer_of(reader)

    assert answer.startswith(b"HTTP/1.1 408 ")
    close(writer)


async def test_a_hundred_slow_sockets_do_not_stop_a_normal_request(served: Served) -> None:
    slow = [await served.connect() for _ in range(100)]
    for _, writer in slow:
        writer.write(b"POST /webhooks/clockify/new-time-entry HTTP/1.1\r\nHost: x\r\n")
    async with httpx.AsyncClient(base_url=f"http://{served.host}:{served.port}") as client:
        response = await client.get("/livez")

    assert response.status_code == 200
    answers = await asyncio.gather(*(answer_of(reader) for reader, _ in slow))
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    for _, writer in slow:
        close(writer)


@pytest.mark.parametrize(
    "headers",
    [
        [f"X-Many-{i}: 1" for i in range(30)],
        ["X-Big: " + "b" * 9000],
        ["X-Split-1: " + "b" * 4000, "X-Split-2: " + "b" * 4000, "X-Split-3: " + "b" * 4000],
    ],
    ids=["too-many", "one-too-big", "too-big-together"],
)
async def test_too_many_or_too_large_headers_are_refused_with_431(
    served: Served, headers: list[str]
) -> None:
    reader, writer = await served.connect()
    request = "\r\n".join(["GET /livez HTTP/1.1", "Host: x", *headers, "", ""])
    writer.write(request.encode())
    await writer.drain()

    answer = await answer_of(reader)

    assert answer.startswith(b"HTTP/1.1 431 ")
    close(writer)


async def test_headers_within_the_bounds_are_served(served: Served) -> None:
    headers = {f"X-Fine-{i}": "f" * 200 for i in range(15)}
    async with httpx.AsyncClient(base_url=f"http://{served.host}:{served.port}") as client:
        response = await client.get("/livez", headers=headers)

    assert response.status_code == 200


async def test_a_slow_body_gets_408_and_nothing_is_stored(
    served: Served, database_url: str
) -> None:
    event = "NEW_TIME_ENTRY"
    body = json.dumps({"id": "65b0000000000000000000e1", "description": "slow"}).encode()
    head = (
        f"POST {webhook_path(event)} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Clockify-Webhook-Event-Type: {event}\r\n"
        f"Clockify-Signature: {served.workspace.webhook_token(event)}\r\n\r\n"
    ).encode()
    reader, writer = await served.connect()
    writer.write(head + body[:10])
    await writer.drain()
    sending = asyncio.create_task(trickle(writer, [bytes([byte]) for byte in body[10:]], BOUND / 5))

    answer = await answer_of(reader)

    assert not sending.done()
    status, _, rest = answer.partition(b"\r\n")
    assert status.startswith(b"HTTP/1.1 408 ")
    error = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert error["status_code"] == 408
    assert "did not arrive within 1 seconds" in error["detail"]
    sending.cancel()
    close(writer)
    assert await count(database_url, "events") == 0
