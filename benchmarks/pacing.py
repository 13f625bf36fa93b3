"""Benchmark: how much of Clockify's 50 req/s per-workspace budget the client uses, safely.

A local sandbox (a process of its own) answers like Clockify and counts 429s for
any workspace over 50 requests in a sliding second. The production client (pacer, retries)
sends `--calls` GETs per workspace, all at once, for 1 and then for 20 workspaces.
Achieved rate is measured from each workspace's first to last request at the sandbox, so
the opening burst does not flatter it. Goal (issue 3): >= 97 % of the budget, zero 429s.

    uv run python benchmarks/pacing.py [--calls 500] [--workspaces 1 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
from collections import defaultdict
from multiprocessing.connection import Connection
from statistics import median

from addon_core.clockify_client import ClockifyClient, InstallationContext, create_http_client
from addon_core.hosts import HostAllowlist
from addon_core.metrics import Metrics
from addon_core.pacing import Pacer
from addon_core.sandbox import Sandbox, Sizes

LIMIT = 50


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
        pipe.recv()  # the client is done
        arrivals: dict[str, list[float]] = defaultdict(list)
        for request in sandbox.requests:
            arrivals[request.path.split("/workspaces/")[1].split("/")[0]].append(request.at)
        peak = max(sandbox.peak_rate(w.workspace_id) for w in workspaces)
        pipe.send((dict(arrivals), peak, sandbox.throttled))


def run(count: int, calls: int) -> None:
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_sandbox, args=(theirs, count), daemon=True)
    server.start()
    url, tokens = ours.recv()
    wall = asyncio.run(drive(url, tokens, calls))
    ours.send("done")
    arrivals, peak, throttled = ours.recv()
    server.join()
    # Requests after the first, over the time they took: the sustained rate per workspace.
    rates = [(len(t) - 1) / (max(t) - min(t)) for t in arrivals.values()]
    print(
        f"{count:>3} workspace(s) x {calls} calls: wall {wall:6.2f} s, "
        f"sustained median {median(rates):5.1f} req/s per workspace "
        f"({median(rates) / LIMIT:6.1%} of {LIMIT}), min {min(rates):5.1f}, "
        f"peak in any 1 s window {peak}, 429s {throttled}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per workspace")
    parser.add_argument("--workspaces", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    for count in args.workspaces:
        run(count, args.calls)


if __name__ == "__main__":
    main()
