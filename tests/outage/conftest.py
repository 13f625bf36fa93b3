"""Outage fixtures: a PostgreSQL cluster the test stops and starts, a small disk, the sandbox.

The app runs in this process behind uvicorn on loopback (real HTTP, real workers), with
Clockify played by the sandbox; its flow marks one project per event (tests.served_app).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from addon_core.sandbox import Sandbox, Sizes
from addon_core.storage.encryption import generate_key
from tests.harness import sandbox_settings
from tests.served_app import LEASE_SECONDS, WORKERS, free_port
from universal_webhook.app import UniversalWebhookSettings

PROJECTS = 120


def postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root: run them as the postgres user there.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresCluster:
    """A throwaway PostgreSQL cluster on a free port that a test may stop and start."""

    bin: Path
    folder: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603
            as_postgres_user([str(self.bin / "pg_ctl"), "-D", str(self.folder), *args]),
            check=True,
            capture_output=True,
        )

    def init(self) -> None:
        subprocess.run(  # noqa: S603
            as_postgres_user(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.folder),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-w", "-l", str(self.folder / "server.log"), "-o", options, "start")

    def stop(self) -> None:
        """Stop as a crash does (`immediate`): connections are cut, nothing is flushed."""
        self._pg_ctl("-m", "immediate", "stop")

    async def create_database(self) -> str:
        name = f"outage_{uuid.uuid4().hex[:10]}"
        engine = create_async_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A cluster of our own (not the suite's shared one): the test stops it."""
    binaries = postgres_bin()
    if binaries is None or not (binaries / "initdb").exists():
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    # Not under pytest's tmp_path: the postgres user cannot enter root's 0700 folders there.
    folder = Path(tempfile.mkdtemp(prefix="addons-outage-pg."))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    cluster = PostgresCluster(binaries, folder, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


#: How the outage tests seed their sandbox (the `sandbox` fixture of tests/conftest.py).
SANDBOX = pytest.mark.sandbox(seed=13, sizes=Sizes(projects=PROJECTS))


def app_settings(
    database_url: str, sandbox: Sandbox, tmp_path: Path, reference_dir: Path, **overrides: Any
) -> UniversalWebhookSettings:
    """Settings of an app pointed at the sandbox, with short leases, polls and backoffs."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "encryption_keys": (generate_key(),),
        **sandbox_settings(sandbox, tmp_path, reference_dir),
        "bootstrap_enabled": False,
        "job_workers": WORKERS,
        "job_lease_seconds": LEASE_SECONDS,
        "job_poll_seconds": 0.2,
        "job_backoff_seconds": 0.2,
        "job_backoff_max_seconds": 1.0,
        "shutdown_grace_seconds": 5,
        "log_level": "CRITICAL",
        **overrides,
    }
    return UniversalWebhookSettings(**values)


@dataclass
class SmallDisk:
    """A size-limited tmpfs the test can fill up and free again."""

    folder: Path

    @property
    def filler(self) -> Path:
        return self.folder / "filler"

    def fill(self) -> None:
        """Write zeros until the disk is full (ENOSPC), in smaller and smaller pieces."""
        descriptor = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
                with contextlib.suppress(OSError):
                    while os.write(descriptor, b"\0" * size):
                        pass
        finally:
            os.close(descriptor)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk() -> Iterator[SmallDisk]:
    """A 16 MiB tmpfs mounted for the test; skipped where mounting is not permitted."""
    folder = Path(tempfile.mkdtemp(prefix="addons-outage-disk."))
    mounted = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],  # noqa: S607
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        folder.rmdir()
        pytest.skip(
            "mounting a small tmpfs needs root (CAP_SYS_ADMIN): "
            + mounted.stderr.decode(errors="replace").strip()
        )
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)  # noqa: S603, S607
        folder.rmdir()
