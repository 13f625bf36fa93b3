"""Clockify goes down (every connection dropped): flow steps back off, give up, then replay.

Backoffs and attempts are shrunk so minutes of outage fit in seconds; what is checked is the
shape: each step is tried `job_max_attempts` times with pauses between, its execution is
then recorded as failed ("no attempts left", the flows' dead letter, listed per flow), and
replaying the events after recovery applies each event's effect exactly once.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from addon_core.app import create_addon_app
from addon_core.sandbox import Sandbox
from addon_core.sandbox.loopback import serving
from tests.db import fetch_all
from tests.harness import bearer
from tests.outage.conftest import SANDBOX, app_settings
from tests.served_app import (
    burst_payloads,
    effects,
    fire_all,
    install_with_flow,
    wait_until_idle,
)
from universal_webhook.app import SPEC

pytestmark = [pytest.mark.outage, SANDBOX]

EVENTS = 8
ATTEMPTS = 3
BACKOFF = 0.3


async def test_steps_back_off_give_up_while_clockify_is_down_and_replay_once_after(
    database_url: str, sandbox: Sandbox, tmp_path: Path, reference_dir: Path
) -> None:
    settings = app_settings(
        database_url,
        sandbox,
        tmp_path,
        reference_dir,
        job_max_attempts=ATTEMPTS,
        job_backoff_seconds=BACKOFF,
        job_backoff_max_seconds=2.0,
        clockify_retry_attempts=1,
        clockify_timeout_seconds=5.0,
        flow_pause_after_failures=0,  # keep the flow live through the outage
    )
    app = create_addon_app(SPEC, settings)
    async with serving(app) as app_url, httpx.AsyncClient(base_url=app_url) as api:
        workspace = await install_with_flow(sandbox, SimpleNamespace(url=app_url))  # type: ignore[arg-type]
        owner = bearer(workspace.user_token("OWNER"))
        await wait_until_idle(database_url)  # the install's own jobs (coverage) are done
        payloads = burst_payloads(sandbox, workspace, EVENTS)

        sandbox.inject(None, times=None, drop=True)  # Clockify is down: no answer at all
        answers = await fire_all(sandbox, lambda _n: app_url, workspace, payloads)
        # Intake does not depend on Clockify: every delivery is acknowledged.
        assert all(status == 200 for status in answers.values()), answers
        await wait_until_idle(database_url)

        failed = await fetch_all(
            database_url, "SELECT id, event_id, status FROM executions ORDER BY event_id"
        )
        assert len(failed) == EVENTS
        assert {row["status"] for row in failed} == {"failed"}
        steps = await fetch_all(database_url, "SELECT status, error FROM execution_steps")
        assert all("no attempts left" in (step["error"] or "") for step in steps), steps
        # Each PUT was tried once per attempt, with a pause at least half the backoff between.
        tried: dict[str, list[float]] = defaultdict(list)
        prefix = f"/api/v1/workspaces/{workspace.workspace_id}/projects/"
        for request in sandbox.requests:
            if request.method == "PUT" and request.route.startswith(prefix):
                assert request.status == 0  # dropped: nothing was applied
                tried[request.route.removeprefix(prefix)].append(request.at)
        assert set(tried) == set(payloads)
        for times in tried.values():
            # One PUT per job attempt (a claim that finds the flow busy in another job sends none).
            assert 2 <= len(times) <= ATTEMPTS
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            assert all(gap >= BACKOFF / 2 for gap in gaps), gaps

        sandbox.clear_faults()  # Clockify is back
        for row in failed:
            replayed = await api.post(f"/api/events/{row['event_id']}/replay", headers=owner)
            assert replayed.status_code == 202, replayed.text
        await wait_until_idle(database_url)
        # Dropped requests are recorded with status 0: only answered ones were applied.
        answered = [request for request in sandbox.requests if request.status]
        done = effects(answered, workspace)
        assert set(done) == set(payloads)
        assert all(len(bodies) == 1 for bodies in done.values()), done
        for project_id, bodies in done.items():
            assert bodies == [{"note": f"{payloads[project_id]['name']}-done"}]
        statuses = await fetch_all(
            database_url, "SELECT status, COUNT(*) AS n FROM executions GROUP BY status"
        )
        assert {row["status"]: row["n"] for row in statuses} == {
            "failed": EVENTS,
            "succeeded": EVENTS,
        }
