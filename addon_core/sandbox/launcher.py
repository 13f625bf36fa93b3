"""The developer demo: the sandbox and one add-on app side by side, installed and exercised.

`run_demo` backs `clockify-addons sandbox APP`: Clockify's whole round trip (install,
bootstrap, an API explorer call, a webhook) on a laptop, without a Clockify account.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import httpx

from addon_core.apps import load_spec
from addon_core.clockify.manifest import Manifest
from addon_core.sandbox.server import Sandbox
from addon_core.settings import reference_dir

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
PUBLIC_KEY_FILE = "sandbox-public-key.pem"


def run_demo(
    app_name: str,
    *,
    sandbox_port: int,
    app_port: int,
    data_dir: Path,
    seed: int = 0,
    out: TextIO | None = None,
) -> int:
    """Serve the sandbox and APP until Ctrl-C or SIGTERM; return the exit code.

    Args:
        app_name: `api-studio` or `universal-webhook`.
        data_dir: holds the sandbox's public key, the app's SQLite database and its data.
        out: where the guide is printed (stdout by default).
    """
    data_dir = data_dir.resolve()
    try:
        held = prepare(app_name, data_dir, {"--sandbox-port": sandbox_port, "--port": app_port})
    except LaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    held["--sandbox-port"].close()  # the sandbox binds it again at once, in this process
    with held["--port"] as app_socket:  # handed to the app: no other process can take it
        return asyncio.run(
            _demo(app_name, sandbox_port, app_socket, data_dir, seed, out or sys.stdout)
        )


class LaunchError(Exception):
    """The demo cannot start: a port is taken or the data directory cannot be written."""


def prepare(app_name: str, data_dir: Path, ports: dict[str, int]) -> dict[str, socket.socket]:
    """Bind the ports, check the data directory is writable and start a fresh database.

    Returns the bound sockets by option; the caller closes them. Each run signs with a new
    sandbox key, so the app's database of an earlier run holds installations (and bootstrap
    jobs) with tokens nothing can verify any more: it goes. Raises `LaunchError` saying
    what to change.
    """
    held: dict[str, socket.socket] = {}
    try:
        for option, port in ports.items():
            held[option] = _bind(port, option)
        _fresh_data_dir(app_name, data_dir)
    except BaseException:
        for bound in held.values():
            bound.close()
        raise
    return held


def _bind(port: int, option: str) -> socket.socket:
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # As the servers do: a port left in TIME_WAIT by an earlier run is free.
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind(("127.0.0.1", port))
        # Listening is what holds the port: a bound socket alone admits another SO_REUSEADDR
        # bind. Connections wait in the backlog until the app accepts them.
        bound.listen(128)
    except OSError as exc:
        bound.close()
        raise LaunchError(
            f"port {port} on 127.0.0.1 is not free ({exc.strerror}): stop what listens "
            f"there, or pass {option} with a free port"
        ) from None
    return bound


def _fresh_data_dir(app_name: str, data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
        for suffix in ("", "-journal", "-wal", "-shm"):
            (data_dir / f"{app_name}.db{suffix}").unlink(missing_ok=True)
    except OSError as exc:
        raise LaunchError(
            f"cannot write to the data directory {data_dir} ({exc.strerror}): "
            "pass --data-dir with a folder you may write to"
        ) from None


def app_environment(
    app_name: str, sandbox: Sandbox, *, app_port: int, data_dir: Path, key_file: Path
) -> dict[str, str]:
    """Return the settings that point APP at the sandbox, as `{P}NAME` variables."""
    prefix = str(load_spec(app_name).settings_class.model_config.get("env_prefix", ""))
    values = {
        "clockify_public_key_file": str(key_file),
        "clockify_api_allowed_hosts": f"127.0.0.1:{sandbox.port}",
        "allow_insecure_http": "true",
        "database_url": f"sqlite+aiosqlite:///{(data_dir / f'{app_name}.db').as_posix()}",
        "base_url": f"http://127.0.0.1:{app_port}",
        "port": str(app_port),
        "data_dir": str(data_dir),
    }
    environment = {f"{prefix}{name.upper()}": value for name, value in values.items()}
    # What the developer set explicitly (an OpenAPI file, a log level) still applies; the
    # operation catalogue is otherwise the one a fresh install reads.
    return {**environment, **{k: v for k, v in os.environ.items() if k not in environment}}


def app_command(app_name: str, app_port: int, fd: int | None = None) -> list[str]:
    """Return the command that serves APP: the installed console script, else the module.

    With `fd`, the app serves on that inherited socket, already bound to `app_port`.
    """
    script = Path(sys.executable).with_name("clockify-addons")
    base = (
        [str(script)]
        if script.is_file()
        else [sys.executable, "-c", "from addon_core.cli import main; main()"]
    )
    inherited = ["--fd", str(fd)] if fd is not None else []
    return [*base, "serve", app_name, "--host", "127.0.0.1", "--port", str(app_port), *inherited]


async def _demo(
    app_name: str,
    sandbox_port: int,
    app_socket: socket.socket,
    data_dir: Path,
    seed: int,
    out: TextIO,
) -> int:
    app_port = int(app_socket.getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sandbox = Sandbox(seed=seed, port=sandbox_port, reference_dir=reference_dir())
    await sandbox.start()
    app_url = f"http://127.0.0.1:{app_port}"
    key_file = sandbox.write_public_key(data_dir / PUBLIC_KEY_FILE)
    environment = app_environment(
        app_name, sandbox, app_port=app_port, data_dir=data_dir, key_file=key_file
    )
    # A session of its own: Ctrl-C reaches the demo, which then stops the app with SIGTERM.
    fd = app_socket.fileno()
    process = await asyncio.create_subprocess_exec(
        *app_command(app_name, app_port, fd),
        env=environment,
        start_new_session=True,
        pass_fds=(fd,),
    )
    try:
        if not await _wait_ready(sandbox.http, app_url, process, stop):
            print(f"{app_name} did not become ready on {app_url}/readyz", file=out)
            return 1
        if not await _install_and_demonstrate(sandbox, app_name, app_url, key_file, out):
            return 1
        await _wait_for_stop(stop, process)
        if process.returncode is not None:
            print(f"{app_name} exited with {process.returncode}", file=out)
            return 1
        return 0
    finally:
        await _stop_process(process)
        await sandbox.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _wait_ready(
    http: httpx.AsyncClient, app_url: str, process: asyncio.subprocess.Process, stop: asyncio.Event
) -> bool:
    deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_SECONDS
    while process.returncode is None and not stop.is_set():
        with contextlib.suppress(httpx.TransportError):
            if (await http.get(f"{app_url}/readyz", timeout=2.0)).status_code == 200:
                return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
    return False


async def _install_and_demonstrate(
    sandbox: Sandbox, app_name: str, app_url: str, key_file: Path, out: TextIO
) -> bool:
    manifest = await sandbox.fetch_manifest(app_url)
    workspace = sandbox.create_workspace(str(manifest["key"]))
    installed = await sandbox.install(app_url, manifest, workspace)
    print(f"Clockify sandbox  {sandbox.url}  (public key {key_file})", file=out)
    print(f"{app_name:<17} {app_url}", file=out)
    print(f"INSTALLED in workspace {workspace.workspace_id}: {installed.status_code}", file=out)
    if not installed.is_success:
        print(installed.text[:500], file=out)
        return False
    events = [item["event"] for item in manifest.get("webhooks", [])]
    if events:
        delivered = await sandbox.fire(app_url, workspace, events[0])
        print(f"webhook {events[0]} delivered: {delivered.status_code}", file=out)
    await _show_explorer_and_bootstrap(app_url, workspace.user_token(), out)
    setting = next(iter(Manifest(manifest).setting_defaults().items()), ("someSettingId", ""))
    guide = _guide(sandbox, app_url, workspace.user_token(), events, setting)
    print(guide, file=out, flush=True)
    return True


async def _show_explorer_and_bootstrap(app_url: str, token: str, out: TextIO) -> None:
    """Run one explorer call as the workspace owner, then show the bootstrap's progress."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=app_url, headers=headers, timeout=30) as api:
        call = await api.post(
            "/api/operations/getProjects/execute", json={"params": {"page-size": 5}}
        )
        if call.is_success:
            answer = call.json()
            print(
                f"explorer getProjects: Clockify answered {answer['status']} in "
                f"{answer['latencyMs']:.0f} ms with {len(answer['body'])} project(s)",
                file=out,
            )
        else:
            print(f"explorer getProjects: {call.status_code} {call.text[:300]}", file=out)
        await asyncio.sleep(1.0)  # the bootstrap job started at INSTALLED
        progress = await api.get("/api/bootstrap")
        if progress.is_success:
            items = progress.json()["items"]
            done = [i for i in items if i["status"] == "done"]
            fetched = sum(i["items"] for i in items)
            print(
                f"bootstrap: {len(done)} of {len(items)} lists done, {fetched} entities cached",
                file=out,
            )


