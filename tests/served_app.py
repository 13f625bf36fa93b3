"""An add-on app served as a real process against the sandbox, for crash and scale tests.

`AppProcess` runs `clockify-addons serve universal-webhook` as operators do; the helpers
install it in a sandbox workspace with a flow that marks one project per event (an
idempotent PUT), fire bursts of events and check that each had its effect exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from addon_core.sandbox import Sandbox, Workspace
from addon_core.sandbox.gate import RecordedRequest
from addon_core.storage.encryption import generate_key
from tests.db import fetch_all
from tests.harness import SCRIPT, bearer, free_port

ADDON = "universal-webhook"
PREFIX = "UNIVERSAL_WEBHOOK_"
EVENT = "NEW_PROJECT"
#: Workers per app process: at most this many steps are in flight when one is killed.
WORKERS = 4
LEASE_SECONDS = 2
READY_TIMEOUT = 90.0
IDLE_TIMEOUT = 120.0
FLOW = {
    "name": "Mark burst projects",
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
class AppProcess:
    """One `clockify-addons serve universal-webhook` process (restartable on its port)."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    terminated: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving and wait (without blocking the loop) until /readyz answers 200."""
        self.terminated = False
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603, ASYNC220
                [str(SCRIPT), "serve", ADDON, "--port", str(self.port)],
                env={**self.env, f"{PREFIX}BASE_URL": self.url},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"serve exited with {self.process.returncode}: {self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    pytest.fail(f"serve was not ready within {READY_TIMEOUT} s: {self.log()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM, once: a second one makes uvicorn skip its graceful shutdown."""
        if self.process is not None and self.process.poll() is None and not self.terminated:
            self.terminated = True
            self.process.send_signal(signal.SIGTERM)

    async def stop(self) -> int | None:
        """SIGTERM, then wait for the exit (SIGKILL if it hangs); return the exit code."""
        if self.process is None:
            return None
        self.terminate()
        try:
            return await asyncio.to_thread(self.process.wait, 60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 10)
            pytest.fail(f"serve did not stop on SIGTERM: {self.log()}")

    async def wait_dead(self) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.wait, 30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def app_environment(
    database_url: str, sandbox: Sandbox, tmp_path: Path, reference_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of an app process pointed at the sandbox (shared by its restarts)."""
    settings = {
        "DATABASE_URL": database_url,
        "CLOCKIFY_PUBLIC_KEY_FILE": str(sandbox.write_public_key(tmp_path / "sandbox-key.pem")),
        "CLOCKIFY_API_ALLOWED_HOSTS": f"127.0.0.1:{sandbox.port}",
        "ALLOW_INSECURE_HTTP": "true",
        "CLOCKIFY_OPENAPI_FILE": str(reference_dir / "openapi.json"),
        "ENCRYPTION_KEYS": generate_key(),
        "DATA_DIR": str(tmp_path / "data"),
        "ENVIRONMENT": "test",
        "BOOTSTRAP_ENABLED": "false",
        "JOB_WORKERS": str(WORKERS),
        "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "JOB_POLL_SECONDS": "0.2",
        "JOB_BACKOFF_SECONDS": "0.2",
        "JOB_BACKOFF_MAX_SECONDS": "1",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "LOG_LEVEL": "WARNING",
        **extra,
    }
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("API_STUDIO_", PREFIX))}
    return {**inherited, **{f"{PREFIX}{name}": value for name, value in settings.items()}}


async def install_with_flow(sandbox: Sandbox, app: AppProcess) -> Workspace:
    """Install the add-on in a new sandbox workspace and store the flow through the API."""
    manifest = await sandbox.fetch_manifest(app.url)
    workspace = sandbox.create_workspace(str(manifest["key"]))
    installed = await sandbox.install(app.url, manifest, workspace)
    assert installed.is_success, installed.text
    async with httpx.AsyncClient(timeout=30.0) as client:
        created = await client.post(
            f"{app.url}/api/flows",
            json=FLOW,
            headers=bearer(workspace.user_token("OWNER")),
        )
    assert created.status_code == 201, created.text
    return workspace


