"""Benchmark: signed NEW_TIME_ENTRY webhooks into Universal Webhook vs a bare Litestar endpoint.

Both run on uvicorn (uvloop, httptools, one worker, no access log); Debian's `wrk`
drives them with a Lua script, once with one identical body (the dedupe path) and
once with a distinct entry per request (the persist path). Prints req/s, p50 and
p99 for each and the ratio, and checks that every acknowledged event was stored.

The local sandbox plays Clockify: it signs the tokens and sends INSTALLED, and the
app's work after an install (registering webhooks through the API) runs against it
and is over before the first round, so the rounds measure the intake alone and nothing
tries to reach Clockify itself. Bootstrap is off, as in the footprint benchmark.

    uv run python benchmarks/webhook_intake.py [--duration 10] [--connections 32] [--rounds 3]
        [--database-url postgresql+asyncpg://...] [--modes identical distinct]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from figures import Figures, add_json_option, write_json
from served import free_port

from addon_core.sandbox import Sandbox, Sizes, Workspace
from addon_core.storage.encryption import generate_key

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADDON_KEY = "universal-webhook"
MODES = ("identical", "distinct")
PATH = "/webhooks/clockify/new-time-entry"


def body_suffix(workspace_id: str) -> str:
    """The rest of a NEW_TIME_ENTRY body after its id, shaped like Clockify's sample."""
    return json.dumps(
        {
            "workspaceId": workspace_id,
            "description": "Planning meeting",
            "userId": "5a0ab5acb07987125438b60f",
            "projectId": "5b1e6b160cb8793dd93ec120",
            "billable": True,
            "tagIds": ["5e7b2b1c1d5e2a0d6a3e1f21"],
            "timeInterval": {
                "start": "2026-11-26T09:00:00Z",
                "end": "2026-11-26T10:00:00Z",
                "duration": "PT1H",
            },
        },
        separators=(",", ":"),
    ).replace("{", '",', 1)


LUA = """
local counter = 0
local nonce = "%(nonce)s"
local distinct = %(distinct)s
local thread_id = 0
local next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
end
function init(args)
  thread_id = tid or 0
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["clockify-signature"] = "%(token)s"
wrk.headers["clockify-webhook-event-type"] = "NEW_TIME_ENTRY"
local prefix = '{"id":"'
local suffix = '%(suffix)s'
function request()
  local id = "fixed"
  if distinct then
    counter = counter + 1
    id = nonce .. "-" .. thread_id .. "-" .. counter
  end
  return wrk.format(nil, "%(path)s", nil, prefix .. id .. suffix)
end
"""


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server at {url} did not become ready")


def run_wrk(port: int, script: Path, duration: int, connections: int) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = dict(re.findall(r"\s(50|99)%\s+([\d.]+\w+)", out))
    return {
        "rps": rps,
        "p50_ms": to_ms(lat["50"]),
        "p99_ms": to_ms(lat["99"]),
        "requests": total,
        "errors": int(non2xx[1]) if non2xx else 0,
    }


