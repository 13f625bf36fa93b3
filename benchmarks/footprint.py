"""Footprint: how fast `serve` is ready, and each app's memory after a stretch of mixed load.

Two figures per app, both apps served as operators serve them (`clockify-addons serve APP`,
one process each) against the sandbox in this process, each on a migrated database of its
own (a SQLite file, or a new database on `--database-url`'s PostgreSQL server):

- ready: from the moment the process is started to the first 200 of `/readyz` (polled every
  10 ms), `--starts` times per app; the median is the figure. Goal (issue 14): <= 1.0 s.
  The image compiles every module at build; here the environment and the apps are compiled
  first too (`compileall`, which also writes where `PYTHONDONTWRITEBYTECODE` is set, as on
  the development machine): otherwise each start would compile every module again.
- RSS: both apps run side by side for `--minutes` under mixed load per app: signed
  NEW_TIME_ENTRY webhooks at `--rate` per second (intake), each running a one-action flow
  (a getProject to the sandbox), and explorer calls (getProject through
  `/api/operations/.../execute`) at `--explorer-rate` per second. The process's resident
  set is sampled every `--interval` seconds; the last sample is the figure. Goal: <= 120 MB.

    uv run python benchmarks/footprint.py [--minutes 10] [--starts 3] [--rate 10]
        [--explorer-rate 2] [--database-url postgresql+asyncpg://...] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import copy
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bootstrap import fresh_database
from figures import Figures, add_json_option, write_json
from served import Served, environment, free_port, install, rss_mib, start, stop

from addon_core.sandbox import Sandbox, Sizes

APPS = ("universal-webhook", "api-studio")
EVENT = "NEW_TIME_ENTRY"
FLOW: dict[str, Any] = {
    "name": "Look up the project",
    "enabled": True,
    "trigger": {"source": "clockify", "events": [EVENT]},
    "actions": [
        {
            "id": "project",
            "type": "clockify",
            "operation": "getProject",
            "params": {"projectId": "{{ event.projectId }}"},
        }
    ],
}
GOAL_READY_S = 1.0
GOAL_RSS_MB = 120.0


@dataclass
class Load:
    """What the driver sent to one app, and its process's resident set over time."""

    webhooks: int = 0
    webhooks_refused: int = 0
    explorer: int = 0
    explorer_failed: int = 0
    rss_mib: list[float] = field(default_factory=list)


async def drive(sandbox: Sandbox, served: Served, args: argparse.Namespace, load: Load) -> None:
    """Send webhooks and explorer calls to one app at steady rates until the time is up."""
    workspace = await install(sandbox, served.url, FLOW)
    entries = [
        e for e in sandbox.store.entities(workspace.workspace_id, "time_entries") if e["projectId"]
    ]
    token = workspace.user_token("OWNER")
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=served.url, timeout=30.0) as api:

        async def webhook(number: int) -> None:
            entry = copy.deepcopy(entries[number % len(entries)])
            entry["description"] = f"footprint {number}"
            load.webhooks += 1
            try:
                answer = await sandbox.fire(served.url, workspace, EVENT, entry)
            except httpx.TransportError:
                answer = None
            if answer is None or answer.status_code >= 300:
                load.webhooks_refused += 1

        async def explore(number: int) -> None:
            project = entries[number % len(entries)]["projectId"]
            load.explorer += 1
            try:
                answer = await api.post(
                    "/api/operations/getProject/execute",
                    json={"params": {"projectId": project}},
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError:
                answer = None
            if answer is None or answer.status_code != 200 or answer.json().get("status") != 200:
                load.explorer_failed += 1

        started = time.monotonic()
        end = started + args.minutes * 60
        webhooks = explorer = 0
        while (now := time.monotonic()) < end:
            due_webhooks = int((now - started) * args.rate)
            due_explorer = int((now - started) * args.explorer_rate)
            while webhooks < due_webhooks:
                task = asyncio.create_task(webhook(webhooks))
                webhooks += 1
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while explorer < due_explorer:
                task = asyncio.create_task(explore(explorer))
                explorer += 1
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.02)
        await asyncio.gather(*tasks)


