"""`serve --workers N`: several worker processes, one coherent `/metrics`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from addon_core.clockify.event_types import webhook_path
from addon_core.settings import MULTIPROC_DIR_VARIABLE
from addon_core.storage.encryption import generate_key
from tests.conftest import POSTGRES_VARIABLE, create_postgres_database
from tests.harness import SCRIPT, free_port, run_cli

PREFIX = "UNIVERSAL_WEBHOOK_"
START_TIMEOUT = 150.0
#: Stop sending once this many requests have not reached a second worker.
MAX_REQUESTS = 2000


def worker_env(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_STUDIO_", PREFIX))}
    env.pop(MULTIPROC_DIR_VARIABLE, None)
    settings = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEYS": generate_key(),
        "ENVIRONMENT": "test",
        "BOOTSTRAP_ENABLED": "false",
        "SHUTDOWN_GRACE_SECONDS": "3",
        "LOG_LEVEL": "INFO",
    }
    return {**env, **{f"{PREFIX}{name}": value for name, value in settings.items()}}


def test_sqlite_refuses_several_workers(tmp_path: Path) -> None:
    env = worker_env(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")

    result = run_cli("serve", "universal-webhook", "--workers", "2", env=env)

    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr
    assert f"{PREFIX}DATABASE_URL" in result.stderr
    assert not (tmp_path / "one.db").exists(), "nothing may be migrated before the refusal"


def rejected_count(metrics_text: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "addon_webhooks_total" and sample.labels["outcome"] == "rejected":
                total += sample.value
    return total


def worker_pids(folder: Path, kind: str) -> set[str]:
    return {path.stem.rsplit("_", 1)[-1] for path in folder.glob(f"{kind}_*.db")}


@pytest.mark.postgres
def test_two_workers_expose_one_summed_scrape(tmp_path: Path) -> None:
    admin = os.environ.get(POSTGRES_VARIABLE)
    if not admin:
        pytest.skip(f"{POSTGRES_VARIABLE} is not set")
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale file of an earlier run")
    env = worker_env(tmp_path, asyncio.run(create_postgres_database(admin)))
    env[MULTIPROC_DIR_VARIABLE] = str(folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603
            [str(SCRIPT), "serve", "universal-webhook", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(base, server, log_path)
        assert "999999" not in worker_pids(folder, "counter"), "the stale file was not removed"

        sent = 0
        # A new connection per request: the kernel hands each to whichever worker accepts.
        with httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while len(worker_pids(folder, "counter")) < 2 and sent < MAX_REQUESTS:
                answer = http.post(webhook_path("NEW_PROJECT"), content=b"{}")
                assert answer.status_code == 401, answer.text
                sent += 1
            assert len(worker_pids(folder, "counter")) == 2, "one worker took every connection"
            scraped = http.get("/metrics")

        assert scraped.status_code == 200
        assert rejected_count(scraped.text) == sent
        samples = [s for f in text_string_to_metric_families(scraped.text) for s in f.samples]
        assert all("pid" not in sample.labels for sample in samples), "a gauge left unmerged"

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, log_path.read_text()
        assert "Traceback" not in log_path.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def wait_ready(base: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"serve exited with {server.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"serve was not ready in {START_TIMEOUT} s: {log_path.read_text()}")
