"""Benchmark: how much of Clockify's 50 req/s per-workspace budget the client uses, safely.

A local sandbox, in a process of its own, plays Clockify and answers 429 to any
workspace over 50 requests in a sliding second. Client processes (pacer, retries,
connection pool, on uvloop as `addon_core.cli` serves it) send `--calls` GETs per
workspace, all at once. One process for each count in `--workspaces`; then, on
PostgreSQL, `--shared-processes` processes sharing one budget (`budget.PostgresBudget`)
send the calls of `--shared-workspaces` workspaces between them, every process calling
every workspace. Goals (issue 14): one process sustains >= 1,000 calls/s, 20 workspaces
at >= 97 % of their budget from one process, 40 from two, never over 50 in any second.

Sustained share per workspace: 50 over the mean time between an accepted arrival at the
sandbox and the arrival 50 later (at least a second, whatever the pacing), from the
second window on, as a fraction of 50/s. Peak: the most arrivals of one workspace in any
1-s window. CPU per call: each process's CPU time over the calls it made; one core can
carry 1e6 / (client µs per call) calls/s, the `capacity` figure, whatever else the
machine does. DB round trips per call: statements the shared budget sent, per call.
Machine: the CPU every core spent during the run (`/proc/stat`: clients, sandbox,
PostgreSQL and anything else), as cores busy, per call, and as the calls/s all the cores
could carry at that cost (`machine_capacity`), beside the calls/s the goal needs: when
the cores are all busy and the capacity is below the need, the machine sets the rate.

    uv run python benchmarks/pacing.py [--calls 500] [--workspaces 1 4 20] [--repeat 3]
        [--postgres URL | --no-postgres] [--json PATH]

Without `--postgres` a throwaway PostgreSQL cluster is started when its binaries are
installed (as `scripts/test` does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import uvloop

from addon_core.clockify.budget import PostgresBudget
from addon_core.clockify.client import ClockifyClient, InstallationContext, create_http_client
from addon_core.clockify.hosts import HostAllowlist
from addon_core.clockify.pacing import Pacer
from addon_core.metrics import Metrics
from addon_core.sandbox import Sandbox, Sizes
from addon_core.storage.database import create_engine, upgrade_to_head

LIMIT = 50
GOAL = 0.97


@dataclass(frozen=True)
class Outcome:
    """What one run measured."""

    label: str
    workspaces: int
    processes: int
    calls: int
    wall: float
    #: per workspace: the sustained rate, in req/s
    rates: list[float]
    peak: int
    throttled: int
    client_cpu: float
    sandbox_cpu: float
    #: CPU seconds the whole machine spent over the run (every process: PostgreSQL too)
    machine_cpu: float
    round_trips: int | None

    def figures(self) -> dict[str, float]:
        """The run's named figures, flat."""
        total = self.workspaces * self.calls
        client_us = self.client_cpu / total * 1e6
        other = self.machine_cpu - self.client_cpu - self.sandbox_cpu
        figures = {
            "share_mean_pct": statistics.mean(self.rates) / LIMIT * 100,
            "share_worst_pct": min(self.rates) / LIMIT * 100,
            "peak_in_1s": float(self.peak),
            "throttled": float(self.throttled),
            "calls_per_s_per_process": total / self.wall / self.processes,
            "capacity_calls_per_s_per_core": 1e6 / client_us,
            "client_cpu_us_per_call": client_us,
            "sandbox_cpu_us_per_call": self.sandbox_cpu / total * 1e6,
            # What the run cost the machine: with `machine_cores` near the core count, the
            # machine, not the pacing, set the rate; `machine_capacity` is the calls/s all
            # its cores could carry at this cost per call (clients, sandbox, PostgreSQL).
            "other_cpu_us_per_call": max(0.0, other) / total * 1e6,
            "machine_cores_busy": self.machine_cpu / self.wall,
            "machine_capacity_calls_per_s": (os.cpu_count() or 1) * total / self.machine_cpu,
            "needed_calls_per_s": self.workspaces * LIMIT * GOAL,
        }
        if self.round_trips is not None:
            figures["db_round_trips_per_call"] = self.round_trips / total
        return figures