def burst_payloads(sandbox: Sandbox, workspace: Workspace, count: int) -> dict[str, dict[str, Any]]:
    """One distinct NEW_PROJECT event for each of `count` seeded projects, by project id."""
    projects = sandbox.store.entities(workspace.workspace_id, "projects")[:count]
    assert len(projects) == count, "seed the sandbox with enough projects"
    return {
        project["id"]: {**project, "name": f"burst-{n}", "workspaceId": workspace.workspace_id}
        for n, project in enumerate(projects)
    }


async def fire_all(
    sandbox: Sandbox,
    targets: Callable[[int], str],
    workspace: Workspace,
    payloads: dict[str, dict[str, Any]],
    *,
    senders: int = 6,
    on_answer: Callable[[int], float | None] | None = None,
) -> dict[str, int | None]:
    """Deliver every payload, `senders` at a time; return each one's status (None: no answer).

    `on_answer` gets the number acknowledged so far; a number it returns is a pause, in
    seconds, before that sender's next delivery.
    """
    pending = list(payloads.items())
    answers: dict[str, int | None] = {}
    sent = 0

    async def sender() -> None:
        nonlocal sent
        while pending:
            key, payload = pending.pop(0)
            target = targets(sent)
            sent += 1
            try:
                response = await sandbox.fire(target, workspace, EVENT, payload)
                answers[key] = response.status_code
            except httpx.TransportError:
                answers[key] = None
            if on_answer is not None:
                pause = on_answer(sum(1 for status in answers.values() if status and status < 300))
                if pause:
                    await asyncio.sleep(pause)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return answers


async def wait_until_idle(database_url: str) -> None:
    """Wait until no job is queued or running (a killed worker's lease must expire first)."""
    deadline = time.monotonic() + IDLE_TIMEOUT
    while True:
        rows = await fetch_all(
            database_url,
            "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status",
        )
        counts = {row["status"]: int(row["n"]) for row in rows}
        if not counts.get("queued") and not counts.get("running"):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"jobs still pending after {IDLE_TIMEOUT} s: {counts}")
        await asyncio.sleep(0.25)


def effects(requests: list[RecordedRequest], workspace: Workspace) -> dict[str, list[Any]]:
    """The flow's PUTs that Clockify applied, by project id, with their bodies."""
    prefix = f"/api/v1/workspaces/{workspace.workspace_id}/projects/"
    found: dict[str, list[Any]] = defaultdict(list)
    for request in requests:
        if request.method == "PUT" and request.route.startswith(prefix) and request.status < 300:
            found[request.route.removeprefix(prefix)].append(request.body)
    return found


async def stored_event_projects(database_url: str) -> list[str]:
    rows = await fetch_all(
        database_url, "SELECT payload FROM events WHERE event_type = :type", type=EVENT
    )
    return [json.loads(row["payload"])["id"] for row in rows]


async def assert_exactly_once(
    database_url: str,
    sandbox: Sandbox,
    workspace: Workspace,
    payloads: dict[str, dict[str, Any]],
    acknowledged: set[str],
    *,
    in_flight_bound: int,
) -> None:
    """Every acknowledged event had its effect once; nothing ran twice but steps in flight."""
    stored = await stored_event_projects(database_url)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert acknowledged <= set(stored), "an acknowledged event was not stored"

    done = effects(sandbox.requests, workspace)
    assert set(done) <= set(payloads), "an effect that no event asked for"
    assert set(done) == set(stored), "a stored event without its effect, or the reverse"
    for project_id, bodies in done.items():
        expected = {"note": f"{payloads[project_id]['name']}-done"}
        assert all(body == expected for body in bodies), (project_id, bodies)
        project = next(
            p
            for p in sandbox.store.entities(workspace.workspace_id, "projects")
            if p["id"] == project_id
        )
        assert project["note"] == expected["note"]
    # Only a PUT in flight at the kill may have been sent again on recovery.
    repeats = sum(len(bodies) - 1 for bodies in done.values())
    assert repeats <= in_flight_bound, {k: len(v) for k, v in done.items() if len(v) > 1}

    dead = await fetch_all(database_url, "SELECT id, last_error FROM jobs WHERE status = 'dead'")
    assert dead == []
    executions = await fetch_all(
        database_url,
        "SELECT event_id, COUNT(*) AS n FROM executions GROUP BY event_id HAVING COUNT(*) > 1",
    )
    assert executions == [], "an (event, flow) pair ran as two executions"