def committed_batches(port: int) -> tuple[float, float]:
    """The intake's transactions so far and the deliveries they held, from `/metrics`."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10.0).text
    found = dict(
        re.findall(r"^addon_intake_batch_size_(count|sum)\{[^}]*\} ([\d.e+]+)$", text, re.M)
    )
    return float(found.get("count", 0.0)), float(found.get("sum", 0.0))


def to_ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def serve(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


async def count_events(database_url: str) -> int:
    from sqlalchemy import text

    from addon_core.storage.database import create_engine

    engine = create_engine(database_url)
    async with engine.connect() as conn:
        value = (await conn.execute(text("SELECT COUNT(*) FROM events"))).scalar_one()
    await engine.dispose()
    return int(value)


def install(sandbox: Sandbox, app_url: str) -> Workspace:
    """Install the app on a sandbox workspace; return once its work after INSTALLED is done."""
    manifest = sandbox.run_sync(sandbox.fetch_manifest(app_url))
    workspace = sandbox.create_workspace(ADDON_KEY)
    sandbox.run_sync(sandbox.install(app_url, manifest, workspace)).raise_for_status()
    # Registering the other event types through the webhooks API: over when the sandbox
    # has seen no request for a second.
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 1.0:
        if len(sandbox.requests) != seen:
            seen, quiet_since = len(sandbox.requests), time.monotonic()
        time.sleep(0.1)
    return workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="what to send (both)"
    )
    add_json_option(parser)
    args = parser.parse_args()
    figures: Figures = {"connections": args.connections}
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    with Sandbox.in_thread(sizes=Sizes(webhooks=0)) as sandbox:
        try:
            measure(args, sandbox, work, figures)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def measure(args: argparse.Namespace, sandbox: Sandbox, work: Path, figures: Figures) -> None:
    """Serve both targets, install the app on the sandbox, run the rounds."""
    database_url = args.database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
    app_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        "UNIVERSAL_WEBHOOK_DATABASE_URL": database_url,
        "UNIVERSAL_WEBHOOK_DATA_DIR": str(work),
        "UNIVERSAL_WEBHOOK_CLOCKIFY_PUBLIC_KEY_FILE": str(
            sandbox.write_public_key(work / "sandbox.pem")
        ),
        "UNIVERSAL_WEBHOOK_CLOCKIFY_API_ALLOWED_HOSTS": f"127.0.0.1:{sandbox.port}",
        "UNIVERSAL_WEBHOOK_ALLOW_INSECURE_HTTP": "true",
        "UNIVERSAL_WEBHOOK_BOOTSTRAP_ENABLED": "false",
        "UNIVERSAL_WEBHOOK_ENCRYPTION_KEYS": generate_key(),
        "UNIVERSAL_WEBHOOK_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    app = serve([str(BIN / "clockify-addons"), "serve", "universal-webhook", "--port",
                 str(app_port)], env, work / "app.log")  # fmt: skip
    bare = serve([sys.executable, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                  str(bare_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                  "--log-level", "warning"], env, work / "bare.log")  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{app_port}/readyz")
        wait_ready(f"http://127.0.0.1:{bare_port}/docs-not-here")
        workspace = install(sandbox, f"http://127.0.0.1:{app_port}")
        token = workspace.webhook_token("NEW_TIME_ENTRY")
        print(f"database: {database_url.split(':')[0]}, {args.connections} connections, "
              f"{args.duration}s per run, wrk -t2, one uvicorn worker each")  # fmt: skip
        header = ("mode", "target", "req/s", "p50 ms", "p99 ms", "non-2xx")
        print("{:<10} {:<18} {:>9} {:>8} {:>8} {:>8}".format(*header))
        for mode in args.modes:
            before = asyncio.run(count_events(database_url))
            batches = committed_batches(app_port)
            runs: dict[str, list[dict[str, Any]]] = {"bare litestar": [], "universal-webhook": []}
            # Alternate the targets round by round so drift on the machine hits both.
            for _ in range(args.rounds):
                script = work / f"{mode}.lua"
                script.write_text(LUA % {
                    "nonce": os.urandom(4).hex(), "distinct": str(mode == "distinct").lower(),
                    "token": token, "suffix": body_suffix(workspace.workspace_id), "path": PATH,
                })  # fmt: skip
                for target, port in (("bare litestar", bare_port), ("universal-webhook", app_port)):
                    result = run_wrk(port, script, args.duration, args.connections)
                    runs[target].append(result)
                    print(f"{mode:<10} {target:<18} {result['rps']:>9.0f} {result['p50_ms']:>8.2f} "
                          f"{result['p99_ms']:>8.2f} {result['errors']:>8}")  # fmt: skip
            medians = {t: median(r["rps"] for r in rs) for t, rs in runs.items()}
            p99 = median(r["p99_ms"] for r in runs["universal-webhook"])
            ratio = medians["universal-webhook"] / medians["bare litestar"]
            print(f"{mode:<10} median req/s: bare {medians['bare litestar']:.0f}, "
                  f"universal-webhook {medians['universal-webhook']:.0f}, ratio {ratio:.2f}, "
                  f"universal-webhook p99 {p99:.2f} ms")  # fmt: skip
            figures.update({f"{mode}.bare_rps": medians["bare litestar"], f"{mode}.ratio": ratio,
                            f"{mode}.app_rps": medians["universal-webhook"],
                            f"{mode}.p99_ms": p99})  # fmt: skip
            if mode == "distinct":
                stored = asyncio.run(count_events(database_url)) - before
                acked = sum(r["requests"] - r["errors"] for r in runs["universal-webhook"])
                verdict = "ok" if stored >= acked else "LOST EVENTS"
                print(f"distinct   acknowledged {acked}, stored {stored}: {verdict}")
                figures["distinct.lost"] = max(0, acked - stored)
                # What bounds this mode: each request waits for its batch's durable commit.
                (count, deliveries), (count_0, deliveries_0) = committed_batches(app_port), batches
                count, deliveries = count - count_0, deliveries - deliveries_0
                seconds = args.rounds * args.duration
                print(f"distinct   {count / seconds:.0f} commits/s, "
                      f"{deliveries / max(count, 1):.1f} deliveries per commit")  # fmt: skip
                figures["distinct.commits_per_s"] = count / seconds
                figures["distinct.deliveries_per_commit"] = deliveries / max(count, 1)
        write_json(args.json, figures)
    finally:
        stop(app)
        stop(bare)


if __name__ == "__main__":
    main()
