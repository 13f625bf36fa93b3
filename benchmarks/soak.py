"""Soak: steady webhook and flow load against one served app, with its vital signs each minute.

Universal Webhook runs as operators run it (`clockify-addons serve`, its own process) against
the sandbox in this process. It has one flow that marks the event's project (one idempotent
PUT to Clockify per event). The driver sends signed NEW_PROJECT deliveries at a steady rate
and, every interval, prints the app process's RSS and open file descriptors, the job queue
depth, the webhook acknowledgement latency and the flow latency (acknowledgement to the PUT
reaching Clockify). Memory and descriptors should stay flat after the first minute or two.

    uv run python benchmarks/soak.py [--minutes 10] [--rate 10] [--interval 60]
        [--database-url postgresql+asyncpg://...]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from figures import percentile
from served import environment, free_port, install, open_fds, openapi_file, rss_mib, start, stop
from sqlalchemy import text

from addon_core.sandbox import Sandbox, Sizes, Workspace
from addon_core.storage.database import create_engine, upgrade_to_head

APP = "universal-webhook"
EVENT = "NEW_PROJECT"
PROJECTS = 200
FLOW = {
    "name": "Mark projects",
    "enabled": True,
    "trigger": {"source": "clockify", "events": [EVENT]},
    "actions": [
        {
            "id": "mark",
            "type": "clockify",
            "operation": "updateProject",
            "params": {"projectId": "{{ event.id }}"},
            "body": {"note": "{{ event.name }}-done"},
        }
    ],
}


@dataclass
class Window:
    """What happened since the last report."""

    sent: int = 0
    refused: int = 0
    ack_ms: list[float] = field(default_factory=list)
    flow_ms: list[float] = field(default_factory=list)


async def queue_depth(engine: Any) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
        )
        return int(result.scalar_one())


async def drive(
    sandbox: Sandbox, url: str, workspace: Workspace, args: argparse.Namespace, pid: int
) -> None:
    projects = sandbox.store.entities(workspace.workspace_id, "projects")
    engine = create_engine(args.database_url)
    acked: dict[str, float] = {}  # event name -> monotonic time of its 2xx
    window = Window()
    samples: list[tuple[float, int]] = []  # (RSS MiB, fds) at each report
    started = time.monotonic()
    next_report = started + args.interval
    reports = max(1, math.ceil(args.minutes * 60 / args.interval))
    in_flight: set[asyncio.Task[None]] = set()
    print(
        f"{'min':>5} {'sent':>6} {'refused':>7} {'ack p50':>8} {'ack p99':>8} {'flow p50':>9} "
        f"{'flow p99':>9} {'queue':>6} {'RSS MiB':>8} {'fds':>5}",
        flush=True,
    )

    async def send(number: int) -> None:
        project = projects[number % len(projects)]
        name = f"soak-{number}"
        payload = {**project, "name": name, "workspaceId": workspace.workspace_id}
        before = time.monotonic()
        try:
            answer = await sandbox.fire(url, workspace, EVENT, payload)
        except httpx.TransportError:
            window.refused += 1
            return
        if answer.status_code >= 300:
            window.refused += 1
            return
        acked[name] = time.monotonic()
        window.ack_ms.append((acked[name] - before) * 1000)

    number = 0
    try:
        while len(samples) < reports:
            task = asyncio.create_task(send(number))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            number += 1
            window.sent += 1
            # Match the PUTs that arrived since the last look to their events' acknowledgements.
            requests = sandbox.requests
            for request in list(requests):
                note = request.body.get("note") if isinstance(request.body, dict) else None
                if request.method == "PUT" and isinstance(note, str):
                    at = acked.pop(note.removesuffix("-done"), None)
                    if at is not None:
                        window.flow_ms.append((request.at - at) * 1000)
            del requests[:]  # the sandbox's log must not grow either
            now = time.monotonic()
            if now >= next_report:
                samples.append((rss_mib(pid), open_fds(pid)))
                print(
                    f"{(now - started) / 60:5.1f} {window.sent:6d} {window.refused:7d} "
                    f"{percentile(window.ack_ms, 0.5):8.1f} {percentile(window.ack_ms, 0.99):8.1f} "
                    f"{percentile(window.flow_ms, 0.5):9.1f} "
                    f"{percentile(window.flow_ms, 0.99):9.1f} "
                    f"{await queue_depth(engine):6d} {rss_mib(pid):8.1f} {open_fds(pid):5d}",
                    flush=True,
                )
                window = Window()
                next_report += args.interval
            await asyncio.sleep(max(0.0, started + number / args.rate - time.monotonic()))
        await asyncio.gather(*in_flight)
    finally:
        await engine.dispose()
    if len(samples) >= 2:
        (rss_warm, fds_warm), (rss_end, fds_end) = samples[min(1, len(samples) - 2)], samples[-1]
        print(
            f"after warm-up (report 2) to the end: RSS {rss_warm:.1f} -> {rss_end:.1f} MiB "
            f"({rss_end - rss_warm:+.1f}), fds {fds_warm} -> {fds_end} ({fds_end - fds_warm:+d})",
            flush=True,
        )


async def soak(args: argparse.Namespace, folder: Path) -> None:
    engine = create_engine(args.database_url)
    await upgrade_to_head(engine)
    await engine.dispose()
    async with Sandbox.running(seed=7, sizes=Sizes(projects=PROJECTS, webhooks=0)) as sandbox:
        port = free_port()
        env = environment(APP, args.database_url, sandbox, folder, port, openapi=openapi_file())
        served = await start(APP, env, port, folder / "serve.log")
        try:
            workspace = await install(sandbox, served.url, FLOW)
            print(
                f"soak: {args.minutes} min at {args.rate} webhooks/s (one flow, one PUT each) "
                f"on {args.database_url.split(':')[0]}; app pid {served.process.pid}",
                flush=True,
            )
            await drive(sandbox, served.url, workspace, args, served.process.pid)
        finally:
            code = await stop(served)
            print(f"app exited with {code} after SIGTERM", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (10)")
    parser.add_argument("--rate", type=float, default=10.0, help="webhooks per second (10)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        args.database_url = args.database_url or f"sqlite+aiosqlite:///{folder / 'soak.db'}"
        asyncio.run(soak(args, folder))


if __name__ == "__main__":
    main()
