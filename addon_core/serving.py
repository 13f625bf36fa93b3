"""Serving an app with uvicorn: in this process, or in N worker processes sharing one socket.

With `--workers N` the parent binds the socket, prepares the pod's Prometheus
multiprocess directory (emptied at start: files of an earlier run would be summed in)
and supervises N spawned workers; each worker builds the app from the environment
through `worker_app`. SQLite is refused: it has one writer, and every worker writes.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar
from uvicorn.supervisors import Multiprocess

from addon_core.errors import ConfigError
from addon_core.settings import MULTIPROC_DIR_VARIABLE, SERVED_APP_VARIABLE, AddonSettings
from addon_core.web.client_limits import ClientLimits, GuardedHttpToolsProtocol

#: The factory each worker process imports (uvicorn needs an import string for workers).
WORKER_FACTORY = "addon_core.serving:worker_app"
#: How long a worker may take to answer the supervisor's ping before it is killed and
#: replaced: a spawned worker imports the whole app first, slow on a busy node.
WORKER_HEALTHCHECK_SECONDS = 60


def serve_app(
    application: Litestar,
    settings: AddonSettings,
    *,
    host: str,
    workers: int,
    fd: int | None = None,
) -> bool:
    """Serve until SIGTERM; return False if the server never started.

    `fd` is a listening socket inherited from the parent (the sandbox binds the port
    itself and hands it over, so nothing can take it between its check and the app).
    """
    tune_garbage_collector()
    if workers == 1:
        server = GracefulServer(uvicorn.Config(application, **_server_options(settings, host)))
        server.run(sockets=[socket.socket(fileno=fd)] if fd is not None else None)
        return server.started
    check_workers_allowed(settings, workers)
    with multiprocess_directory() as folder:
        os.environ[MULTIPROC_DIR_VARIABLE] = str(folder)
        os.environ[SERVED_APP_VARIABLE] = settings.app_name
        # Workers read their settings from the environment: carry a --port override over.
        os.environ[settings.env_name("port")] = str(settings.port)
        config = uvicorn.Config(
            WORKER_FACTORY,
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **_server_options(settings, host),
        )
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    return True


def server_config(app: Any, settings: AddonSettings, *, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration of one in-process server (tests serve on port 0)."""
    return uvicorn.Config(app, **{**_server_options(settings, host), "port": port})


def check_workers_allowed(settings: AddonSettings, workers: int) -> None:
    """Raise `ConfigError` when the database cannot take several writing processes."""
    if workers > 1 and settings.database_url.startswith("sqlite"):
        raise ConfigError(
            f"--workers {workers} needs PostgreSQL: SQLite allows one writer and every worker "
            f"writes; set {settings.env_name('database_url')} to postgresql+asyncpg://… "
            "or serve with --workers 1 (scale out with more pods on one PostgreSQL)"
        )


@contextlib.contextmanager
def multiprocess_directory() -> Iterator[Path]:
    """The metrics directory of this pod, emptied; a temporary one when none is configured."""
    configured = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not configured:
        folder = Path(tempfile.mkdtemp(prefix="clockify-addons-metrics-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    folder = Path(configured)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    yield folder


def worker_app() -> Litestar:
    """Build the app a worker process serves, from the environment its parent set."""
    # Imported here: the apps import addon_core, and only a worker needs them.
    from addon_core.app import create_addon_app
    from addon_core.apps import load_spec
    from addon_core.logs import configure_logging
    from addon_core.settings import load_settings
    from addon_core.tracing import configure_tracing

    spec = load_spec(os.environ[SERVED_APP_VARIABLE])
    settings = load_settings(spec.settings_class)
    configure_logging(settings.log_level_number, settings.log_format)
    configure_tracing(settings.app_name, settings.tracing, settings.env_name("tracing"))
    GuardedHttpToolsProtocol.limits = ClientLimits.from_settings(settings)
    application = create_addon_app(spec, settings)
    application.on_shutdown.append(_forget_live_gauges)
    tune_garbage_collector()
    return application


def _forget_live_gauges() -> None:
    """Drop this worker's live gauges from the shared directory as it exits."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _server_options(settings: AddonSettings, host: str) -> dict[str, Any]:
    """uvicorn's options: uvloop, httptools behind the client guard, keep-alive and
    connection bounds. The guard's limits are a class attribute (a worker process sets
    them again from its settings: the class crosses to it by name)."""
    GuardedHttpToolsProtocol.limits = ClientLimits.from_settings(settings)
    return {
        "host": host,
        "port": settings.port,
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": GuardedHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "limit_concurrency": settings.max_connections,
        "lifespan": "on",
        "access_log": False,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": max(1, round(settings.shutdown_grace_seconds)),
    }


def tune_garbage_collector() -> None:
    """Keep the cyclic GC off the request path's tail latency.

    Everything alive after start-up (modules, the app) is frozen out of collection,
    and young collections run less often: full collections over the whole heap were
    what set the webhook path's p99 (docs/performance.md). Collection is turned on here
    if `serve` turned it off for the start-up. Nothing is collected first: start-up leaves
    about a thousand unreachable objects among the 200,000 it keeps, and a full collection
    to find them took a tenth of a second of every start.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 100)
    gc.enable()


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful shutdown; here that shutdown exits 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()
