"""Outbound `http` flow actions: signed requests to allowed, public hosts, over one pool.

OutboundRefusedError  422, the URL or the address it resolves to may not be called; nothing
                      sent (`flows.outbound_target`, which vets URLs and addresses)
OutboundError         502, no answer (transport error, timeout); or a non-2xx, via raise_for_status

This module signs and sends the request and reads the start of its answer; the connection
it goes over is `outbound_target`'s, pinned to an address vetted as it was resolved.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from addon_core.errors import AddonError
from addon_core.flows.outbound_target import (
    OutboundRefusedError,
    Resolver,
    check_url,
    pinned_transport,
)
from addon_core.http_semantics import retry_after_seconds
from addon_core.intake.standard_webhooks import signature_headers
from addon_core.redaction import redact_text, safe_headers

USER_AGENT = "clockify-addons"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_EXCERPT_BYTES = 2048

#: Headers a flow may not set: they belong to the connection, or would retarget the request.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
     "te", "trailer", "proxy-authorization", "proxy-connection"}
)  # fmt: skip


class OutboundError(AddonError):
    """The request failed: no answer, or (from `raise_for_status`) a non-2xx answer.

    `retryable` is true for transport errors, timeouts, 429 and 5xx; `maybe_delivered` is
    false only when the connection was never made, so even a POST may be sent again.
    """

    status_code = 502

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool,
        maybe_delivered: bool = True,
        result: OutboundResult | None = None,
        reason: str,
    ) -> None:
        super().__init__(detail, reason=reason)
        self.retryable = retryable
        self.maybe_delivered = maybe_delivered
        self.result = result


@dataclass(frozen=True, slots=True)
class OutboundResult:
    """The answer, whatever its status (a 3xx is returned, never followed)."""

    status: int
    headers: dict[str, str]
    body_excerpt: str
    elapsed: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status == 429 or self.status >= 500

    @property
    def status_class(self) -> str:
        """Return `2xx`, `3xx`, ...: a bounded metrics label."""
        return f"{self.status // 100}xx"

    @property
    def retry_after(self) -> float | None:
        """Return the `Retry-After` delay in seconds, if the answer gave one."""
        return retry_after_seconds(self.headers.get("retry-after"))

    def raise_for_status(self) -> OutboundResult:
        """Return self if 2xx, else raise `OutboundError` carrying this result."""
        if self.ok:
            return self
        raise OutboundError(
            f"the receiver answered {self.status}",
            retryable=self.retryable,
            result=self,
            reason=f"status_{self.status_class}",
        )


class OutboundHttp:
    """Send the `http` actions of flows over one shared connection pool.

    Args:
        allow_private_networks: test only; admits http:// and loopback/private addresses.
        resolver: resolves host names; tests pass a fixed table.
        ssl_context: the CAs to trust; tests pass one trusting their own certificate.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 10.0,
        allow_private_networks: bool = False,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        excerpt_bytes: int = DEFAULT_EXCERPT_BYTES,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.allow_private_networks = allow_private_networks
        self._excerpt_bytes = excerpt_bytes
        self._client = httpx.AsyncClient(
            transport=pinned_transport(
                resolver, allow_private_networks=allow_private_networks, ssl_context=ssl_context
            ),
            timeout=httpx.Timeout(timeout_seconds),
            follow_redirects=False,
            trust_env=False,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> OutboundHttp:
        """Build from `AddonSettings` (`outbound_timeout_seconds`, `..._allow_private_networks`)."""
        return cls(
            timeout_seconds=settings.outbound_timeout_seconds,
            allow_private_networks=settings.outbound_allow_private_networks,
        )

    async def __aenter__(self) -> OutboundHttp:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        secret: str,
        allowed_hosts: Collection[str],
    ) -> OutboundResult:
        """Send one signed request and return the answer, whatever its status.

        Raises `OutboundRefusedError` before anything is sent, `OutboundError` when no
        answer came within `timeout_seconds` (the whole exchange, not each read).
        """
        method = method.upper()
        if method not in METHODS:
            raise OutboundRefusedError(
                f"method {method!r} is not one of {', '.join(sorted(METHODS))}",
                reason="invalid_method",
            )
        target = check_url(url, allowed_hosts, allow_http=self.allow_private_networks)
        host = target.host
        payload = body or b""
        request_headers = _request_headers(headers, payload, secret)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_seconds):
                request = self._client.build_request(
                    method, target, headers=request_headers, content=payload or None
                )
                response = await self._client.send(request, stream=True)
                try:
                    status, excerpt = response.status_code, await self._excerpt(response)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise OutboundError(
                f"{host} did not answer within {self.timeout_seconds:g}s",
                retryable=True,
                maybe_delivered=not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout),
                reason="timeout",
            ) from None
        except httpx.TransportError as exc:
            raise OutboundError(
                f"could not reach {host}: {redact_text(str(exc)) or type(exc).__name__}",
                retryable=True,
                maybe_delivered=not isinstance(exc, httpx.ConnectError),
                reason="transport_error",
            ) from None
        return OutboundResult(
            status=status,
            headers=safe_headers(response.headers),
            body_excerpt=excerpt,
            elapsed=time.perf_counter() - started,
        )

    async def _excerpt(self, response: httpx.Response) -> str:
        """Read at most `excerpt_bytes` of the body, leave the rest unread, redact it."""
        encoding = response.headers.get("content-encoding", "identity").lower()
        if encoding != "identity":
            # Decoding could expand a small read into a huge one; the raw bytes say nothing.
            return f"[{encoding}-encoded body not shown]"
        collected = bytearray()
        truncated = False
        async for chunk in response.aiter_raw():
            collected += chunk
            if len(collected) > self._excerpt_bytes:
                truncated = True
                break
        text = bytes(collected[: self._excerpt_bytes]).decode("utf-8", errors="replace")
        return redact_text(text) + ("…" if truncated else "")


def _request_headers(headers: Mapping[str, str], payload: bytes, secret: str) -> dict[str, str]:
    """The flow's headers less the reserved ones, then ours and the signature over `payload`."""
    return _merge(
        {k: v for k, v in headers.items() if k.lower() not in _RESERVED_HEADERS},
        {"user-agent": USER_AGENT, "accept-encoding": "identity"},
        {"content-type": "application/json"} if payload else {},
        signature_headers(secret, payload),
    )


def _merge(*parts: Mapping[str, str]) -> dict[str, str]:
    """Merge header mappings case-insensitively, later parts winning."""
    merged: dict[str, str] = {}
    for part in parts:
        for key, value in part.items():
            merged[key.lower()] = value
    return merged
