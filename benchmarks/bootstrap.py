"""Benchmark: install-time bootstrap of a seeded workspace against its floor at 50 req/s.

API Studio runs as its own process (`clockify-addons serve`, job workers on); the
sandbox runs in this one, enforcing 50 requests per workspace in any second. The
sandbox sends INSTALLED and the clock runs until every list's progress row is done
(read from the database every 10 ms). The floor is the pages the lists need divided
by the rate limit; goal (issue 3): bootstrap time at most 1.1 x the floor.

    uv run python benchmarks/bootstrap.py [--scale 1 4] [--rounds 3]
        [--database-url postgresql+asyncpg://user@host/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
from figures import Figures, add_json_option, write_json
from served import free_port
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from addon_core.sandbox import Sandbox, Sizes
from addon_core.sandbox.launcher import app_command, app_environment
from addon_core.settings import REFERENCE_DIR_VARIABLE
from addon_core.storage.database import create_engine, upgrade_to_head
from addon_core.storage.encryption import generate_key
from addon_core.storage.models import BootstrapProgress

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(os.environ.get(REFERENCE_DIR_VARIABLE) or REPO.parent / "shared" / "clockify")

LIMIT = 50
APP = "api-studio"


def sizes(scale: int) -> Sizes:
    """A busy workspace: at scale 1 its lists need 60 pages of 200."""
    return Sizes(
        projects=5000 * scale,
        clients=1000 * scale,
        tags=2000 * scale,
        users=300 * scale,
        user_groups=60 * scale,
        expense_categories=40,
        expenses=1000 * scale,
        invoices=400 * scale,
        time_entries=400 * scale,
        in_progress=40 * scale,
        policies=10,
        approval_requests=200 * scale,
        webhooks=2,
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fresh_database(server_url: str | None, work: Path) -> str:
    """A new database at the latest migration: a SQLite file, or one on the server."""
    if server_url is None:
        url = f"sqlite+aiosqlite:///{work / f'bench-{time.monotonic_ns()}.db'}"
    else:
        name = f"bench_bootstrap_{time.monotonic_ns()}"
        admin = create_engine(server_url)
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return url


async def wait_ready(
    http: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process
) -> None:
    for _ in range(600):
        if process.returncode is not None:
            raise SystemExit(f"the app exited with {process.returncode}")
        try:
            if (await http.get(f"{url}/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the app did not become ready")


@dataclass(frozen=True)
class Round:
    seconds: float  # from INSTALLED sent to every list done
    pages: int  # the pages the lists needed
    sent: int  # requests the sandbox received (pages past a list's end included)
    first: float  # when the first request arrived
    last: float  # when the last request arrived
    app_cpu: float  # CPU seconds the app's process used for it
    sandbox_cpu: float  # CPU seconds this process (the sandbox) used meanwhile

    def __str__(self) -> str:
        return (
            f"{self.seconds:.2f} (requests {self.first:.2f}..{self.last:.2f}, "
            f"CPU app {self.app_cpu:.2f}, sandbox {self.sandbox_cpu:.2f})"
        )


async def bootstrap_once(sandbox: Sandbox, database_url: str, work: Path) -> Round:
    """Install into a fresh workspace and time its bootstrap."""
    port = free_port()
    environment = app_environment(
        APP,
        sandbox,
        app_port=port,
        data_dir=work,
        key_file=sandbox.write_public_key(work / "sandbox.pem"),
    )
    environment["API_STUDIO_DATABASE_URL"] = database_url
    environment["API_STUDIO_LOG_LEVEL"] = "WARNING"
    environment["API_STUDIO_ENCRYPTION_KEYS"] = generate_key()
    environment["API_STUDIO_CLOCKIFY_OPENAPI_FILE"] = str(REFERENCE / "openapi.json")
    process = await asyncio.create_subprocess_exec(*app_command(APP, port), env=environment)
    url = f"http://127.0.0.1:{port}"
    engine = create_engine(database_url)  # reads only: no write lock on SQLite
    try:
        await wait_ready(sandbox.http, url, process)
        manifest = await sandbox.fetch_manifest(url)
        idle_cpu = cpu_seconds(process.pid)
        sandbox_cpu = time.process_time()
        workspace = sandbox.create_workspace(APP)
        # The seeded store is large and lives on: keep the sandbox's cyclic GC from
        # pausing this process (and so Clockify) while it is traversed.
        gc.freeze()
        mine = BootstrapProgress.workspace_id == workspace.workspace_id
        started = time.perf_counter()
        since = time.monotonic()  # the sandbox's request clock
        (await sandbox.install(url, manifest, workspace)).raise_for_status()
        for _ in range(30_000):  # five minutes at most
            async with engine.connect() as conn:
                rows = (await conn.execute(select(BootstrapProgress).where(mine))).all()
            if rows and all(row.status not in ("pending", "running") for row in rows):
                break
            if process.returncode is not None:
                raise SystemExit(f"the app exited with {process.returncode}")
            await asyncio.sleep(0.01)
        else:
            raise SystemExit("bootstrap did not finish within five minutes; see the app's log")
        elapsed = time.perf_counter() - started
        app_cpu = cpu_seconds(process.pid) - idle_cpu
        sandbox_cpu = time.process_time() - sandbox_cpu
    finally:
        await engine.dispose()
        process.terminate()
        await process.wait()
    failed = [row.operation_id for row in rows if row.status != "done"]
    if failed:
        raise SystemExit(f"lists failed: {', '.join(failed)}")
    arrivals = [r.at - since for r in sandbox.requests if r.workspace_id == workspace.workspace_id]
    return Round(
        elapsed,
        sum(row.pages for row in rows),
        len(arrivals),
        arrivals[0],
        arrivals[-1],
        app_cpu,
        sandbox_cpu,
    )


async def run(scale: int, rounds: int, server_url: str | None, work: Path) -> Figures:
    async with Sandbox.running(
        seed=scale, sizes=sizes(scale), rate_limit=LIMIT, reference_dir=REFERENCE
    ) as sandbox:
        results = [
            await bootstrap_once(sandbox, await fresh_database(server_url, work), work)
            for _ in range(rounds)
        ]
        throttled = sandbox.throttled
    elapsed = median(result.seconds for result in results)
    pages, sent = results[0].pages, results[0].sent
    floor = pages / LIMIT
    print(
        f"scale {scale}: {pages} pages ({sent} requests sent), bootstrap median {elapsed:5.2f} s, "
        f"floor {floor:5.2f} s, ratio {elapsed / floor:4.2f}x, 429s {throttled}\n"
        f"  rounds (s): {'; '.join(str(result) for result in results)}",
        flush=True,
    )
    return {
        f"scale{scale}.seconds": elapsed,
        f"scale{scale}.floor_s": floor,
        f"scale{scale}.ratio": elapsed / floor,
        f"scale{scale}.pages": pages,
        f"scale{scale}.sent": sent,
        f"scale{scale}.throttled": throttled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to test on")
    add_json_option(parser)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    server_url = args.database_url or None
    print(f"database: {make_url(server_url).get_backend_name() if server_url else 'sqlite'}")
    figures: Figures = {}
    for scale in args.scale:
        figures |= asyncio.run(run(scale, args.rounds, server_url, work))
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
