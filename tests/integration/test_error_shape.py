"""One error shape on every route: `{"status_code", "detail"}` plus `extra` as an object."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from addon_core.clockify.tokens import TokenSigner
from tests.fake_clockify import Workspace
from tests.harness import bearer

ADDON = "universal-webhook"


@pytest.fixture
async def client(make_app: Callable[..., Litestar]) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=make_app(ADDON)) as test_client:
        yield test_client


async def test_a_malformed_query_parameter_lists_its_error_in_the_usual_extra_object(
    client: AsyncTestClient[Litestar], signer: Callable[[str], TokenSigner]
) -> None:
    workspace = Workspace(signer(ADDON))
    headers = bearer(workspace.user_token("OWNER"))

    response = await client.get("/api/jobs/dead", params={"limit": "many"}, headers=headers)

    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"status_code", "detail", "extra"}
    [error] = body["extra"]["errors"]
    assert error["field"] == "limit"
    assert error["message"]


async def test_the_missing_token_hint_keeps_its_placeholder(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/api/jobs/dead")

    assert response.status_code == 401
    assert "'Authorization: Bearer <token>'" in response.json()["detail"]
