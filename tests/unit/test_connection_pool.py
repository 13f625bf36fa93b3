"""The Clockify connection pool: shards filled first to last, slots held until the body
closes, and waiting for a slot bounded by the pool timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from addon_core.clockify.client import ShardedPool

URL = "http://clockify.test/api/v1/workspaces/ws-1/tags"


class StreamedBody(httpx.AsyncByteStream):
    """A body read off the wire, as a real connection's is (not loaded in advance)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"[]"


class CountingShard(httpx.MockTransport):
    """A shard that answers 200 with a streamed body and counts what it was sent."""

    def __init__(self) -> None:
        super().__init__(self.answer)
        self.sent = 0

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return httpx.Response(200, stream=StreamedBody())


def pool_of(shards: list[CountingShard], per_shard: int) -> httpx.AsyncClient:
    transport = ShardedPool(list[httpx.AsyncBaseTransport](shards), per_shard)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=0.05))


async def test_requests_fill_the_first_shard_before_the_next() -> None:
    shards = [CountingShard(), CountingShard(), CountingShard()]
    async with (
        pool_of(shards, 2) as client,
        client.stream("GET", URL),
        client.stream("GET", URL),
        client.stream("GET", URL),
    ):
        assert [shard.sent for shard in shards] == [2, 1, 0]


async def test_a_closed_response_gives_its_slot_back() -> None:
    shards = [CountingShard()]
    async with pool_of(shards, 1) as client:
        for _ in range(3):
            response = await client.get(URL)
            assert response.status_code == 200
    assert shards[0].sent == 3


async def test_waiting_longer_than_the_pool_timeout_raises_a_pool_timeout() -> None:
    async with pool_of([CountingShard()], 1) as client, client.stream("GET", URL):
        with pytest.raises(httpx.PoolTimeout):
            await client.get(URL)


async def test_a_waiting_request_goes_out_once_a_slot_frees() -> None:
    shards = [CountingShard()]
    async with pool_of(shards, 1) as client:
        held = client.stream("GET", URL)
        await held.__aenter__()
        waiting = asyncio.create_task(client.get(URL))
        await asyncio.sleep(0)
        assert shards[0].sent == 1
        await held.__aexit__(None, None, None)
        assert (await waiting).status_code == 200
    assert shards[0].sent == 2


async def test_an_answer_read_whole_already_holds_no_slot() -> None:
    transport = ShardedPool([httpx.MockTransport(lambda _: httpx.Response(200, json=[]))], 1)
    async with (
        httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(5.0, pool=0.05)) as client,
        client.stream("GET", URL),
    ):
        assert (await client.get(URL)).status_code == 200


async def test_a_failed_send_gives_its_slot_back() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = ShardedPool([httpx.MockTransport(refuse)], 1)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(5.0, pool=0.05)
    ) as client:
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                await client.get(URL)
