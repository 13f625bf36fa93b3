"""An app served as operators serve it (`clockify-addons serve APP`, a process of its own).

What the benchmarks that measure a real process share: its environment pointed at the
sandbox, starting it (timed to the first green `/readyz`) and stopping it, installing it
in a sandbox workspace with a flow, and reading its resident set and open descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from addon_core.sandbox import Sandbox, Workspace
from addon_core.settings import reference_dir
from addon_core.storage.encryption import generate_key

SCRIPT = Path(sys.executable).with_name("clockify-addons")
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def openapi_file() -> Path:
    """Clockify's OpenAPI document: $CLOCKIFY_REFERENCE_DIR, else ../shared/clockify."""
    folder = reference_dir() or Path(__file__).resolve().parents[2] / "shared" / "clockify"
    path = folder / "openapi.json"
    if not path.is_file():
        raise SystemExit(
            f"{path} is missing: set CLOCKIFY_REFERENCE_DIR to Clockify's reference data"
        )
    return path


def environment(
    app: str,
    database_url: str,
    sandbox: Sandbox,
    folder: Path,
    port: int,
    *,
    openapi: Path | None = None,
) -> dict[str, str]:
    """The settings `serve APP` reads, for one app on its own port and data folder.

    Without `openapi`, the operation catalogue is the one shipped in the package, as in
    production.
    """
    prefix = app.upper().replace("-", "_") + "_"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "DATABASE_URL": database_url,
        "BASE_URL": f"http://127.0.0.1:{port}",
        "CLOCKIFY_PUBLIC_KEY_FILE": str(sandbox.write_public_key(folder / "sandbox.pem")),
        "CLOCKIFY_API_ALLOWED_HOSTS": f"127.0.0.1:{sandbox.port}",
        "ALLOW_INSECURE_HTTP": "true",
        "ENCRYPTION_KEYS": generate_key(),
        "DATA_DIR": str(folder / "data"),
        "BOOTSTRAP_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
    }
    if openapi is not None:
        settings["CLOCKIFY_OPENAPI_FILE"] = str(openapi)
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("API_STUDIO_", "UNIVERSAL_WEBHOOK_"))
    }
    return {**inherited, **{f"{prefix}{name}": value for name, value in settings.items()}}


@dataclass
class Served:
    app: str
    url: str
    process: subprocess.Popen[bytes]
    ready_s: float


async def start(app: str, env: dict[str, str], port: int, log: Path) -> Served:
    """Start `serve APP` and time it from the process start to the first green `/readyz`."""
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=1.0) as client:
        with log.open("ab") as out:
            started = time.monotonic()
            process = subprocess.Popen(  # noqa: ASYNC220
                [str(SCRIPT), "serve", app, "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = started + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{app} exited with {process.returncode}; see {log}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return Served(app, url, process, time.monotonic() - started)
            await asyncio.sleep(0.01)
    process.kill()
    raise SystemExit(f"{app} was not ready within {READY_TIMEOUT_S:.0f} s; see {log}")


async def stop(served: Served) -> int:
    """SIGTERM, and the exit code (after a SIGKILL if it has not exited within 60 s)."""
    served.process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(served.process.wait, 60)
    except subprocess.TimeoutExpired:
        served.process.kill()
        return await asyncio.to_thread(served.process.wait)


async def install(sandbox: Sandbox, url: str, flow: dict[str, Any]) -> Workspace:
    """Install the app in a new sandbox workspace and save `flow` through its API."""
    manifest = await sandbox.fetch_manifest(url)
    workspace = sandbox.create_workspace(str(manifest["key"]))
    (await sandbox.install(url, manifest, workspace)).raise_for_status()
    async with httpx.AsyncClient(timeout=30.0) as client:
        created = await client.post(
            f"{url}/api/flows",
            json=flow,
            headers={"Authorization": f"Bearer {workspace.user_token('OWNER')}"},
        )
    created.raise_for_status()
    return workspace


def rss_mib(pid: int) -> float:
    """The process's resident set, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