async def sample(
    served: list[Served], loads: dict[str, Load], sandbox: Sandbox, args: argparse.Namespace
) -> None:
    started = time.monotonic()
    while True:
        await asyncio.sleep(args.interval)
        del sandbox.requests[:]  # the sandbox's log must not grow during a long run
        line = [f"{(time.monotonic() - started) / 60:5.1f} min"]
        for one in served:
            rss = rss_mib(one.process.pid)
            loads[one.app].rss_mib.append(rss)
            load = loads[one.app]
            line.append(
                f"{one.app}: RSS {rss:6.1f} MiB, webhooks {load.webhooks} "
                f"({load.webhooks_refused} refused), explorer {load.explorer} "
                f"({load.explorer_failed} failed)"
            )
        print("  ".join(line), flush=True)


async def run(args: argparse.Namespace, folder: Path) -> Figures:
    figures: Figures = {}
    databases = {app: await fresh_database(args.database_url, folder) for app in APPS}
    sizes = Sizes(time_entries=200, webhooks=0)
    async with Sandbox.running(seed=7, sizes=sizes) as sandbox:
        envs = {}
        for app in APPS:
            port = free_port()
            envs[app] = (port, environment(app, databases[app], sandbox, folder / app, port))
        for app in APPS:
            port, env = envs[app]
            times = []
            for _ in range(args.starts):
                started = await start(app, env, port, folder / f"{app}.log")
                times.append(started.ready_s)
                await stop(started)
            figures[f"{app}.ready_s"] = statistics.median(times)
            figures[f"{app}.ready_min_s"] = min(times)
            print(
                f"{app}: /readyz green {statistics.median(times):.3f} s after the process "
                f"started (median of {len(times)}: {', '.join(f'{t:.3f}' for t in times)}; "
                f"goal <= {GOAL_READY_S} s)",
                flush=True,
            )
        if args.minutes <= 0:
            return figures
        served = [
            await start(app, envs[app][1], envs[app][0], folder / f"{app}.log") for app in APPS
        ]
        loads = {app: Load() for app in APPS}
        print(
            f"mixed load for {args.minutes} min per app: {args.rate} webhooks/s with a flow, "
            f"{args.explorer_rate} explorer calls/s",
            flush=True,
        )
        sampler = asyncio.create_task(sample(served, loads, sandbox, args))
        try:
            await asyncio.gather(*(drive(sandbox, one, args, loads[one.app]) for one in served))
        finally:
            sampler.cancel()
            for one in served:
                loads[one.app].rss_mib.append(rss_mib(one.process.pid))
                await stop(one)
    for app, load in loads.items():
        figures[f"{app}.rss_mb"] = load.rss_mib[-1] * 1.048576
        figures[f"{app}.rss_peak_mb"] = max(load.rss_mib) * 1.048576
        figures[f"{app}.webhooks"] = load.webhooks
        figures[f"{app}.webhooks_refused"] = load.webhooks_refused
        figures[f"{app}.explorer_calls"] = load.explorer
        figures[f"{app}.explorer_failed"] = load.explorer_failed
        print(
            f"{app}: RSS {figures[f'{app}.rss_mb']:.1f} MB at the end "
            f"(peak {figures[f'{app}.rss_peak_mb']:.1f} MB; goal <= {GOAL_RSS_MB:.0f} MB); "
            f"{load.webhooks} webhooks ({load.webhooks_refused} refused), "
            f"{load.explorer} explorer calls ({load.explorer_failed} failed)",
            flush=True,
        )
    figures["minutes"] = args.minutes
    return figures


def compile_modules() -> None:
    """Compile the environment's and the apps' modules, as the image does at build."""
    repo = Path(__file__).resolve().parent.parent
    folders = [*sysconfig.get_paths()["purelib"].split(os.pathsep), repo / "addon_core",
               repo / "api_studio", repo / "universal_webhook"]  # fmt: skip
    for folder in dict.fromkeys(map(str, folders)):
        compileall.compile_dir(folder, quiet=1, workers=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="mixed load time (10; 0: none)")
    parser.add_argument("--starts", type=int, default=3, help="start-ups timed per app (3)")
    parser.add_argument("--rate", type=float, default=10.0, help="webhooks/s per app (10)")
    parser.add_argument("--explorer-rate", type=float, default=2.0, help="explorer calls/s per app")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between RSS samples")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: SQLite files)")
    add_json_option(parser)
    args = parser.parse_args()
    if args.starts < 1:
        parser.error("--starts must be at least 1")
    compile_modules()
    args.interval = min(args.interval, max(args.minutes * 60 / 2, 1.0))
    with tempfile.TemporaryDirectory() as name:
        figures = asyncio.run(run(args, Path(name)))
    write_json(args.json, figures)
    sys.exit(0)


if __name__ == "__main__":
    main()
