"""The sandbox: a real HTTP server on loopback that plays Clockify for the add-on apps.

    async with Sandbox.running(seed=1) as sandbox:
        workspace = sandbox.create_workspace("api-studio")
        await sandbox.install(app_url, manifest, workspace)

`Sandbox.in_thread()` runs the same server on its own loop for synchronous callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException

from addon_core.clockify.manifest import Manifest
from addon_core.clockify.tokens import TokenSigner
from addon_core.errors import AddonError, BadRequestError, ConflictError, NotFoundError
from addon_core.sandbox import driver
from addon_core.sandbox.gate import Fault, Gate, RecordedRequest
from addon_core.sandbox.loopback import LoopbackServer
from addon_core.sandbox.routes import api_router, handle_addon_error, handle_http_exception
from addon_core.sandbox.seed import Sizes
from addon_core.sandbox.store import MAX_USER_WEBHOOKS, MAX_WORKSPACE_WEBHOOKS, SandboxStore
from addon_core.sandbox.workspace import Workspace

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_RATE_LIMIT = 50


class Sandbox:
    """Clockify on loopback: seeded data, signed tokens, a rate limit and injectable faults.

    Args:
        seed: everything seeded (ids, names, dates) is the same for the same seed.
        rate_limit: requests per workspace in any 1-second window before 429s.
        retry_after: seconds for the `Retry-After` header of a 429 (None: no header,
            as Clockify documents none).
        private_key: the RSA key tokens are signed with; a fresh one by default.
        reference_dir: the folder with `webhook-samples.json` for default payloads.
        clock: the monotonic clock of the rate limit and the request log.
        webhooks_per_user / webhooks_per_workspace: how many webhooks `createWebhook`
            accepts before it refuses with Clockify's error body (Clockify's limits by
            default).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        sizes: Sizes | None = None,
        rate_limit: int = DEFAULT_RATE_LIMIT,
        retry_after: float | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        reference_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
        webhooks_per_user: int = MAX_USER_WEBHOOKS,
        webhooks_per_workspace: int = MAX_WORKSPACE_WEBHOOKS,
    ) -> None:
        self.private_key = private_key or rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
        self.store = SandboxStore(
            seed,
            sizes,
            webhooks_per_user=webhooks_per_user,
            webhooks_per_workspace=webhooks_per_workspace,
        )
        self.samples = driver.load_samples(reference_dir)
        self.workspaces: dict[str, Workspace] = {}
        # Imported here: the control endpoints take this class as their dependency.
        from addon_core.sandbox import control

        self.app = Litestar(
            route_handlers=[api_router(), *control.HANDLERS],
            state=State({"store": self.store, "signing_key": self.private_key, "sandbox": self}),
            dependencies={"sandbox": Provide(control.provide_sandbox, sync_to_thread=False)},
            exception_handlers={
                AddonError: handle_addon_error,
                HTTPException: handle_http_exception,
            },
            openapi_config=None,
            logging_config=None,
        )
        self.gate = Gate(
            self.app,
            public_key=self.private_key.public_key(),
            rate_limit=rate_limit,
            retry_after=retry_after,
            clock=clock,
        )
        self._server = LoopbackServer(self.gate, host=host, port=port)
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._target: tuple[str, Workspace] | None = None
        self._manifest: Manifest | None = None
        self._settings: dict[str, Any] = {}

    # --- lifetime ------------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, **options: Any) -> AsyncIterator[Sandbox]:
        """Serve a sandbox on this event loop for the block (options as for `Sandbox`)."""
        sandbox = cls(**options)
        await sandbox.start()
        try:
            yield sandbox
        finally:
            await sandbox.stop()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **options: Any) -> Iterator[Sandbox]:
        """Serve a sandbox on an event loop of its own thread; `run_sync` calls into it."""
        sandbox = cls(**options)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="clockify-sandbox", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(sandbox.start(), loop).result()
            try:
                yield sandbox
            finally:
                asyncio.run_coroutine_threadsafe(sandbox.stop(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def run_sync(self, awaitable: Awaitable[T]) -> T:
        """Run a coroutine (`install`, `fire`, ...) on the sandbox's loop from another thread."""
        if self._loop is None:
            raise RuntimeError("the sandbox is not running")

        async def wrapper() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result()

    async def start(self) -> None:
        """Bind the port (0 picks a free one) and serve until `stop`."""
        self._loop = asyncio.get_running_loop()
        await self._server.start()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._running = True
        log.info("Clockify sandbox on %s", self.url)

    async def stop(self) -> None:
        """Stop serving and close the driver's connections."""
        self._running = False
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._server.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, once started."""
        if not self._running:
            raise RuntimeError("the sandbox is not running: use Sandbox.running()")
        return self._server.url

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("the sandbox is not running: use Sandbox.running()")
        return self._http

    # --- keys, workspaces, tokens ---------------------------------------------------------------

    @property
    def public_key_pem(self) -> bytes:
        """The PEM an app verifies sandbox tokens with (`{P}CLOCKIFY_PUBLIC_KEY_FILE`)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_public_key(self, path: Path) -> Path:
        """Write the public key PEM to `path` and return it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.public_key_pem)
        return path

    def signer(self, addon_key: str) -> TokenSigner:
        """Return a signer of tokens for the add-on `addon_key` (their `sub`)."""
        return TokenSigner(self.private_key, addon_key)

    def base_urls(self, workspace: Workspace | None = None) -> dict[str, str]:
        """Return the base-URL claims an installation token carries (the same for every one)."""
        return {
            "backendUrl": f"{self.url}/api",
            "reportsUrl": f"{self.url}/reports",
            "ptoUrl": f"{self.url}/pto",
        }

    def create_workspace(self, addon_key: str, *, name: str | None = None) -> Workspace:
        """Seed a new workspace with the add-on `addon_key` about to be installed in it."""
        ids = [self.store.new_id() for _ in range(3)]
        workspace = Workspace(
            self.signer(addon_key),
            workspace_id=ids[0],
            addon_id=ids[1],
            owner_id=ids[2],
            base_urls=self.base_urls(),
        )
        signer = self.signer("clockify-integrations")
        self.store.add_workspace(
            workspace.workspace_id,
            workspace.owner_id,
            name=name or f"Sandbox workspace {len(self.workspaces) + 1}",
            sign_webhook=lambda event: signer.token(ids[0], ids[1], eventType=event),
        )
        self.workspaces[workspace.workspace_id] = workspace
        return workspace

    # --- what tests inspect and steer -------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every API request so far: (method, path, status, monotonic time, JSON body)."""
        return self.gate.requests

    @property
    def throttled(self) -> int:
        """How many requests were answered 429."""
        return self.gate.throttled

    def peak_rate(self, workspace_id: str | None = None, window: float = 1.0) -> int:
        """Return the most requests that arrived within any `window` seconds."""
        return self.gate.peak_rate(workspace_id, window)

    def inject(
        self,
        status: int | None = 503,
        *,
        times: int | None = 1,
        path_contains: str = "",
        method: str | None = None,
        retry_after: float | None = None,
        latency: float = 0.0,
        drop: bool = False,
    ) -> Fault:
        """Fail the next `times` matching requests (None: until cleared); first match wins."""
        fault = Fault(
            status=status,
            times=times,
            path_contains=path_contains,
            method=method.upper() if method else None,
            retry_after=retry_after,
            latency=latency,
            drop=drop,
        )
        self.gate.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.gate.faults.clear()

    def reset(self) -> None:
        """Forget recorded requests, faults, 429 counts and the rate-limit window."""
        self.gate.requests.clear()
        self.gate.faults.clear()
        self.gate.limiter.clear()
        self.gate.throttled = 0

    # --- Clockify's calls to an app (see driver) -------------------------------------------------

    async def fetch_manifest(self, app_url: str) -> dict[str, Any]:
        """GET the app's manifest, as Clockify does when the add-on is registered."""
        return await driver.fetch_manifest(self.http, app_url)

    async def install(
        self, app_url: str, manifest: driver.ManifestLike, workspace: Workspace
    ) -> httpx.Response:
        """Send the signed INSTALLED call for `workspace` to the app at `app_url`."""
        self._target = (app_url, workspace)
        self._manifest = manifest if isinstance(manifest, Manifest) else Manifest(manifest)
        self._settings = self._manifest.setting_defaults()
        return await driver.send_installed(self.http, app_url, manifest, workspace)

    async def lifecycle(
        self,
        app_url: str,
        manifest: driver.ManifestLike,
        workspace: Workspace,
        lifecycle_type: str,
        body: dict[str, Any],
    ) -> httpx.Response:
        """Send another lifecycle call (STATUS_CHANGED, SETTINGS_UPDATED, DELETED)."""
        return await driver.send_lifecycle(
            self.http, app_url, manifest, workspace, lifecycle_type, body
        )

    def payload(self, workspace: Workspace, event_type: str) -> dict[str, Any]:
        """Return the default payload of an event in the workspace."""
        return driver.event_payload(event_type, workspace.workspace_id, self.samples, self.store)

    async def fire(
        self, app_url: str, workspace: Workspace, event_type: str, payload: Any = None
    ) -> httpx.Response:
        """Deliver a signed webhook to the path the add-on declares for `event_type`."""
        body = self.payload(workspace, event_type) if payload is None else payload
        return await driver.send_webhook(self.http, app_url, workspace, event_type, body)

    async def fire_registered(
        self, workspace: Workspace, event_type: str, payload: Any = None
    ) -> list[httpx.Response]:
        """Deliver an event to every webhook registered for it through the webhooks API."""
        body = self.payload(workspace, event_type) if payload is None else payload
        hooks = self.store.entities(workspace.workspace_id, "webhooks")
        return [
            await driver.deliver(self.http, hook["url"], hook["authToken"], event_type, body)
            for hook in hooks
            if hook["webhookEvent"] == event_type and hook["enabled"]
        ]

    @property
    def installed(self) -> tuple[str, Workspace]:
        """The app URL and workspace of the last `install`, which control endpoints act on."""
        if self._target is None:
            raise ConflictError("nothing is installed yet: send INSTALLED to an app first")
        return self._target

    async def fire_at_target(self, event_type: str, payload: Any = None) -> list[httpx.Response]:
        """Deliver to the app and workspace of the last `install`: on the manifest's path
        for an event the manifest declares, else to each webhook the app registered for it.

        Raises `NotFoundError` when the app receives the event neither way.
        """
        app_url, workspace = self.installed
        declared = driver.manifest_events(self._manifest or {})
        if event_type in declared:
            return [await self.fire(app_url, workspace, event_type, payload)]
        delivered = await self.fire_registered(workspace, event_type, payload)
        if not delivered:
            registered = sorted(
                {
                    hook["webhookEvent"]
                    for hook in self.store.entities(workspace.workspace_id, "webhooks")
                }
            )
            raise NotFoundError(
                f"the app receives no {event_type}: its manifest declares "
                f"{', '.join(declared) or 'no event'} and it registered "
                f"{', '.join(registered) or 'no webhook'} through the webhooks API"
            )
        return delivered

    async def update_settings(self, values: Mapping[str, Any]) -> httpx.Response:
        """Change settings of the last `install` and send SETTINGS_UPDATED with all of them.

        Raises `BadRequestError` naming the declared ids when `values` holds another one.
        """
        app_url, workspace = self.installed
        manifest = self._manifest or Manifest({})
        names = manifest.setting_names()
        unknown = sorted(set(values) - names.keys())
        if unknown:
            raise BadRequestError(
                f"the manifest declares no setting {', '.join(unknown)}; "
                f"its settings are {', '.join(names) or 'none'}"
            )
        self._settings.update(values)
        body = {
            "workspaceId": workspace.workspace_id,
            "addonId": workspace.addon_id,
            "settings": [
                {"id": key, "name": names[key], "value": value}
                for key, value in self._settings.items()
            ],
        }
        return await self.lifecycle(app_url, manifest, workspace, "SETTINGS_UPDATED", body)
