"""Custom inbound webhooks, receiving: a delivery verified, limited and handed to the intake.

A delivery to `POST /webhooks/custom/{id}` is checked in this order: the endpoint
exists (404), the body size (413), the Standard Webhooks signature and timestamp (401),
its per-endpoint rate limit (429, `Retry-After`), the body is one JSON object
(400: flows address `event.<field>`, and jobs are ordered by the payload's `id`), and
the event type (from the endpoint's header or dotted JSON path; `custom` when absent).
Then the intake writer stores it as an event with source `custom`; the installation
must be installed and active at commit (409 otherwise). Nothing of a refused request
is stored. A request that fails before its signature passes is charged to the
endpoint's separate budget of invalid requests (the same size; 429 once spent), never
to the budget of its signed deliveries, so an unsigned flood cannot block them.

Replays: the dedupe key is SHA-256 over the endpoint id and `webhook-id`. A delivery
passes only within the tolerance of its timestamp, so two copies of one delivery arrive
less than 2 x tolerance apart. The tolerance used is therefore at most half the dedupe
window (`{P}DEDUPE_WINDOW_SECONDS`, 600 s by default, against 300 s): a replay that
passes the signature is always a duplicate (answered 200 like the first, stored once).
A shorter window narrows the tolerance, with a warning at start-up.

Secrets are encrypted under the endpoint's add-on, workspace and id. The intake keeps
the decrypted secrets of an endpoint for `CACHE_SECONDS` (a database read per delivery
otherwise); rotation and deletion drop the entry in this process, other processes see
them within `CACHE_SECONDS`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.params import FromPath

from addon_core.errors import (
    AddonError,
    BadRequestError,
    NotFoundError,
    TooManyRequestsError,
)
from addon_core.intake.standard_webhooks import verify
from addon_core.intake.writer import Delivery, Outcome
from addon_core.rate_limit import RateLimiter
from addon_core.redaction import redact, redact_text, safe_headers
from addon_core.runtime import AddonRuntime
from addon_core.settings import AddonSettings
from addon_core.storage.models import Endpoint
from addon_core.storage.vault import endpoint_purpose, token_context
from addon_core.web.body import header_map, parse_json_object, read_body

log = logging.getLogger(__name__)

CUSTOM_PATH_PREFIX = "/webhooks/custom/"
#: The event type of a delivery whose endpoint names no source, or whose source is absent.
DEFAULT_EVENT_TYPE = "custom"
#: `events.event_type` holds 64 characters.
MAX_EVENT_TYPE_LENGTH = 64
CACHE_SECONDS = 5.0
CACHE_SIZE = 10_000

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BODIES = {outcome: b'{"status":"%s"}' % outcome.value.encode() for outcome in Outcome}


class RateLimitedError(TooManyRequestsError):
    """The endpoint received more deliveries than its limit per minute."""

    def __init__(self, detail: str, *, headers: dict[str, str]) -> None:
        super().__init__(detail, reason="rate_limited", headers=headers)


# --- set-up ------------------------------------------------------------------------------------


def setup_endpoints(runtime: AddonRuntime) -> None:
    """Warn when the dedupe window narrows the timestamp tolerance of custom webhooks."""
    settings = runtime.settings
    tolerance = replay_safe_tolerance(settings)
    if tolerance < settings.custom_webhook_tolerance_seconds:
        log.warning(
            "custom webhooks accept timestamps within %ds, not %s=%d: a replay must still "
            "be inside %s=%d; raise it to at least %d for the full tolerance",
            tolerance,
            settings.env_name("custom_webhook_tolerance_seconds"),
            settings.custom_webhook_tolerance_seconds,
            settings.env_name("dedupe_window_seconds"),
            settings.dedupe_window_seconds,
            2 * settings.custom_webhook_tolerance_seconds,
        )


def replay_safe_tolerance(settings: AddonSettings) -> int:
    """The timestamp tolerance, at most half the dedupe window (see the module docstring)."""
    return min(settings.custom_webhook_tolerance_seconds, settings.dedupe_window_seconds // 2)


# --- the secrets cache -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receiver:
    """What the intake needs of an endpoint, secrets decrypted."""

    endpoint_id: str
    workspace_id: str
    secret: str
    previous_secret: str | None
    previous_until: datetime | None
    event_type_path: str | None
    event_type_header: str | None
    rate_limit: int

    def secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while its grace period lasts."""
        if self.previous_secret and self.previous_until and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]