async def drive(url: str, tokens: dict[str, str], calls: int, database: str | None) -> int:
    """Send `calls` paced GETs for every workspace at once; return the budget's round trips.

    `database` is `URL#add-on key`: the processes of a run share the key's budget.
    """
    engine = create_engine(database.split("#")[0]) if database else None
    budget = PostgresBudget(engine, database.split("#")[1], LIMIT) if engine and database else None
    http = create_http_client()
    client = ClockifyClient(
        allowlist=HostAllowlist.from_entries([url.split("//")[1]], allow_insecure_http=True),
        metrics=Metrics("benchmark"),
        pacer=Pacer(LIMIT, LIMIT, shared=budget),
        http=http,
    )
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
        if budget is not None:
            await budget.aclose()
        if engine is not None:
            await engine.dispose()
    return budget.round_trips if budget is not None else 0


def serve_client(pipe: Connection, calls: int, database: str | None) -> None:
    """A client process: wait for the go, drive, report wall, CPU and round trips."""
    url, tokens = pipe.recv()
    pipe.send("ready")
    pipe.recv()
    cpu, started = time.process_time(), time.monotonic()
    try:
        round_trips = uvloop.run(drive(url, tokens, calls, database))
    except Exception as error:  # reported by the parent, which goes on with the next run
        pipe.send(f"{type(error).__name__}: {error}")
        return
    pipe.send((time.monotonic() - started, time.process_time() - cpu, round_trips))


def serve_sandbox(pipe: Connection, count: int) -> None:
    """In a process of its own (so the clients do not share its CPU): serve, then report."""
    with Sandbox.in_thread(sizes=Sizes(tags=3)) as sandbox:
        workspaces = [sandbox.create_workspace("benchmark") for _ in range(count)]
        pipe.send((sandbox.url, {w.workspace_id: w.installation_token() for w in workspaces}))
        pipe.recv()  # the clients start
        cpu = time.process_time()
        pipe.recv()  # the clients are done
        cpu = time.process_time() - cpu
        accepted: dict[str, list[float]] = defaultdict(list)
        for request in sandbox.requests:
            if request.status < 400 and request.workspace_id is not None:
                accepted[request.workspace_id].append(request.at)
        peak = max(sandbox.peak_rate(w.workspace_id) for w in workspaces)
        pipe.send((dict(accepted), peak, sandbox.throttled, cpu))


