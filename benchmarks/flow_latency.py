"""Benchmark: from a webhook's acknowledgement to the flow's first Clockify request.

Universal Webhook runs over real HTTP (uvicorn on loopback) against the local sandbox, with
the two-action flow of CONTRACT.md (getProject, then updateTimeEntry) installed through the
API. Two figures per database:

- latency: events sent one at a time (the budget is never the bottleneck); for each, the
  time from the 2xx of the webhook to the arrival of its getProject at the sandbox. Goal
  (issue 4): p50 <= 25 ms; issue 14: p50 <= 15 ms and p99 <= 30 ms.
- sustained: a burst of events at once; flows completed per second for the workspace.
  Each flow makes two Clockify calls, so the budget bounds it at 25 flows/s.

The app, the sandbox and this driver share one process (and here two cores): the figures
include that contention.

    uv run python benchmarks/flow_latency.py [--events 60] [--burst 150] [--postgres URL]
        [--no-sqlite] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from figures import Figures, add_json_option, percentile, write_json
from served import openapi_file
from sqlalchemy import func, select

from addon_core.app import create_addon_app
from addon_core.flows.example import tag_meetings
from addon_core.sandbox import Sandbox, Sizes
from addon_core.sandbox.loopback import serving
from addon_core.storage.database import create_engine, upgrade_to_head
from addon_core.storage.encryption import generate_key
from addon_core.storage.models import Execution
from universal_webhook.app import SPEC, UniversalWebhookSettings

KEY = "universal-webhook"


async def measure(database_url: str, events: int, burst: int, data_dir: Path) -> Figures:
    engine = create_engine(database_url)
    await upgrade_to_head(engine)
    await engine.dispose()
    sizes = Sizes(time_entries=max(events, burst) + 10, webhooks=0)
    async with Sandbox.running(sizes=sizes) as sandbox:
        settings = UniversalWebhookSettings(
            environment="test",
            database_url=database_url,
            data_dir=data_dir,
            encryption_keys=(generate_key(),),  # type: ignore[arg-type]
            clockify_public_key_file=sandbox.write_public_key(data_dir / "sandbox.pem"),
            clockify_api_allowed_hosts=(f"127.0.0.1:{sandbox.port}",),
            allow_insecure_http=True,
            clockify_openapi_file=openapi_file(),
            bootstrap_enabled=False,
            log_level="WARNING",
        )
        app = create_addon_app(SPEC, settings)
        workspace = sandbox.create_workspace(KEY)
        async with serving(app) as app_url, httpx.AsyncClient(base_url=app_url) as api:
            manifest = await sandbox.fetch_manifest(app_url)
            (await sandbox.install(app_url, manifest, workspace)).raise_for_status()
            created = await api.post(
                "/api/flows",
                json=tag_meetings(),
                headers={"Authorization": f"Bearer {workspace.user_token('OWNER')}"},
            )
            created.raise_for_status()
            entries = sandbox.store.entities(workspace.workspace_id, "time_entries")
            with_project = [e for e in entries if e["projectId"]]

            def event(i: int) -> dict[str, Any]:
                entry = copy.deepcopy(with_project[i % len(with_project)])
                entry["description"] = f"meeting {i}"
                return entry

            await asyncio.sleep(0.5)  # let install-time jobs (coverage) finish
            latencies = []
            for i in range(events):
                payload = event(i)
                (
                    await sandbox.fire(app_url, workspace, "NEW_TIME_ENTRY", payload)
                ).raise_for_status()
                acknowledged = time.monotonic()
                target = f"/projects/{payload['projectId']}"
                while True:
                    arrived = [
                        r.at for r in sandbox.requests if r.at >= acknowledged and target in r.path
                    ]
                    if arrived:
                        latencies.append((min(arrived) - acknowledged) * 1000)
                        break
                    await asyncio.sleep(0.001)
                await asyncio.sleep(0.05)  # one at a time: the budget is not the bottleneck
            await asyncio.sleep(1.0)
            sessions = app.state.runtime.sessions

            async def finished() -> int:
                async with sessions() as session:
                    return int(
                        await session.scalar(
                            select(func.count())
                            .select_from(Execution)
                            .where(Execution.status.in_(("succeeded", "failed")))
                        )
                        or 0
                    )

            before = await finished()
            started = time.monotonic()
            await asyncio.gather(
                *(
                    sandbox.fire(app_url, workspace, "NEW_TIME_ENTRY", event(events + i))
                    for i in range(burst)
                )
            )
            while await finished() < before + burst:  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(0.05)
            elapsed = time.monotonic() - started
    kind = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    print(
        f"{kind:<10} ack -> first Clockify request over {events} events: "
        f"p50 {statistics.median(latencies):5.1f} ms, p90 {percentile(latencies, 0.9):5.1f} ms, "
        f"p99 {percentile(latencies, 0.99):5.1f} ms; sustained {burst / elapsed:5.1f} flows/s "
        f"for one workspace ({burst} at once, 2 calls each, budget 25 flows/s); "
        f"429s {sandbox.throttled}"
    )
    name = kind.lower()
    return {
        f"{name}.p50_ms": statistics.median(latencies),
        f"{name}.p90_ms": percentile(latencies, 0.9),
        f"{name}.p99_ms": percentile(latencies, 0.99),
        f"{name}.sustained_flows_s": burst / elapsed,
        f"{name}.throttled": sandbox.throttled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60)
    parser.add_argument("--burst", type=int, default=150)
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL of an empty database")
    parser.add_argument("--no-sqlite", action="store_true", help="measure PostgreSQL only")
    add_json_option(parser)
    args = parser.parse_args()
    if args.no_sqlite and not args.postgres:
        parser.error("--no-sqlite needs --postgres URL")
    figures: Figures = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            data_dir = Path(folder)
            sqlite_url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
            figures |= asyncio.run(measure(sqlite_url, args.events, args.burst, data_dir))
    if args.postgres:
        with tempfile.TemporaryDirectory() as folder:
            figures |= asyncio.run(measure(args.postgres, args.events, args.burst, Path(folder)))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
