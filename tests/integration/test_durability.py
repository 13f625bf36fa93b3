"""Crash safety with real processes: a served app SIGKILLed mid-burst, restarted, loses nothing.

The app runs as operators run it (`clockify-addons serve universal-webhook`) against
the sandbox on loopback. Its flow marks one project per event with an idempotent PUT,
so the sandbox's request log shows each event's effect.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from addon_core.sandbox import Sandbox, Sizes
from tests.db import fetch_all
from tests.harness import ServeApp
from tests.served_app import (
    WORKERS,
    assert_exactly_once,
    burst_payloads,
    effects,
    fire_all,
    install_with_flow,
    wait_until_idle,
)

BURST = 90
#: How long the sandbox holds each PUT before applying it.
STEP_LATENCY = 0.3
#: A lease far longer than recovery may take: the restart must not wait for it.
LONG_LEASE_SECONDS = 60


pytestmark = pytest.mark.sandbox(seed=11, sizes=Sizes(projects=BURST + 10))


def _utc(value: datetime | str) -> datetime:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


async def test_a_killed_server_processes_every_acknowledged_event_exactly_once_after_restart(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    [app] = await serve_app(JOB_LEASE_SECONDS=str(LONG_LEASE_SECONDS))
    workspace = await install_with_flow(sandbox, app)
    payloads = burst_payloads(sandbox, workspace, BURST)
    # Slow PUTs: when the kill lands, flow steps are in flight and events wait their turn.
    sandbox.inject(None, times=None, method="PUT", latency=STEP_LATENCY)
    effects_at_kill: dict[str, list[Any]] = {}

    def kill_mid_burst(acknowledged: int) -> None:
        if acknowledged >= BURST // 3 and app.process and app.process.poll() is None:
            app.kill()
            effects_at_kill.update(effects(sandbox.requests, workspace))

    answers = await fire_all(
        sandbox, lambda _n: app.url, workspace, payloads, on_answer=kill_mid_burst
    )
    await app.wait_dead()
    acknowledged = {key for key, status in answers.items() if status and 200 <= status < 300}
    refused = {key: status for key, status in answers.items() if status and status >= 300}
    assert refused == {}, "a delivery was refused rather than acknowledged or cut off"
    assert BURST // 3 <= len(acknowledged) < BURST, "the kill did not land mid-burst"
    assert len(effects_at_kill) < len(acknowledged), "nothing was left for the restart to do"
    held = await fetch_all(
        database_url, "SELECT id, lease_until FROM jobs WHERE status = 'running'"
    )
    assert held, "the kill landed while no job was running"

    await app.start()
    await wait_until_idle(database_url)
    # The restart took over what its dead predecessor held rather than waiting for the
    # leases: every such job finished before its lease would have expired.
    finished = {
        row["id"]: _utc(row["updated_at"])
        for row in await fetch_all(database_url, "SELECT id, updated_at FROM jobs")
    }
    late = {row["id"] for row in held if finished[row["id"]] >= _utc(row["lease_until"])}
    assert late == set(), f"jobs that waited for their {LONG_LEASE_SECONDS} s lease: {late}"
    await assert_exactly_once(
        database_url, sandbox, workspace, payloads, acknowledged, in_flight_bound=WORKERS
    )
    # The restarted server goes on: the rest of the burst, delivered again, runs too.
    missing = {key: payloads[key] for key in payloads if key not in acknowledged}
    again = await fire_all(sandbox, lambda _n: app.url, workspace, missing)
    assert all(status and 200 <= status < 300 for status in again.values()), again
    await wait_until_idle(database_url)
    await assert_exactly_once(
        database_url, sandbox, workspace, payloads, set(payloads), in_flight_bound=WORKERS
    )
    assert await app.stop() == 0, app.log()


async def test_a_server_stopped_with_sigterm_mid_burst_leaves_no_job_held_and_loses_nothing(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    [app] = await serve_app()
    workspace = await install_with_flow(sandbox, app)
    payloads = burst_payloads(sandbox, workspace, BURST)
    sandbox.inject(None, times=None, method="PUT", latency=STEP_LATENCY)

    def stop_mid_burst(acknowledged: int) -> float | None:
        if acknowledged < BURST // 3:
            return None
        app.terminate()
        # Deliveries go on during the shutdown, slower than the stop takes to close the
        # listener: an idle machine answers the whole burst in a fraction of a second.
        return 0.2

    answers = await fire_all(
        sandbox, lambda _n: app.url, workspace, payloads, on_answer=stop_mid_burst
    )
    assert await app.stop() == 0, app.log()
    acknowledged = {key for key, status in answers.items() if status and 200 <= status < 300}
    # Deliveries that came during the shutdown may be answered 503: Clockify sends them again.
    assert {status for status in answers.values() if status and status >= 300} <= {503}
    assert BURST // 3 <= len(acknowledged) < BURST, "the stop did not land mid-burst"
    # Every job the stopped process held was finished or handed back within the grace.
    held = await fetch_all(database_url, "SELECT id, worker FROM jobs WHERE status = 'running'")
    assert held == []

    await app.start()
    await wait_until_idle(database_url)
    # Nothing was cut off in flight, so nothing was sent twice.
    await assert_exactly_once(
        database_url, sandbox, workspace, payloads, acknowledged, in_flight_bound=0
    )
    assert await app.stop() == 0, app.log()


async def test_a_live_servers_long_steps_are_never_taken_by_another_server(
    database_url: str,
    sandbox: Sandbox,
    serve_app: ServeApp,
) -> None:
    # Each step outlives the lease and the worker timeout twice over: only the running
    # server's heartbeats keep its jobs, and the other server keeps claiming meanwhile.
    first, second = await serve_app(
        2, JOB_LEASE_SECONDS="3", JOB_HEARTBEAT_SECONDS="0.2", JOB_WORKER_TIMEOUT_SECONDS="3"
    )
    workspace = await install_with_flow(sandbox, first)
    payloads = burst_payloads(sandbox, workspace, 4)
    sandbox.inject(None, times=None, method="PUT", latency=6.0)

    answers = await fire_all(sandbox, lambda n: (first, second)[n % 2].url, workspace, payloads)
    assert all(status == 200 for status in answers.values()), answers
    await wait_until_idle(database_url)

    jobs = await fetch_all(
        database_url, "SELECT status, attempts FROM jobs WHERE kind = 'flow.dispatch'"
    )
    assert len(jobs) == len(payloads)
    assert all(job == {"status": "done", "attempts": 1} for job in jobs), jobs
    await assert_exactly_once(
        database_url, sandbox, workspace, payloads, set(payloads), in_flight_bound=0
    )
    assert await first.stop() == 0, first.log()
    assert await second.stop() == 0, second.log()
