"""The allowlist of hosts the Clockify client may call."""

from __future__ import annotations

import pytest

from addon_core.clockify.hosts import HostAllowlist, HostNotAllowedError
from addon_core.settings import DEFAULT_ALLOWED_HOSTS

DEFAULT = HostAllowlist.from_entries(DEFAULT_ALLOWED_HOSTS, allow_insecure_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.clockify.me/api",
        "https://reports.api.clockify.me",
        "https://euc1.clockify.me/api/v1/workspaces",
        "https://developer.clockify.me/api",
        "https://API.Clockify.ME/api",
        "https://api.clockify.me:443/api",
    ],
)
def test_default_allowlist_admits_clockify_hosts(url: str) -> None:
    assert DEFAULT.check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "https://clockify.me.evil.com/api",
        "https://evilclockify.me/api",
        "https://127.0.0.1/api",
        "https://localhost/api",
        "https://evil.com/?.clockify.me",
        "https://evil.com#.clockify.me",
    ],
)
def test_default_allowlist_refuses_other_hosts(url: str) -> None:
    with pytest.raises(HostNotAllowedError):
        DEFAULT.check_url(url)


def test_entry_with_port_admits_only_that_port() -> None:
    allowlist = HostAllowlist.from_entries([" LocalHost:8080 ", ""], allow_insecure_http=True)

    assert allowlist.check_url("http://localhost:8080/api") == "http://localhost:8080/api"
    for url in ("http://localhost:8081/api", "http://localhost/api", "https://localhost/api"):
        with pytest.raises(HostNotAllowedError):
            allowlist.check_url(url)


@pytest.mark.parametrize("port", [8443, 8080, 1])
def test_entry_without_port_refuses_a_non_default_port(port: int) -> None:
    with pytest.raises(HostNotAllowedError):
        DEFAULT.check_url(f"https://api.clockify.me:{port}/api")


def test_plain_http_is_refused_unless_allowed() -> None:
    insecure = HostAllowlist.from_entries(DEFAULT_ALLOWED_HOSTS, allow_insecure_http=True)

    with pytest.raises(HostNotAllowedError, match="http"):
        DEFAULT.check_url("http://api.clockify.me/api")
    assert insecure.check_url("http://api.clockify.me/api") == "http://api.clockify.me/api"


@pytest.mark.parametrize(
    "url",
    [
        "https://user:password@api.clockify.me/api",
        "https://user@api.clockify.me/api",
        "https://evil.com@api.clockify.me/api",
    ],
)
def test_url_with_credentials_is_refused(url: str) -> None:
    with pytest.raises(HostNotAllowedError) as caught:
        DEFAULT.check_url(url)
    assert "password" not in caught.value.detail


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.clockify.me/api",
        "file:///etc/passwd",
        "ws://api.clockify.me/api",
        "javascript:alert(1)",
        "api.clockify.me/api",
        "//api.clockify.me/api",
        "https:///api",
        "https://api.clockify.me:99999/api",
    ],
)
def test_url_that_is_not_absolute_http_is_refused(url: str) -> None:
    with pytest.raises(HostNotAllowedError):
        DEFAULT.check_url(url)


@pytest.mark.parametrize(
    "url", ["https://[api.clockify.me]/api", "https://[::1/api", "https://api.clockify.me:99999/"]
)
def test_unparseable_url_is_refused_not_crashed(url: str) -> None:
    allowlist = HostAllowlist.from_entries(["*.clockify.me"], allow_insecure_http=False)

    with pytest.raises(HostNotAllowedError):
        allowlist.check_url(url)


def test_refusal_names_the_prefixed_variable() -> None:
    allowlist = HostAllowlist.from_entries(
        ["api.clockify.me"], allow_insecure_http=False, prefix="UNIVERSAL_WEBHOOK_"
    )

    with pytest.raises(HostNotAllowedError) as caught:
        allowlist.check_url("https://evil.example.com/api")
    assert "UNIVERSAL_WEBHOOK_CLOCKIFY_API_ALLOWED_HOSTS" in caught.value.detail
