"""Outbound `http` flow actions: allowlisted hosts, public addresses only, signed requests.

OutboundRefusedError  422, the URL or the address it resolves to may not be called; nothing sent
OutboundError         502, no answer (transport error, timeout); or a non-2xx, via raise_for_status

The host is resolved once, inside the connection: every address must be public, and the socket
is opened to one of those very addresses while the URL keeps its host name, so the Host header,
TLS SNI and certificate check use the name. A DNS rebind after the check has nothing to redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpcore
import httpx

from addon_core.clockify.hosts import HostAllowlist
from addon_core.errors import AddonError, UnprocessableError
from addon_core.http_semantics import retry_after_seconds
from addon_core.intake.standard_webhooks import signature_headers
from addon_core.redaction import redact_text, safe_headers

USER_AGENT = "clockify-addons"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_EXCERPT_BYTES = 2048
#: Where an admin allows hosts: the manifest setting `outboundAllowedHosts`.
ALLOWED_HOSTS_HINT = (
    "an admin can add it (host, host:port or *.domain) to 'Hosts that flows may call' "
    "in the add-on's settings in Clockify"
)

#: Headers a flow may not set: they belong to the connection, or would retarget the request.
_RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade",
     "te", "trailer", "proxy-authorization", "proxy-connection"}
)  # fmt: skip
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: Resolve a host name to IP address strings (tests pass a fixed table).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class OutboundRefusedError(UnprocessableError):
    """The URL, its host or the address it resolves to may not be called; nothing was sent."""


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


def check_url(url: str, allowed_hosts: Collection[str], *, allow_http: bool = False) -> httpx.URL:
    """Return the parsed URL if its scheme and host may be called, else raise (no DNS here)."""
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, UnicodeDecodeError):
        raise OutboundRefusedError(f"{url!r} is not a valid URL", reason="invalid_url") from None
    if parsed.scheme not in ("https", "http") or not host:
        raise OutboundRefusedError(
            "outbound actions need an absolute https:// URL", reason="invalid_url"
        )
    if parsed.scheme == "http" and not allow_http:
        raise OutboundRefusedError(
            f"outbound actions must use https, not http (host {host!r})", reason="insecure_scheme"
        )
    if parsed.userinfo:
        raise OutboundRefusedError(
            "the URL must not carry credentials; send them in a header", reason="invalid_url"
        )
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    allowlist = HostAllowlist.from_entries(allowed_hosts, allow_insecure_http=allow_http)
    if not allowlist.allows(host, port):
        shown = host if parsed.port is None else f"{host}:{port}"
        raise OutboundRefusedError(
            f"host {shown!r} is not allowed for outbound actions in this workspace; "
            + ALLOWED_HOSTS_HINT,
            reason="host_not_allowed",
        )
    return parsed


def address_problem(address: str) -> str | None:
    """Return why an IP address may not be called (`loopback`, `private`, ...), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address carried in IPv6 is judged as that IPv4 address.
        if ip.ipv4_mapped is not None:
            return address_problem(str(ip.ipv4_mapped))
        if ip in _NAT64:
            return address_problem(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
        if ip.sixtofour is not None and (problem := address_problem(str(ip.sixtofour))):
            return problem
        if ip.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("shared (CGNAT)", ip in _CGNAT),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not public", not ip.is_global),
    )
    return next((label for label, hit in checks if hit), None)


async def resolve_host(host: str, port: int) -> list[str]:
    """Resolve `host` with the loop's getaddrinfo; return its addresses, first answer first."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _VettingBackend(httpcore.AsyncNetworkBackend):
    """Open TCP connections only to addresses vetted in the same step as the resolution."""

    def __init__(self, resolver: Resolver, *, allow_private_networks: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private_networks
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if not self._allow_private:
            for address in addresses:
                if problem := address_problem(address):
                    raise OutboundRefusedError(
                        f"host {host!r} resolves to a {problem} address; outbound actions "
                        "may only call public internet addresses",
                        reason="private_address",
                    )
        last_error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def _resolve(self, host: str, port: int, seconds: float | None) -> Sequence[str]:
        try:
            async with asyncio.timeout(seconds):
                addresses = await self._resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"could not resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} has no address")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound actions do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: httpcore.AsyncNetworkBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False)
        # httpx takes no network backend, so its pool is rebuilt around ours with the same
        # settings; handle_async_request (and its exception mapping) stays httpx's own.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=5.0,
            network_backend=backend,
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
        backend = _VettingBackend(
            resolver or resolve_host, allow_private_networks=allow_private_networks
        )
        transport = _PinnedTransport(backend, ssl_context or httpx.create_ssl_context())
        self._client = httpx.AsyncClient(
            transport=transport,
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
        request_headers = {k: v for k, v in headers.items() if k.lower() not in _RESERVED_HEADERS}
        request_headers = _merge(
            request_headers,
            {"user-agent": USER_AGENT, "accept-encoding": "identity"},
            {"content-type": "application/json"} if payload else {},
            signature_headers(secret, payload),
        )
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


def _merge(*parts: Mapping[str, str]) -> dict[str, str]:
    """Merge header mappings case-insensitively, later parts winning."""
    merged: dict[str, str] = {}
    for part in parts:
        for key, value in part.items():
            merged[key.lower()] = value
    return merged
