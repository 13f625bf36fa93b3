"""X-Request-Id: kept when sane, made otherwise, always returned."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient


async def test_a_sane_request_id_is_kept_and_returned(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/livez", headers={"X-Request-Id": "edge-7f3a:42"})

    assert response.headers["x-request-id"] == "edge-7f3a:42"


@pytest.mark.parametrize("given", [None, "", "two words", "x" * 129, 'quote"d'])
async def test_a_missing_or_odd_request_id_is_replaced(
    client: AsyncTestClient[Litestar], given: str | None
) -> None:
    headers = {} if given is None else {"X-Request-Id": given}

    first = await client.get("/livez", headers=headers)
    second = await client.get("/livez", headers=headers)

    made = first.headers["x-request-id"]
    assert len(made) == 32
    assert made != given
    assert second.headers["x-request-id"] != made
    assert first.headers.get_list("x-request-id") == [made]


async def test_an_error_answer_carries_the_request_id(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post("/webhooks/clockify/new-project", content=b"{}")

    assert response.status_code == 401
    assert len(response.headers["x-request-id"]) == 32