class ReceiverCache:
    """Endpoints by id for a few seconds, least recently used dropped beyond `size`."""

    def __init__(self, ttl: float = CACHE_SECONDS, size: int = CACHE_SIZE) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, tuple[float, Receiver]] = OrderedDict()

    def get(self, endpoint_id: str) -> Receiver | None:
        item = self._items.get(endpoint_id)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[endpoint_id]
            return None
        self._items.move_to_end(endpoint_id)
        return item[1]

    def put(self, receiver: Receiver) -> None:
        self._items[receiver.endpoint_id] = (time.monotonic() + self._ttl, receiver)
        self._items.move_to_end(receiver.endpoint_id)
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def forget(self, endpoint_id: str) -> None:
        self._items.pop(endpoint_id, None)


def rate_limiter(state: State) -> RateLimiter:
    """The app's per-endpoint rate limiter (one per app, made on first use)."""
    limiter = state.get("custom_rate_limiter")
    if limiter is None:
        runtime: AddonRuntime = state.runtime
        limit = runtime.settings.custom_webhook_rate_limit_per_minute
        limiter = state["custom_rate_limiter"] = RateLimiter(limit)
    assert isinstance(limiter, RateLimiter)
    return limiter


def receiver_cache(state: State) -> ReceiverCache:
    """The app's cache of endpoints (one per app, made on first use)."""
    cache = state.get("custom_receivers")
    if cache is None:
        cache = state["custom_receivers"] = ReceiverCache()
    assert isinstance(cache, ReceiverCache)
    return cache


def secret_context(runtime: AddonRuntime, endpoint: Endpoint) -> str:
    return token_context(runtime.addon_key, endpoint.workspace_id, endpoint_purpose(endpoint.id))


def _receiver(runtime: AddonRuntime, endpoint: Endpoint) -> Receiver:
    context = secret_context(runtime, endpoint)
    previous = endpoint.previous_secret
    return Receiver(
        endpoint_id=endpoint.id,
        workspace_id=endpoint.workspace_id,
        secret=runtime.key_ring.decrypt(endpoint.secret, context),
        previous_secret=runtime.key_ring.decrypt(previous, context) if previous else None,
        previous_until=endpoint.previous_secret_expires_at,
        event_type_path=endpoint.event_type_path,
        event_type_header=endpoint.event_type_header,
        rate_limit=endpoint.rate_limit_per_minute,
    )


async def _find_receiver(state: State, runtime: AddonRuntime, endpoint_id: str) -> Receiver:
    cache = receiver_cache(state)
    receiver = cache.get(endpoint_id)
    if receiver is not None:
        return receiver
    endpoint = None
    if _ID.fullmatch(endpoint_id):
        async with runtime.sessions() as session:
            endpoint = await session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.addon_key != runtime.addon_key:
        raise NotFoundError(
            f"no custom webhook endpoint {endpoint_id}; create one with POST /api/endpoints "
            "and send to the url it answers"
        )
    receiver = _receiver(runtime, endpoint)
    cache.put(receiver)
    return receiver


# --- intake ------------------------------------------------------------------------------------


@post(f"{CUSTOM_PATH_PREFIX}{{endpoint_id:str}}", status_code=200, name="custom-webhook")
async def receive_custom_webhook(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str]
) -> Response[bytes]:
    """Verify one custom delivery, store it and acknowledge it once committed."""
    runtime: AddonRuntime = request.app.state.runtime
    counter = runtime.metrics.custom_webhooks
    limiter = rate_limiter(request.app.state)
    rate_headers: dict[str, str] = {}
    try:
        receiver = await _find_receiver(request.app.state, runtime, endpoint_id)
        try:
            verified = await _verify(request, runtime, receiver)
        except AddonError:
            _charge(limiter, f"endpoint-invalid:{endpoint_id}", receiver.rate_limit, "invalid ")
            raise
        rate_headers = _charge(limiter, f"endpoint:{endpoint_id}", receiver.rate_limit, "")
        delivery = _parse(receiver, *verified, max_depth=runtime.settings.max_json_depth)
        outcome = await runtime.intake.submit(delivery)
    except AddonError as exc:
        outcome_label = "rate_limited" if isinstance(exc, RateLimitedError) else "rejected"
        counter.labels(runtime.addon_key, outcome_label).inc()
        runtime.metrics.count_rejection(runtime.addon_key, exc.reason)
        log.info("custom webhook %s refused with %d: %s", endpoint_id, exc.status_code, exc.detail)
        if isinstance(exc, RateLimitedError):
            rate_headers = exc.headers
        return _error_response(exc, rate_headers)
    counter.labels(runtime.addon_key, outcome.value).inc()
    return Response(_BODIES[outcome], media_type="application/json", headers=rate_headers)


