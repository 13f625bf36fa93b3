"""The one client of Clockify's API: allowlisted hosts, per-workspace pacing, bounded retries.

ClockifyAPIError          502, Clockify refused the call (a 3xx or 4xx); carries its status
                          and its `message`; never retried
ClockifyUnavailableError  503, no answer, or a 5xx, after the retries the method allows

Retries (stamina's rules): 429 (waiting `Retry-After`, capped), 5xx and transport errors,
for idempotent methods; POST and PATCH only when the request provably never left
(the connection was never made), since a retry could otherwise create twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from addon_core.clockify.hosts import HostAllowlist
from addon_core.clockify.pacing import Lane, Pacer
from addon_core.clockify.transport import create_http_client
from addon_core.errors import AddonError, ServiceUnavailableError
from addon_core.http_semantics import IDEMPOTENT_METHODS, retry_after_seconds
from addon_core.metrics import Metrics
from addon_core.redaction import redact_text
from addon_core.tracing import span

log = logging.getLogger(__name__)

#: Failures raised before any byte of the request was written.
UNSENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)

_MESSAGE_LIMIT = 500


class ClockifyAPIError(AddonError):
    """Clockify answered with a status the call cannot succeed after (a 3xx or 4xx)."""

    status_code = 502

    def __init__(self, status: int, message: str, *, operation: str = "") -> None:
        self.status = status
        self.message = message
        what = f"{operation} " if operation else ""
        super().__init__(
            f"Clockify refused {what}with {status}: {message}",
            extra={"clockify_status": status, "clockify_message": message},
            reason=f"clockify_{status}",
        )


class ClockifyUnavailableError(ServiceUnavailableError):
    """Clockify could not be reached, or kept failing, within the retries allowed."""

    def __init__(
        self, detail: str, *, status: int | None = None, maybe_delivered: bool = True
    ) -> None:
        self.status = status
        #: false only when no attempt got past connecting, so even a POST may be sent again
        self.maybe_delivered = maybe_delivered
        super().__init__(detail, extra={"clockify_status": status}, reason="clockify_unavailable")


@dataclass(frozen=True, slots=True)
class InstallationContext:
    """Who a call is made for: the workspace, its decrypted installation token, its base URLs."""

    workspace_id: str
    token: str = field(repr=False)
    base_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClockifyResponse:
    """Clockify's answer; `elapsed` covers the whole call, pacing and retries included."""

    status: int
    body: Any
    headers: httpx.Headers
    elapsed: float
    attempts: int = 1


