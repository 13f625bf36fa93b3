"""Two app processes on one PostgreSQL: events spread over both run once, within the rate limit.

Clockify counts requests per add-on and workspace in 1-second windows (50 by default,
`{P}CLOCKIFY_RATE_LIMIT`), whatever the number of processes; the sandbox measures it by
arrival time. The limit here is set below what the two processes would send unpaced,
so that the budget they share is what keeps them under it.
"""

from __future__ import annotations

import pytest

from addon_core.sandbox import Sandbox, Sizes
from tests.harness import ServeApp
from tests.served_app import (
    assert_exactly_once,
    burst_payloads,
    fire_all,
    install_with_flow,
    wait_until_idle,
)

EVENTS = 150
#: Two processes with four workers each send well over this unpaced.
RATE_LIMIT = 10


pytestmark = pytest.mark.sandbox(seed=13, sizes=Sizes(projects=EVENTS), rate_limit=RATE_LIMIT)


async def test_two_processes_run_each_event_once_and_keep_to_the_rate_limit(
    database_kind: str,
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    if database_kind != "postgres":
        pytest.skip("several processes share one database on PostgreSQL only")
    apps = await serve_app(2, CLOCKIFY_RATE_LIMIT=str(RATE_LIMIT), CLOCKIFY_BURST=str(RATE_LIMIT))
    workspace = await install_with_flow(sandbox, apps[0])
    payloads = burst_payloads(sandbox, workspace, EVENTS)

    answers = await fire_all(sandbox, lambda n: apps[n % 2].url, workspace, payloads, senders=8)

    assert all(status and 200 <= status < 300 for status in answers.values()), answers
    await wait_until_idle(database_url)
    await assert_exactly_once(
        database_url, sandbox, workspace, payloads, set(payloads), in_flight_bound=0
    )
    assert sandbox.peak_rate(workspace.workspace_id) <= RATE_LIMIT
    assert sandbox.throttled == 0
    for app in apps:
        assert await app.stop() == 0, app.log()
