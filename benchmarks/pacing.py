"""Benchmark: how much of Clockify's 50 req/s per-workspace budget the client uses, safely.

A local sandbox, in a process of its own, plays Clockify and answers 429 to any
workspace over 50 requests in a sliding second. The production client (pacer, retries,
sharded connection pool, on uvloop as `addon_core.cli` serves it) sends `--calls` GETs per
workspace, all at once, for each count of workspaces in turn. Goal (issue 3): >= 97 % of
the budget for 1 and for 20 workspaces at once, zero 429s.

Sustained rate per workspace: 50 over the mean time between an accepted arrival at the
sandbox and the arrival 50 later (the limit makes that at least a second, whatever the
pacing), from the second window on, once the pool is warm. `From start`: the calls after
the first 50 over the time from the first to the last arrival, cold start included. Both
top out at 100 %. CPU per call: each process's CPU time over the calls. Each process runs
on one core and both share the machine's, so the lower of `cores / (client + sandbox)` and
`1 / client` bounds the total rate this machine can carry, whatever the pacing; other load
on the machine lowers it further.

Measured on the 2-core development machine: 1 workspace 99 %, 4 workspaces 97-98 %, 8 about
92 %, 20 about 35-55 %: one client process spends 1.6-2.2 ms of CPU per call (httpx mostly;
the sandbox 0.5-0.7 ms), so it tops out near 450-600 calls/s, short of the 1 000 that 20
workspaces need. No 429 at any count.

    uv run python benchmarks/pacing.py [--calls 500] [--workspaces 1 20] [--loop asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from addon_core.clockify.client import ClockifyClient, InstallationContext, create_http_client
from addon_core.clockify.hosts import HostAllowlist
from addon_core.clockify.pacing import Pacer
from addon_core.metrics import Metrics
from addon_core.sandbox import Sandbox, Sizes

LIMIT = 50
GOAL = 0.97


@dataclass(frozen=True)
class Outcome:
    """What one run measured."""

    workspaces: int
    calls: int
    wall: float
    #: per workspace: the sustained rate and the rate from start, in req/s
    rates: list[tuple[float, float]]
    peak: int
    throttled: int
    client_cpu: float
    sandbox_cpu: float

    @property
    def worst(self) -> float:
        """The lowest sustained per-workspace rate as a fraction of the budget."""
        return min(sustained for sustained, _ in self.rates) / LIMIT


async def drive(url: str, tokens: dict[str, str], calls: int) -> float:
    """Send `calls` paced GETs for every workspace at once; return the wall time."""
    http = create_http_client()
    client = ClockifyClient(
        allowlist=HostAllowlist.from_entries([url.split("//")[1]], allow_insecure_http=True),
        metrics=Metrics("benchmark"),
        pacer=Pacer(LIMIT, LIMIT),
        http=http,
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await asyncio.gather(
            *(
                client.call(
                    InstallationContext(ws, token),
                    "GET",
                    f"{url}/api/v1/workspaces/{ws}/tags",
                    operation="getTags",
                    params={"page-size": 1},
                )
                for ws, token in tokens.items()
                for _ in range(calls)
            )
        )
    finally:
        await http.aclose()
    return loop.time() - started


def serve_sandbox(pipe: Connection, count: int) -> None:
    """In a process of its own (so the client does not share its CPU): serve, then report."""
    with Sandbox.in_thread(sizes=Sizes(tags=3)) as sandbox:
        workspaces = [sandbox.create_workspace("benchmark") for _ in range(count)]
        pipe.send((sandbox.url, {w.workspace_id: w.installation_token() for w in workspaces}))
        pipe.recv()  # the client starts
        cpu = time.process_time()
        pipe.recv()  # the client is done
        cpu = time.process_time() - cpu
        accepted: dict[str, list[float]] = defaultdict(list)
        for request in sandbox.requests:
            if request.status < 400 and request.workspace_id is not None:
                accepted[request.workspace_id].append(request.at)
        peak = max(sandbox.peak_rate(w.workspace_id) for w in workspaces)
        pipe.send((dict(accepted), peak, sandbox.throttled, cpu))


def run(count: int, calls: int, loop: str) -> Outcome:
    """Measure one count of workspaces against a fresh sandbox."""
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_sandbox, args=(theirs, count), daemon=True)
    server.start()
    url, tokens = ours.recv()
    ours.send("start")
    cpu = time.process_time()
    wall = run_loop(drive(url, tokens, calls), loop)
    cpu = time.process_time() - cpu
    ours.send("done")
    accepted, peak, throttled, sandbox_cpu = ours.recv()
    server.join()
    rates = [measure(sorted(times)) for times in accepted.values()]
    return Outcome(count, calls, wall, rates, peak, throttled, cpu, sandbox_cpu)


def measure(times: list[float]) -> tuple[float, float]:
    """Return the sustained rate and the rate from start of one workspace's arrivals."""
    # Any LIMIT + 1 accepted arrivals span at least a second, whatever the pacing.
    spans = [times[i + LIMIT] - times[i] for i in range(LIMIT, len(times) - LIMIT)]
    sustained = LIMIT / (sum(spans) / len(spans))
    from_start = (len(times) - LIMIT) / (times[-1] - times[0])
    return sustained, from_start


def run_loop(coroutine: Coroutine[Any, Any, float], loop: str) -> float:
    if loop == "uvloop":
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def report(outcome: Outcome) -> None:
    total = outcome.workspaces * outcome.calls
    client_ms = outcome.client_cpu / total * 1000
    sandbox_ms = outcome.sandbox_cpu / total * 1000
    # Each process runs on one core, and the two share the machine's.
    per_call = (outcome.client_cpu + outcome.sandbox_cpu) / total
    ceiling = min((os.cpu_count() or 1) / per_call, 1000 / max(client_ms, sandbox_ms))
    sustained = sum(rate for rate, _ in outcome.rates) / len(outcome.rates)
    from_start = sum(rate for _, rate in outcome.rates) / len(outcome.rates)
    print(
        f"{outcome.workspaces:>3} workspace(s) x {outcome.calls} calls: sustained "
        f"{sustained:4.1f} req/s per workspace = {sustained / LIMIT:6.1%} of {LIMIT} "
        f"(worst {outcome.worst:6.1%}, from start {from_start / LIMIT:6.1%}), "
        f"429s {outcome.throttled}, peak {outcome.peak} in any 1 s, "
        f"wall {outcome.wall:5.1f} s, total {total / outcome.wall:4.0f} req/s; "
        f"CPU per call: client {client_ms:.2f} ms, sandbox {sandbox_ms:.2f} ms "
        f"(machine bound ~{ceiling:.0f} req/s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per workspace (> 150)")
    parser.add_argument("--workspaces", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = parser.parse_args()
    if args.calls <= 3 * LIMIT:
        parser.error(f"--calls must be above {3 * LIMIT}: the sustained rate needs 3 windows")
    outcomes = []
    for count in args.workspaces:
        outcomes.append(run(count, args.calls, args.loop))
        report(outcomes[-1])
    reached = [o.workspaces for o in outcomes if o.worst >= GOAL and o.throttled == 0]
    print(
        f"largest count run with every workspace at >= {GOAL:.0%} and no 429: "
        f"{max(reached) if reached else 'none'}"
    )


if __name__ == "__main__":
    main()
