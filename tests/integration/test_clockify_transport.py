"""The aiohttp transport under the Clockify client: what each failure says about the request
having left, no cookies kept between installations, and streamed bodies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from addon_core.clockify.client import (
    UNSENT_ERRORS,
    ClockifyClient,
    ClockifyResponse,
    ClockifyUnavailableError,
    InstallationContext,
)
from addon_core.clockify.hosts import HostAllowlist
from addon_core.clockify.pacing import Pacer
from addon_core.clockify.transport import AiohttpTransport, create_http_client
from addon_core.metrics import Metrics

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def answer_ok(writer: asyncio.StreamWriter, extra: bytes = b"") -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra)
    writer.write(b"Content-Length: 2\r\n\r\n{}")
    await writer.drain()


class Server:
    """A loopback server running `handler` per connection; it keeps every request it read."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[bytes] = []
        self.port = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self.handler, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def build_client(port: int, http: httpx.AsyncClient) -> ClockifyClient:
    async def no_sleep(_: float) -> None:
        return None

    return ClockifyClient(
        allowlist=HostAllowlist.from_entries([f"127.0.0.1:{port}"], allow_insecure_http=True),
        metrics=Metrics("test-addon"),
        pacer=Pacer(rate=1000, burst=1000),
        http=http,
        attempts=3,
        sleep=no_sleep,
    )


async def call_tags(
    client: ClockifyClient, base_url: str, method: str, workspace: str = "ws-1"
) -> ClockifyResponse:
    """Call a workspace's tags through `client`: POST creates one, GET lists them."""
    create = method == "POST"
    return await client.call(
        InstallationContext(workspace, "token"),
        method,
        f"{base_url}/api/v1/workspaces/{workspace}/tags",
        operation="createTag" if create else "getTags",
        json={"name": "x"} if create else None,
    )


def setting_a_cookie(requests: list[bytes]) -> Handler:
    """A handler answering every request of its connection with a cookie; it keeps them."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                requests.append(await read_request(reader))
            except asyncio.IncompleteReadError:
                break
            await answer_ok(writer, b"Set-Cookie: session=workspace-a; Path=/\r\n")
        writer.close()

    return handle


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = create_http_client(timeout_seconds=2.0)
    yield client
    await client.aclose()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_unsent_so_even_a_post_is_retried(
    http: httpx.AsyncClient,
) -> None:
    port = closed_port()
    client = build_client(port, http)

    with pytest.raises(ClockifyUnavailableError) as raised:
        await call_tags(client, f"http://127.0.0.1:{port}", "POST")

    assert raised.value.maybe_delivered is False
    retries = client.metrics.registry.get_sample_value(
        "addon_clockify_retries_total",
        {"addon": "test-addon", "operation": "createTag", "reason": "transport"},
    )
    assert retries == 2  # three attempts, none of which reached a server


async def test_a_connection_dropped_after_the_request_may_have_delivered_a_post(
    http: httpx.AsyncClient,
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.requests.append(await read_request(reader))
        writer.close()

    async with Server(hang_up) as server:
        client = build_client(server.port, http)
        with pytest.raises(ClockifyUnavailableError) as raised:
            await call_tags(client, server.url, "POST")

    assert raised.value.maybe_delivered is True
    assert len(server.requests) == 1  # not sent again: it may have created the tag


async def test_waiting_for_a_pool_slot_past_the_pool_timeout_is_an_unsent_error() -> None:
    release, arrived = asyncio.Event(), asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server.requests.append(await read_request(reader))
        arrived.set()
        await release.wait()
        await answer_ok(writer)
        writer.close()

    transport = AiohttpTransport(max_connections=1)
    timeout = httpx.Timeout(5.0, pool=0.1)
    async with (
        Server(slow) as server,
        httpx.AsyncClient(transport=transport, timeout=timeout) as http,
    ):
        first = asyncio.create_task(http.get(f"{server.url}/one"))
        await arrived.wait()
        with pytest.raises(UNSENT_ERRORS):
            await http.get(f"{server.url}/two")
        release.set()
        assert (await first).status_code == 200

    assert len(server.requests) == 1


async def test_a_cookie_set_for_one_call_is_never_sent_with_the_next() -> None:
    requests: list[bytes] = []
    transport = AiohttpTransport()
    async with Server(setting_a_cookie(requests)) as server:
        for path in ("/workspaces/a", "/workspaces/b"):
            request = httpx.Request("GET", f"{server.url}{path}")
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()
        await transport.aclose()

    assert len(requests) == 2
    assert b"cookie:" not in requests[1].lower()


async def test_a_streamed_request_body_arrives_whole() -> None:
    async def echo_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        server.requests.append(head)
        body = b""
        while True:  # chunked: size line, chunk, CRLF; a zero size ends it
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
        server.requests.append(body)
        await answer_ok(writer)
        writer.close()

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"name":'
        yield b'"streamed"}'

    transport = AiohttpTransport()
    async with Server(echo_length) as server:
        request = httpx.Request("POST", f"{server.url}/tags", content=parts())
        response = await transport.handle_async_request(request)
        await response.aread()
        await transport.aclose()

    assert response.status_code == 200
    assert server.requests[1] == b'{"name":"streamed"}'
    assert server.requests[0].lower().count(b"transfer-encoding") == 1


async def test_the_client_sends_no_cookie_a_previous_answer_set(http: httpx.AsyncClient) -> None:
    requests: list[bytes] = []
    async with Server(setting_a_cookie(requests)) as server:
        client = build_client(server.port, http)
        for workspace in ("ws-a", "ws-b"):
            await call_tags(client, server.url, "GET", workspace)

    assert len(requests) == 2
    assert b"cookie:" not in requests[1].lower()


async def test_a_kept_alive_connection_dropped_under_a_put_does_not_send_it_again() -> None:
    # aiohttp would send an idempotent request again on a fresh connection by itself;
    # only the client's retry policy may decide that (and count it).
    async def answer_once_then_hang_up(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        server.requests.append(await read_request(reader))
        if len(server.requests) == 1:
            await answer_ok(writer)
            server.requests.append(await read_request(reader))
        writer.close()

    async with Server(answer_once_then_hang_up) as server:
        transport = AiohttpTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            first = await http.put(f"{server.url}/entries/1", json={"n": 1})
            with pytest.raises(httpx.TransportError):
                await http.put(f"{server.url}/entries/1", json={"n": 2})

    assert first.status_code == 200
    assert len(server.requests) == 2
