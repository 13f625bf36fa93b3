"""The browser tests' world: a sandbox, one add-on served as a real process, and Chromium.

Chromium is Debian's (`/usr/bin/chromium`, or `CHROMIUM_PATH`), driven by Playwright;
Playwright never downloads a browser here. Without Chromium the browser tests are
skipped with the reason, unless `CI` is set: then they fail. Used by the browser
tests, `scripts/screenshots.py` and `benchmarks/page_load.py`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from addon_core.sandbox import Sandbox, Workspace
from addon_core.sandbox.launcher import app_command, app_environment
from addon_core.settings import reference_dir
from tests.harness import bearer, free_port

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY_SECONDS = 60.0


def chromium_path() -> str | None:
    """Where Chromium is, or None."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Served:
    """A sandbox with one add-on installed in a workspace, both on loopback."""

    sandbox: Sandbox
    app_name: str
    app_url: str
    workspace: Workspace

    def shell_url(self, section: str = "", **query: Any) -> str:
        """The sandbox shell framing the add-on, opened on `section`."""
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return (
            f"{self.sandbox.url}/{'?' + params if params else ''}{'#' + section if section else ''}"
        )

    def fire(self, event_type: str, payload: Any = None) -> httpx.Response:
        return self.sandbox.run_sync(
            self.sandbox.fire(self.app_url, self.workspace, event_type, payload)
        )

    def api(self, method: str, path: str, body: Any = None, role: str = "OWNER") -> Any:
        headers = bearer(self.workspace.user_token(role))
        response = httpx.request(
            method, f"{self.app_url}{path}", json=body, headers=headers, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else None


@contextlib.contextmanager
def serve(app_name: str, data_dir: Path, *, seed: int = 3) -> Iterator[Served]:
    """Serve the sandbox and APP (a real `clockify-addons serve` process), installed."""
    with Sandbox.in_thread(seed=seed, reference_dir=reference_dir()) as sandbox:
        port = free_port()
        app_url = f"http://127.0.0.1:{port}"
        key_file = sandbox.write_public_key(data_dir / "sandbox-public-key.pem")
        env = app_environment(
            app_name, sandbox, app_port=port, data_dir=data_dir, key_file=key_file
        )
        log = (data_dir / f"{app_name}.log").open("wb")
        process = subprocess.Popen(  # noqa: S603 - our own console script
            app_command(app_name, port), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_ready(app_url, process, data_dir / f"{app_name}.log")
            manifest = sandbox.run_sync(sandbox.fetch_manifest(app_url))
            workspace = sandbox.create_workspace(str(manifest["key"]))
            installed = sandbox.run_sync(sandbox.install(app_url, manifest, workspace))
            assert installed.status_code == 200, installed.text
            yield Served(sandbox, app_name, app_url, workspace)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()


def _wait_ready(app_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the app exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{app_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the app did not become ready: {log.read_text()[-2000:]}")