def run(label: str, count: int, calls: int, processes: int, database: str | None) -> Outcome | str:
    """Measure `count` workspaces, their calls split over `processes`, on a fresh sandbox.

    Returns what failed instead when a client process did (the database timing out on a
    machine too loaded to connect within its timeout, say).
    """
    if database:
        # A fresh add-on key: slots stamped by an earlier run do not slow this one.
        database = f"{database}#bench-{uuid.uuid4().hex[:8]}"
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve_sandbox, args=(theirs, count), daemon=True)
    server.start()
    sandbox = ours.recv()
    clients = []
    for _ in range(processes):
        mine, its = multiprocessing.Pipe()
        process = multiprocessing.Process(
            target=serve_client, args=(its, calls // processes, database), daemon=True
        )
        process.start()
        mine.send(sandbox)
        clients.append((process, mine))
    for _, pipe in clients:
        pipe.recv()  # ready
    ours.send("start")
    busy = machine_cpu_seconds()
    for _, pipe in clients:
        pipe.send("go")
    results = [pipe.recv() for _, pipe in clients]
    busy = machine_cpu_seconds() - busy
    ours.send("done")
    accepted, peak, throttled, sandbox_cpu = ours.recv()
    for process, _ in clients:
        process.join()
    server.join()
    failures = [result for result in results if isinstance(result, str)]
    if failures:
        return f"{label}: a client process failed: {failures[0]}"
    return Outcome(
        label=label,
        workspaces=count,
        processes=processes,
        calls=calls // processes * processes,
        wall=max(wall for wall, _, _ in results),
        rates=[sustained(sorted(times)) for times in accepted.values()],
        peak=peak,
        throttled=throttled,
        client_cpu=sum(cpu for _, cpu, _ in results),
        sandbox_cpu=sandbox_cpu,
        machine_cpu=busy,
        round_trips=sum(trips for _, _, trips in results) if database else None,
    )


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (`/proc/stat`)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
    busy = sum(int(value) for value in fields[:8]) - int(fields[3]) - int(fields[4])
    return busy / os.sysconf("SC_CLK_TCK")


def sustained(times: list[float]) -> float:
    """The sustained rate of one workspace's accepted arrivals, in req/s."""
    # Any LIMIT + 1 accepted arrivals span at least a second, whatever the pacing.
    spans = [times[i + LIMIT] - times[i] for i in range(LIMIT, len(times) - LIMIT)]
    return LIMIT / (sum(spans) / len(spans))


def report(outcome: Outcome) -> None:
    f = outcome.figures()
    trips = f.get("db_round_trips_per_call")
    print(
        f"{outcome.label:>10}: {outcome.workspaces:>2} workspace(s) x {outcome.calls} calls "
        f"over {outcome.processes} process(es): share {f['share_mean_pct']:5.1f} % "
        f"(worst {f['share_worst_pct']:5.1f} %), peak {outcome.peak} in 1 s, "
        f"429s {outcome.throttled}, {f['calls_per_s_per_process']:5.0f} calls/s per process, "
        f"client {f['client_cpu_us_per_call']:4.0f} µs/call "
        f"(capacity {f['capacity_calls_per_s_per_core']:5.0f}/s per core), "
        f"sandbox {f['sandbox_cpu_us_per_call']:4.0f} µs/call, "
        f"rest of the machine {f['other_cpu_us_per_call']:4.0f} µs/call; "
        f"cores busy {f['machine_cores_busy']:.2f} of {os.cpu_count()}, machine capacity "
        f"{f['machine_capacity_calls_per_s']:5.0f} calls/s (needed {f['needed_calls_per_s']:.0f})"
        + (f", DB round trips {trips:.2f}/call" if trips is not None else ""),
        flush=True,
    )


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str | None]:
    """Start a PostgreSQL cluster in a temporary folder; yield its URL (None if not installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found or not os.access(f"{found[-1]}/initdb", os.X_OK):
        yield None
        return
    pg_bin, folder = found[-1], tempfile.mkdtemp(prefix="pacing-pg.")
    # initdb and postgres refuse to run as root: run them as the postgres user there.
    as_owner = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    if as_owner:
        shutil.chown(folder, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    initdb = [*as_owner, f"{pg_bin}/initdb", "-D", folder, "-U", "postgres", "-A", "trust"]
    ctl = [*as_owner, f"{pg_bin}/pg_ctl", "-D", folder]
    options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        subprocess.run([*initdb, "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        start = [*ctl, "-w", "-l", f"{folder}/server.log", "-o", options, "start"]
        subprocess.run(start, check=True, stdout=subprocess.DEVNULL)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


async def migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def measure_all(args: argparse.Namespace, database: str | None) -> dict[str, float]:
    """Run every measurement `--repeat` times; return the medians of their figures."""
    plan = [(f"ws{n}", n, 1, None) for n in args.workspaces]
    if database:
        uvloop.run(migrate(database))
        shared = (args.shared_workspaces, args.shared_processes)
        plan.append((f"pg_ws{shared[0]}_x{shared[1]}", *shared, database))
    runs: dict[str, list[dict[str, float]]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    for _ in range(args.repeat):
        for label, count, processes, url in plan:
            outcome = run(label, count, args.calls, processes, url)
            if isinstance(outcome, str):
                print(outcome, flush=True)
                failed[label] += 1
                continue
            report(outcome)
            runs[label].append(outcome.figures())
    figures = {"load_avg_1m": os.getloadavg()[0], "repeats": float(args.repeat)}
    for label, measured in runs.items():
        for name in measured[0]:
            figures[f"{label}_{name}"] = statistics.median(m[name] for m in measured)
    for label, count in failed.items():
        figures[f"{label}_failed_runs"] = float(count)
    return figures


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Measure, print each run and the medians; write them as JSON with `--json`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per workspace (> 150)")
    parser.add_argument("--workspaces", type=int, nargs="*", default=[1, 4, 20])
    parser.add_argument("--shared-workspaces", type=int, default=40)
    parser.add_argument("--shared-processes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; medians reported")
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL (else a throwaway one)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the shared budget")
    parser.add_argument("--json", type=Path, help="write the figures here as one JSON object")
    args = parser.parse_args(argv)
    if args.calls <= 3 * LIMIT:
        parser.error(f"--calls must be above {3 * LIMIT}: the sustained rate needs 3 windows")
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.no_postgres:
        figures = measure_all(args, None)
    elif args.postgres:
        figures = measure_all(args, args.postgres)
    else:
        with throwaway_postgres() as url:
            if url is None:
                print("PostgreSQL is not installed: skipping the shared budget")
            figures = measure_all(args, url)
    print(json.dumps(figures, indent=1, sort_keys=True))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    return figures


if __name__ == "__main__":
    main()