class _RetryableStatusError(Exception):
    """A 429 or 5xx answer: the signal to retry, turned into an AddonError before leaving."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"Clockify answered {response.status_code}")
        self.response = response


class ClockifyClient:
    """Call Clockify for an installation over one shared `httpx.AsyncClient`.

    Args:
        http: the shared pool; when left out one is created here and closed by `aclose`.
        sleep: what waits between retries; tests pass a recorder that does not sleep.
    """

    def __init__(
        self,
        *,
        allowlist: HostAllowlist,
        metrics: Metrics,
        pacer: Pacer | None = None,
        http: httpx.AsyncClient | None = None,
        attempts: int = 4,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
        max_retry_after: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1 (got {attempts})")
        self.allowlist = allowlist
        self.metrics = metrics
        self.pacer = pacer or Pacer()
        self._owns_http = http is None
        self.http = http if http is not None else create_http_client()
        self.attempts = attempts
        self.max_retry_after = max_retry_after
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep

    async def aclose(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_http:
            await self.http.aclose()

    async def call(
        self,
        installation: InstallationContext,
        method: str,
        url: str,
        *,
        operation: str,
        lane: Lane = "interactive",
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> ClockifyResponse:
        """Send one call to Clockify, paced and retried; return its 2xx answer.

        Raises `HostNotAllowedError` before any socket if the URL's host is not allowed,
        `ClockifyAPIError` on a 3xx or 4xx, `ClockifyUnavailableError` when retries run out.
        """
        attributes = {"clockify.operation": operation, "http.method": method.upper()}
        with span(f"clockify {operation}", attributes=attributes):
            return await self._call(
                installation, method, url, operation=operation, lane=lane, json=json, params=params
            )

    async def _call(
        self,
        installation: InstallationContext,
        method: str,
        url: str,
        *,
        operation: str,
        lane: Lane = "interactive",
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> ClockifyResponse:
        self.allowlist.check_url(url, what="Clockify URL")
        method = method.upper()
        idempotent = method in IDEMPOTENT_METHODS
        started = time.perf_counter()
        # Parsed once for every attempt: httpx parses a string URL with params twice a request.
        target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        request = _Request(installation, method, url, target, operation, lane, json)
        attempt = 1
        while True:
            try:
                response = await self._attempt(request)
                break
            except (httpx.HTTPError, _RetryableStatusError) as error:
                if attempt >= self.attempts or not _may_retry(error, idempotent):
                    raise self._unavailable(request, error) from None
                delay = self._delay(error, attempt)
                self._record_retry(error, attempt, delay, request)
                await self._sleep(delay)
                attempt += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "Clockify %s %s (%s) answered %d",
                method,
                redact_text(url),
                operation,
                response.status_code,
            )
        return ClockifyResponse(
            status=response.status_code,
            body=_body(response),
            headers=response.headers,
            elapsed=time.perf_counter() - started,
            attempts=attempt,
        )

    async def _attempt(self, request: _Request) -> httpx.Response:
        async with self.pacer.call(request.installation.workspace_id, request.lane) as waited:
            return await self._send(request, waited)

    async def _send(self, request: _Request, waited: float) -> httpx.Response:
        addon = self.metrics.addon
        self.metrics.clockify_pacing_wait.labels(addon, request.lane).observe(waited)
        self.metrics.clockify_budget_use.labels(addon).observe(
            self.pacer.window_use(request.installation.workspace_id)
        )
        started = time.perf_counter()
        try:
            response = await self.http.request(
                request.method,
                request.target,
                json=request.json,
                headers={
                    "X-Addon-Token": request.installation.token,
                    "Accept": "application/json",
                },
                follow_redirects=False,  # even if the shared pool was built to follow them
            )
        except httpx.TransportError:
            self._count(request, "error")
            raise
        finally:
            self.metrics.clockify_duration.labels(addon, request.operation).observe(
                time.perf_counter() - started
            )
        status = response.status_code
        self._count(request, f"{status // 100}xx")
        if status < 300:
            return response
        if status == 429 or status >= 500:
            raise _RetryableStatusError(response)
        message = _message(response)
        log.info(
            "Clockify refused %s %s (%s) with %d: %s",
            request.method,
            redact_text(request.url),
            request.operation,
            status,
            message,
        )
        raise ClockifyAPIError(status, message, operation=request.operation)

    def _delay(self, error: BaseException, attempt: int) -> float:
        """Wait what a 429's Retry-After asks, capped; otherwise back off exponentially."""
        if isinstance(error, _RetryableStatusError) and error.response.status_code == 429:
            retry_after = retry_after_seconds(error.response.headers.get("Retry-After"))
            if retry_after is not None:
                return min(retry_after, self.max_retry_after)
        # Exponential with jitter, capped, as tenacity's wait_exponential_jitter computed it.
        jitter = random.uniform(0, self.backoff_base)  # noqa: S311 - spreads retries, no secret
        backoff: float = self.backoff_base * 2.0 ** (attempt - 1) + jitter
        return min(backoff, self.backoff_max)

    def _record_retry(
        self, error: BaseException, attempt: int, delay: float, request: _Request
    ) -> None:
        reason = _retry_reason(error)
        self.metrics.clockify_retries.labels(self.metrics.addon, request.operation, reason).inc()
        log.warning(
            "Clockify %s %s (%s) failed (%s), attempt %d of %d; retrying in %.2fs",
            request.method,
            redact_text(request.url),
            request.operation,
            redact_text(_describe(error)),
            attempt,
            self.attempts,
            delay,
        )

    def _unavailable(self, request: _Request, error: BaseException | None) -> AddonError:
        status = error.response.status_code if isinstance(error, _RetryableStatusError) else None
        detail = (
            f"Clockify did not complete {request.operation} ({request.method}): "
            f"{redact_text(_describe(error))}"
        )
        # A POST or PATCH is retried only while unsent, so its last error tells whether any
        # attempt got out; an idempotent call may have been sent by an earlier attempt.
        never_sent = request.method not in IDEMPOTENT_METHODS and isinstance(error, UNSENT_ERRORS)
        if request.method not in IDEMPOTENT_METHODS and not never_sent:
            detail += "; not retried, as it may have reached Clockify"
        log.warning("%s (url %s)", detail, redact_text(request.url))
        return ClockifyUnavailableError(detail, status=status, maybe_delivered=not never_sent)

    def _count(self, request: _Request, status_class: str) -> None:
        self.metrics.clockify_requests.labels(
            self.metrics.addon, request.operation, status_class
        ).inc()


@dataclass(frozen=True, slots=True)
class _Request:
    installation: InstallationContext
    method: str
    url: str
    #: the URL with its query parameters, as sent
    target: httpx.URL
    operation: str
    lane: Lane
    json: Any


def _may_retry(error: BaseException, idempotent: bool) -> bool:
    if isinstance(error, _RetryableStatusError):
        return idempotent
    if isinstance(error, httpx.TransportError):
        return idempotent or isinstance(error, UNSENT_ERRORS)
    return False


def _retry_reason(error: BaseException | None) -> str:
    if isinstance(error, _RetryableStatusError):
        return "rate_limited" if error.response.status_code == 429 else "server_error"
    return "transport"


def _describe(error: BaseException | None) -> str:
    if isinstance(error, _RetryableStatusError):
        return str(error)
    if error is None:
        return "no answer"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(response: httpx.Response) -> str:
    """Clockify's `message` field, else the start of the body, redacted."""
    if 300 <= response.status_code < 400:
        location = response.headers.get("Location", "")
        return f"redirect to {redact_text(location)!r} not followed"
    body = _body(response)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    elif isinstance(body, str):
        text = body
    else:
        text = response.reason_phrase
    return redact_text(text[:_MESSAGE_LIMIT])