def _guide(
    sandbox: Sandbox, app_url: str, token: str, events: list[str], setting: tuple[str, Any]
) -> str:
    control = f"{sandbox.url}/_sandbox"
    event = events[-1] if events else "NEW_PROJECT"
    execute = shlex.quote(json.dumps({"params": {"page-size": 5}}))
    fire = shlex.quote(json.dumps({"eventType": event}))
    change = shlex.quote(json.dumps(dict([setting])))
    fault = shlex.quote(json.dumps({"status": 503, "times": 2, "pathContains": "/projects"}))
    return "\n".join(
        [
            "",
            f"Open {sandbox.url}/ in a browser: the add-on's pages inside a Clockify-like shell",
            f"(as another user: {sandbox.url}/?role=USER; dark theme: {sandbox.url}/?theme=DARK).",
            "",
            "The API explorer, with the owner's user token (valid 30 minutes):",
            f"  export TOKEN={token}",
            f'  curl -s -H "Authorization: Bearer $TOKEN" {app_url}/api/operations',
            f'  curl -s -X POST -H "Authorization: Bearer $TOKEN" '
            f"-H 'content-type: application/json' -d {execute} "
            f"{app_url}/api/operations/getProjects/execute",
            "A fresh token:",
            f"  curl -s -X POST {control}/user-token",
            "More webhooks (any event the manifest declares or the app registered):",
            f"  curl -s -X POST -H 'content-type: application/json' -d {fire} {control}/fire",
            "SETTINGS_UPDATED (any setting the manifest declares):",
            f"  curl -s -X POST -H 'content-type: application/json' -d {change} {control}/settings",
            "Faults, and what the app sent the sandbox:",
            f"  curl -s -X POST -H 'content-type: application/json' -d {fault} {control}/faults",
            f"  curl -s {control}/requests",
            "Ctrl-C stops the app and the sandbox.",
        ]
    )


async def _wait_for_stop(stop: asyncio.Event, process: asyncio.subprocess.Process) -> None:
    stopped = asyncio.ensure_future(stop.wait())
    exited = asyncio.ensure_future(process.wait())
    await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
    for task in (stopped, exited):
        task.cancel()


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    """Stop the app with SIGTERM (it drains and exits 0), or kill it if it hangs."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
