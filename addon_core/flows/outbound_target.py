"""Where an outbound `http` action may go: the URL and host the workspace allows, and only
public addresses, to which the connection is pinned.

OutboundRefusedError  422, the URL or the address it resolves to may not be called; nothing sent

The host is resolved once, inside the connection: every address must be public, and the socket
is opened to one of those very addresses while the URL keeps its host name, so the Host header,
TLS SNI and certificate check use the name. A DNS rebind after the check has nothing to redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence

import httpcore
import httpx

from addon_core.clockify.hosts import HostAllowlist
from addon_core.errors import UnprocessableError

#: Where an admin allows hosts: the manifest setting `outboundAllowedHosts`.
ALLOWED_HOSTS_HINT = (
    "an admin can add it (host, host:port or *.domain) to 'Hosts that flows may call' "
    "in the add-on's settings in Clockify"
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: Resolve a host name to IP address strings (tests pass a fixed table).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class OutboundRefusedError(UnprocessableError):
    """The URL, its host or the address it resolves to may not be called; nothing was sent."""


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


def pinned_transport(
    resolver: Resolver | None = None,
    *,
    allow_private_networks: bool,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncHTTPTransport:
    """Build a transport that connects only to vetted addresses of a host, pinned to one.

    `resolver` defaults to the loop's getaddrinfo, `ssl_context` to the system's CAs.
    """
    backend = _VettingBackend(
        resolver or resolve_host, allow_private_networks=allow_private_networks
    )
    return _PinnedTransport(backend, ssl_context or httpx.create_ssl_context())