def _charge(limiter: RateLimiter, key: str, limit: int, kind: str) -> dict[str, str]:
    """Count one request against a budget; its rate headers, or 429 once it is spent."""
    decision = limiter.check(key, limit)
    if not decision.allowed:
        raise RateLimitedError(
            f"this endpoint accepts {decision.limit} {kind}deliveries a minute; "
            f"retry after {decision.reset_seconds}s",
            headers=decision.headers(),
        )
    return decision.headers()


async def _verify(
    request: Request[Any, Any, Any], runtime: AddonRuntime, receiver: Receiver
) -> tuple[str, dict[str, str], bytes]:
    """Read the body and check its signature: the `webhook-id`, headers and body."""
    settings = runtime.settings
    headers = header_map(request)
    body = await read_body(
        request, headers, settings.max_body_bytes, settings.client_body_timeout_seconds
    )
    msg_id = verify(
        headers,
        body,
        receiver.secrets(datetime.now(UTC)),
        # `verify` truncates the skew to whole seconds, so it admits up to tolerance + 0.99 s;
        # one second less admits strictly less than the tolerance either way, and two copies
        # of a delivery then arrive less than 2 x tolerance apart: within the dedupe window.
        tolerance=max(replay_safe_tolerance(settings) - 1, 0),
    )
    return msg_id, headers, body


def _parse(
    receiver: Receiver, msg_id: str, headers: dict[str, str], body: bytes, *, max_depth: int
) -> Delivery:
    """Turn a verified delivery into what the intake stores."""
    payload = parse_json_object(body, max_depth=max_depth)
    event_type = _event_type(receiver, headers, payload)
    key = hashlib.sha256(f"custom\n{receiver.endpoint_id}\n{msg_id}".encode()).hexdigest()
    return Delivery(
        workspace_id=receiver.workspace_id,
        event_type=event_type,
        path=f"{CUSTOM_PATH_PREFIX}{receiver.endpoint_id}",
        addon_id=None,
        token_digest=b"",
        dedupe_key=key,
        payload=body.decode(),  # valid UTF-8: it parsed as JSON
        headers=safe_headers(headers),
        source="custom",
        endpoint_id=receiver.endpoint_id,
    )


def _event_type(receiver: Receiver, headers: dict[str, str], payload: dict[str, Any]) -> str:
    """Read the event type where the endpoint says; `custom` when it names no place or is absent."""
    if receiver.event_type_header:
        where = f"header {receiver.event_type_header}"
        value: Any = headers.get(receiver.event_type_header)
    elif receiver.event_type_path:
        where = f"body field {receiver.event_type_path}"
        value = _lookup(payload, receiver.event_type_path)
    else:
        return DEFAULT_EVENT_TYPE
    if value is None or value == "":
        return DEFAULT_EVENT_TYPE
    if not isinstance(value, str) or len(value) > MAX_EVENT_TYPE_LENGTH:
        raise BadRequestError(
            f"the event type in {where} must be a string of at most "
            f"{MAX_EVENT_TYPE_LENGTH} characters"
        )
    return value


def _lookup(value: Any, path: str) -> Any:
    """Follow a dotted path: names select object members, numbers list items."""
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _error_response(exc: AddonError, headers: dict[str, str]) -> Response[Any]:
    content: dict[str, Any] = {"status_code": exc.status_code, "detail": redact_text(exc.detail)}
    if exc.extra:
        content["extra"] = redact(exc.extra)
    return Response(content, status_code=exc.status_code, headers=headers)
