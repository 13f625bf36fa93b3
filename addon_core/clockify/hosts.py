"""Which hosts the add-ons may call Clockify on: `{P}CLOCKIFY_API_ALLOWED_HOSTS`.

Entries are `host`, `host:port` or `*.domain` (any subdomain, at any depth).
Base URLs from an install payload or a token claim are checked here before
they are stored; the Clockify client checks again before it sends anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from addon_core.errors import ForbiddenError

_DEFAULT_PORTS = {"https": 443, "http": 80}
_HOSTNAME = re.compile(r"[a-z0-9.:-]+")
_ENTRY = re.compile(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*(:[0-9]{1,5})?")


def check_entry(entry: str) -> str:
    """Return an allowlist entry if it is `host`, `host:port` or `*.domain`, else raise."""
    if not _ENTRY.fullmatch(entry.strip().lower()):
        raise ValueError(
            f"{entry!r} is not a host name: use host, host:port or *.domain, without scheme or path"
        )
    return entry


class HostNotAllowedError(ForbiddenError):
    """A URL points at a host, port or scheme the allowlist does not admit."""


@dataclass(frozen=True, slots=True)
class HostAllowlist:
    entries: tuple[str, ...]
    allow_insecure_http: bool = False
    #: the settings prefix (`UNIVERSAL_WEBHOOK_`), so refusals name the real variables
    prefix: str = ""

    @classmethod
    def from_entries(
        cls, entries: Iterable[str], *, allow_insecure_http: bool, prefix: str = ""
    ) -> HostAllowlist:
        cleaned = tuple(e.strip().lower() for e in entries if e.strip())
        return cls(cleaned, allow_insecure_http, prefix)

    def check_url(self, url: str, *, what: str = "URL") -> str:
        """Return `url` unchanged if it may be called; raise `HostNotAllowedError` if not."""
        try:
            parts = urlsplit(url)
            hostname = parts.hostname
        except ValueError:
            raise HostNotAllowedError(f"{what} {url!r} is not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in ("https", "http") or not hostname:
            raise HostNotAllowedError(f"{what} {url!r} is not an absolute http(s) URL")
        if scheme == "http" and not self.allow_insecure_http:
            raise HostNotAllowedError(
                f"{what} {url!r} uses plain http; only https is allowed "
                f"({self.prefix}ALLOW_INSECURE_HTTP=true permits http for local testing)"
            )
        if parts.username or parts.password:
            raise HostNotAllowedError(f"{what} must not carry credentials")
        try:
            port = parts.port
        except ValueError:
            raise HostNotAllowedError(f"{what} {url!r} has an invalid port") from None
        if not _HOSTNAME.fullmatch(hostname):
            raise HostNotAllowedError(f"{what} {url!r} has an invalid host name")
        if not self.allows(hostname, port if port is not None else _DEFAULT_PORTS[scheme]):
            raise HostNotAllowedError(
                f"{what} host {parts.netloc!r} is not in {self.prefix}CLOCKIFY_API_ALLOWED_HOSTS"
            )
        return url

    def allows(self, host: str, port: int = 443) -> bool:
        """Tell whether `host:port` is admitted; an entry without a port admits 443 and 80."""
        host = host.lower().rstrip(".")
        for entry in self.entries:
            entry_host, _, entry_port = entry.partition(":")
            if entry_port and str(port) != entry_port:
                continue
            if not entry_port and port not in (443, 80):
                continue
            if entry_host.startswith("*."):
                if host.endswith(entry_host[1:]) and len(host) > len(entry_host) - 1:
                    return True
            elif host == entry_host:
                return True
        return False
