"""Run every benchmark on SQLite and PostgreSQL; write one JSON result and the markdown tables.

Each benchmark runs as its own process, one after another (never two at once: they
would measure each other), with `--json PATH` for its figures. PostgreSQL is the server
of `--postgres-url`, or else a throwaway cluster started here from the PostgreSQL binaries
(as `scripts/test` does, but with fsync on: the figures are of durable commits) and
removed at the end. A benchmark whose tool is missing (wrk, Chromium) or that refuses
`--json` is skipped with the reason, and the rest still run.

    uv run python benchmarks/run_all.py [--quick] [--out DIR] [--only NAME ...]
        [--postgres-url postgresql+asyncpg://user@host:port/db | --no-postgres]

`--quick` shortens every run (a few minutes in all, figures only indicative). The
results go to DIR (default: a new folder under the system's temporary directory):
`results.json`, `tables.md` and each run's log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tables import render

HERE = Path(__file__).resolve().parent
SQLITE, POSTGRESQL = "sqlite", "postgresql"


@dataclass(frozen=True)
class Benchmark:
    """One script, its arguments for a full and a quick run, and the databases it runs on."""

    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    #: None: the benchmark uses no database. Otherwise how it is pointed at PostgreSQL:
    #: "server" (it makes its own databases) or "empty" (it needs a new, empty one).
    postgres: str | None = None
    #: arguments that keep it off SQLite when it runs for PostgreSQL
    postgres_only: tuple[str, ...] = ()
    postgres_option: str = "--database-url"
    tool: str | None = None


BENCHMARKS = (
    Benchmark("json_depth", quick=("--repeat", "20")),
    Benchmark("catalogue", quick=("--calls", "1000")),
    Benchmark(
        "webhook_intake",
        full=("--duration", "8", "--rounds", "3"),
        quick=("--duration", "3", "--rounds", "1"),
        postgres="empty",
        tool="wrk",
    ),
    Benchmark("pacing", full=("--repeat", "3"), quick=("--calls", "200", "--workspaces", "1", "4")),
    Benchmark(
        "flow_latency",
        quick=("--events", "20", "--burst", "30"),
        postgres="empty",
        postgres_only=("--no-sqlite",),
        postgres_option="--postgres",
    ),
    Benchmark("bootstrap", quick=("--scale", "1", "--rounds", "1"), postgres="server"),
    Benchmark(
        "footprint",
        quick=("--minutes", "0.5", "--starts", "2", "--interval", "10"),
        postgres="server",
    ),
    Benchmark("page_load", quick=("--loads", "3"), tool="chromium"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary folder (root runs it as `postgres`)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        data = str(self.folder / "data")
        self._run(str(self.bin_dir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust")
        options = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1"
        self._run(str(self.bin_dir / "pg_ctl"), "-D", data, "-w", "-l",
                  str(self.folder / "server.log"), "-o", options, "start")  # fmt: skip

    def stop(self) -> None:
        data = str(self.folder / "data")
        try:
            self._run(str(self.bin_dir / "pg_ctl"), "-D", data, "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts[-3])
    return found[-1].parent if found else None


@contextmanager
def postgres_server(args: argparse.Namespace) -> Iterator[str | None]:
    """The server URL to run on: the given one, a throwaway cluster's, or None (skip)."""
    if args.no_postgres:
        yield None
        return
    if args.postgres_url:
        yield args.postgres_url
        return
    bin_dir = postgres_bin()
    if bin_dir is None:
        print("PostgreSQL is not installed: SQLite only (apt-get install postgresql)", flush=True)
        yield None
        return
    cluster = Cluster(bin_dir)
    cluster.start()
    print(f"PostgreSQL from {bin_dir} on port {cluster.port} for this run", flush=True)
    try:
        yield cluster.url
    finally:
        cluster.stop()


def empty_database(server_url: str, prefix: str) -> str:
    """Create a new database on the server and return its URL."""
    import asyncio

    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"bench_{prefix.replace('.', '_')}_{secrets.token_hex(4)}"
    url = make_url(server_url)

    async def create() -> None:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password,
            database=url.database or "postgres",
        )  # fmt: skip
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return url.set(database=name).render_as_string(hide_password=False)


def run_one(
    benchmark: Benchmark, database: str, server_url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    """Run one benchmark on one database; return its entry of the results."""
    if benchmark.tool and shutil.which(benchmark.tool) is None:
        return {"status": "skipped", "reason": f"{benchmark.tool} is not installed"}
    label = f"{benchmark.name}.{database}" if benchmark.postgres else benchmark.name
    out = args.out / f"{label}.json"
    log = args.out / f"{label}.log"
    command = [sys.executable, str(HERE / f"{benchmark.name}.py")]
    command += list(benchmark.quick if args.quick else benchmark.full)
    if database == POSTGRESQL:
        assert server_url is not None
        url = server_url if benchmark.postgres == "server" else empty_database(server_url, label)
        command += [benchmark.postgres_option, url, *benchmark.postgres_only]
    command += ["--json", str(out)]
    print(f"== {label}: {' '.join(Path(c).name if c.startswith('/') else c for c in command[1:])}",
          flush=True)  # fmt: skip
    started = time.monotonic()
    with log.open("w") as output:
        done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    seconds = round(time.monotonic() - started, 1)
    text = log.read_text(errors="replace")
    if done.returncode != 0 and "unrecognized arguments: --json" in text:
        reason = f"{benchmark.name}.py has no --json option yet"
        print(f"   skipped: {reason}", flush=True)
        return {"status": "skipped", "reason": reason, "seconds": seconds}
    if done.returncode != 0 or not out.is_file():
        last = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        print(f"   failed (exit {done.returncode}): {last[0]}; see {log}", flush=True)
        return {"status": "failed", "exit": done.returncode, "log": str(log), "seconds": seconds}
    figures = json.loads(out.read_text())
    print(f"   done in {seconds} s", flush=True)
    return {"status": "ok", "seconds": seconds, "figures": figures, "log": str(log)}


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in load],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs: indicative figures")
    parser.add_argument("--out", type=Path, help="folder for results.json, tables.md and logs")
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BENCHMARKS], metavar="NAME",
                        help="run only these benchmarks")  # fmt: skip
    parser.add_argument("--postgres-url", help="a PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--no-postgres", action="store_true", help="run on SQLite only")
    args = parser.parse_args()
    if args.postgres_url and args.no_postgres:
        parser.error("--postgres-url and --no-postgres contradict each other")
    args.out = args.out or Path(tempfile.mkdtemp(prefix="benchmarks-"))
    args.out.mkdir(parents=True, exist_ok=True)
    selected = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "runs": {},
    }
    with postgres_server(args) as server_url:
        for benchmark in selected:
            databases = [SQLITE] if benchmark.postgres else ["-"]
            if benchmark.postgres and server_url:
                databases.append(POSTGRESQL)
            for database in databases:
                entry = run_one(benchmark, database, server_url, args)
                results["runs"].setdefault(benchmark.name, {})[database] = entry
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "tables.md").write_text(render(results))
    print(f"\nresults: {args.out / 'results.json'}\ntables:  {args.out / 'tables.md'}")
    failed = [
        name
        for name, runs in results["runs"].items()
        if any(entry["status"] == "failed" for entry in runs.values())
    ]
    if failed:
        sys.exit(f"failed: {', '.join(failed)} (see their logs in {args.out})")


if __name__ == "__main__":
    main()
