"""Outbound http actions against a real loopback HTTP(S) server."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from addon_core.flows.outbound import OutboundError, OutboundHttp, OutboundResult
from addon_core.flows.outbound_target import (
    OutboundRefusedError,
    Resolver,
    address_problem,
    check_url,
)
from addon_core.intake.standard_webhooks import generate_secret, verify

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP/1.1 server that records requests and answers by path."""

    requests: list[Received] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(method, path, headers, body))
        status, extra, content = await self.answer(path)
        lines_out = [f"HTTP/1.1 {status} X", f"content-length: {len(content)}", "connection: close"]
        lines_out += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode() + content)
        await writer.drain()
        writer.close()

    async def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/hang":
            await self.release.wait()
            return 200, {}, b"late"
        if path == "/redirect":
            return 302, {"location": f"http://127.0.0.1:{self.port}/ok"}, b""
        if path.startswith("/status/"):
            return int(path.rsplit("/", 1)[1]), {"retry-after": "7"}, b"{}"
        if path == "/big":
            return 200, {}, f'{{"token": "{JWT}", "pad": "'.encode() + b"x" * 10_000 + b'"}'
        if path == "/cookie":
            return 200, {"set-cookie": "session=abc", "x-request-id": "r1"}, b"{}"
        return 200, {"content-type": "application/json"}, b'{"ok": true}'


async def serve(receiver: Receiver, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0, ssl=tls)
    receiver.port = server.sockets[0].getsockname()[1]
    return server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    server = await serve(receiver)
    yield receiver
    receiver.release.set()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundHttp]:
    async with OutboundHttp(timeout_seconds=5, allow_private_networks=True) as client:
        yield client


def fixed_resolver(table: dict[str, Sequence[str]], calls: list[str] | None = None) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if calls is not None:
            calls.append(host)
        return table[host]

    return resolve


def allowed(receiver: Receiver, host: str = "127.0.0.1") -> list[str]:
    return [f"{host}:{receiver.port}"]


async def send(
    client: OutboundHttp,
    method: str,
    url: str,
    allowed_hosts: list[str],
    *,
    body: bytes | None = None,
) -> OutboundResult:
    """Send a request with no headers of its own, signed with a fresh secret."""
    return await client.send(
        method=method,
        url=url,
        headers={},
        body=body,
        secret=generate_secret(),
        allowed_hosts=allowed_hosts,
    )


# --- the request ------------------------------------------------------------------------


async def test_signed_request_verifies_at_the_receiver(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    secret = generate_secret()
    body = json.dumps({"event": "NEW_TIME_ENTRY"}).encode()
    result = await outbound.send(
        method="post",
        url=f"http://127.0.0.1:{receiver.port}/hook?x=1",
        headers={"X-Custom": "yes", "Host": "internal.example", "webhook-id": "forged"},
        body=body,
        secret=secret,
        allowed_hosts=allowed(receiver),
    )
    assert result.ok
    assert result.status == 200
    assert result.body_excerpt == '{"ok": true}'
    assert result.elapsed > 0
    [seen] = receiver.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/hook?x=1", body)
    assert verify(seen.headers, seen.body, [secret]) == seen.headers["webhook-id"]
    assert seen.headers["webhook-id"] != "forged"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["user-agent"] == "clockify-addons"
    assert seen.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert seen.headers["x-custom"] == "yes"


async def test_request_without_body_is_signed_without_content_type(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    secret = generate_secret()
    result = await outbound.send(
        method="GET",
        url=f"http://127.0.0.1:{receiver.port}/ok",
        headers={},
        body=None,
        secret=secret,
        allowed_hosts=allowed(receiver),
    )
    assert result.status == 200
    [seen] = receiver.requests
    assert "content-type" not in seen.headers
    assert verify(seen.headers, b"", [secret])


async def test_response_headers_drop_credentials(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    result = await send(
        outbound, "GET", f"http://127.0.0.1:{receiver.port}/cookie", allowed(receiver)
    )
    assert "set-cookie" not in result.headers
    assert result.headers["x-request-id"] == "r1"


async def test_body_excerpt_is_capped_and_redacted(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    result = await send(outbound, "GET", f"http://127.0.0.1:{receiver.port}/big", allowed(receiver))
    assert JWT not in result.body_excerpt
    assert "[redacted]" in result.body_excerpt
    assert result.body_excerpt.endswith("…")
    assert len(result.body_excerpt) <= 2048 + 1


# --- refusals: nothing reaches the receiver -----------------------------------------------


async def test_host_not_allowed_is_refused_and_nothing_is_sent(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    for allowed_hosts in ([], ["none"], ["localhost"], [f"example.com:{receiver.port}"]):
        with pytest.raises(OutboundRefusedError) as excinfo:
            await send(
                outbound,
                "POST",
                f"http://127.0.0.1:{receiver.port}/hook",
                allowed_hosts,
                body=b"{}",
            )
        assert excinfo.value.reason == "host_not_allowed"
        assert excinfo.value.status_code == 422
        assert "Hosts that flows may call" in excinfo.value.detail
    assert receiver.requests == []


async def test_wildcard_entry_admits_subdomains_only(receiver: Receiver) -> None:
    resolver = fixed_resolver({"a.hooks.test": ["127.0.0.1"], "hooks.test": ["127.0.0.1"]})
    async with OutboundHttp(allow_private_networks=True, resolver=resolver) as client:
        entries = [f"*.hooks.test:{receiver.port}"]
        url = f"http://a.hooks.test:{receiver.port}/ok"
        result = await send(client, "GET", url, entries)
        assert result.status == 200
        with pytest.raises(OutboundRefusedError):
            await send(client, "GET", f"http://hooks.test:{receiver.port}/ok", entries)
    assert len(receiver.requests) == 1
    assert receiver.requests[0].headers["host"] == f"a.hooks.test:{receiver.port}"


async def test_loopback_is_refused_without_the_override(receiver: Receiver) -> None:
    async with OutboundHttp() as client:
        with pytest.raises(OutboundRefusedError) as excinfo:
            await send(
                client,
                "POST",
                f"https://127.0.0.1:{receiver.port}/hook",
                allowed(receiver),
                body=b"{}",
            )
    assert excinfo.value.reason == "private_address"
    assert "loopback" in excinfo.value.detail
    assert receiver.requests == []


async def test_plain_http_is_refused_without_the_override(receiver: Receiver) -> None:
    async with OutboundHttp() as client:
        with pytest.raises(OutboundRefusedError) as excinfo:
            await send(client, "GET", f"http://127.0.0.1:{receiver.port}/ok", allowed(receiver))
    assert excinfo.value.reason == "insecure_scheme"
    assert receiver.requests == []


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.7"],
        ["169.254.169.254"],
        ["::1"],
        ["fd00::1"],
        ["::ffff:127.0.0.1"],
        ["8.8.8.8", "127.0.0.1"],  # any bad address refuses the host
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    receiver: Receiver, addresses: list[str]
) -> None:
    calls: list[str] = []
    resolver = fixed_resolver({"hooks.example.com": addresses}, calls)
    async with OutboundHttp(resolver=resolver) as client:
        with pytest.raises(OutboundRefusedError) as excinfo:
            await send(
                client, "POST", "https://hooks.example.com/in", ["hooks.example.com"], body=b"{}"
            )
    assert excinfo.value.reason == "private_address"
    assert calls == ["hooks.example.com"]
    assert receiver.requests == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.127.255.254", "0.0.0.0", "224.0.0.1",  # noqa: S104
        "239.255.255.250", "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.2.1",
        "::1", "::", "fe80::1", "fe80::1%1", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1",
        "2001:db8::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.0.0.1",
        "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:1::1", "not-an-ip",
    ],
)  # fmt: skip
def test_internal_addresses_have_a_problem(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8",
     "64:ff9b::808:808"],
)  # fmt: skip
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/x", "invalid_url"),
        ("hooks.example.com/x", "invalid_url"),
        ("https://user:pass@hooks.example.com/x", "invalid_url"),
        ("http://hooks.example.com/x", "insecure_scheme"),
        ("https://evil.com/?hooks.example.com", "host_not_allowed"),
        ("https://hooks.example.com.evil.com/", "host_not_allowed"),
        ("https://hooks.example.com:8443/", "host_not_allowed"),
        ("https://[::1]/", "host_not_allowed"),
    ],
)
def test_check_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefusedError) as excinfo:
        check_url(url, ["hooks.example.com"])
    assert excinfo.value.reason == reason


def test_check_url_admits_allowed_hosts() -> None:
    assert check_url("https://Hooks.Example.com/x", ["hooks.example.com"]).host == (
        "hooks.example.com"
    )
    assert check_url("https://a.b.example.org:8443/", ["*.example.org:8443"])


async def test_unknown_method_is_refused(outbound: OutboundHttp) -> None:
    with pytest.raises(OutboundRefusedError):
        await send(outbound, "CONNECT", "https://hooks.example.com/", ["hooks.example.com"])


# --- answers and failures -----------------------------------------------------------------


async def test_redirect_is_returned_not_followed(
    receiver: Receiver, outbound: OutboundHttp
) -> None:
    result = await send(
        outbound,
        "POST",
        f"http://127.0.0.1:{receiver.port}/redirect",
        allowed(receiver),
        body=b"{}",
    )
    assert result.status == 302
    assert result.headers["location"].endswith("/ok")
    assert [r.path for r in receiver.requests] == ["/redirect"]
    with pytest.raises(OutboundError) as excinfo:
        result.raise_for_status()
    assert not excinfo.value.retryable


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (429, True), (404, False)])
async def test_error_statuses_are_returned_with_their_retryability(
    receiver: Receiver, outbound: OutboundHttp, status: int, retryable: bool
) -> None:
    result = await send(
        outbound,
        "PUT",
        f"http://127.0.0.1:{receiver.port}/status/{status}",
        allowed(receiver),
        body=b"{}",
    )
    assert result.status == status
    assert result.retryable is retryable
    assert result.retry_after == 7.0
    assert result.status_class == f"{status // 100}xx"
    with pytest.raises(OutboundError) as excinfo:
        result.raise_for_status()
    assert excinfo.value.retryable is retryable
    assert excinfo.value.result is result


async def test_timeout_is_a_retryable_error(receiver: Receiver) -> None:
    async with OutboundHttp(timeout_seconds=0.2, allow_private_networks=True) as client:
        with pytest.raises(OutboundError) as excinfo:
            await send(
                client,
                "POST",
                f"http://127.0.0.1:{receiver.port}/hang",
                allowed(receiver),
                body=b"{}",
            )
    assert excinfo.value.retryable
    assert excinfo.value.reason == "timeout"
    assert excinfo.value.maybe_delivered
    assert "0.2s" in excinfo.value.detail


async def test_refused_connection_is_retryable_and_not_delivered(outbound: OutboundHttp) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OutboundError) as excinfo:
        await send(
            outbound, "POST", f"http://127.0.0.1:{port}/hook", [f"127.0.0.1:{port}"], body=b"{}"
        )
    assert excinfo.value.retryable
    assert not excinfo.value.maybe_delivered
    assert excinfo.value.status_code == 502


# --- pinning: connect to the vetted address, keep the name for Host, SNI and the cert -------


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file, pem


async def test_tls_connects_to_the_resolved_address_with_the_host_name(tmp_path: Path) -> None:
    cert_file, key_file, pem = self_signed(tmp_path, "hooks.test")
    receiver = Receiver()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server_tls.sni_callback = lambda _obj, name, _ctx: receiver.server_names.append(name)
    server = await serve(receiver, server_tls)
    client_tls = ssl.create_default_context(cadata=pem.decode())
    resolver = fixed_resolver({"hooks.test": [str(ipaddress.ip_address("127.0.0.1"))]})
    secret = generate_secret()
    try:
        async with OutboundHttp(
            allow_private_networks=True, resolver=resolver, ssl_context=client_tls
        ) as client:
            result = await client.send(
                method="POST", url=f"https://hooks.test:{receiver.port}/in", headers={},
                body=b"{}", secret=secret, allowed_hosts=[f"hooks.test:{receiver.port}"],
            )  # fmt: skip
            other = fixed_resolver({"other.test": ["127.0.0.1"]})
        async with OutboundHttp(
            allow_private_networks=True, resolver=other, ssl_context=client_tls
        ) as mismatched:
            # Same address, another name: the certificate (for hooks.test) must not pass.
            with pytest.raises(OutboundError):
                await mismatched.send(
                    method="GET", url=f"https://other.test:{receiver.port}/in", headers={},
                    body=None, secret=secret, allowed_hosts=[f"other.test:{receiver.port}"],
                )  # fmt: skip
    finally:
        server.close()
        await server.wait_closed()
    assert result.status == 200
    assert receiver.server_names[0] == "hooks.test"
    [seen] = receiver.requests
    assert seen.headers["host"] == f"hooks.test:{receiver.port}"
    assert verify(seen.headers, seen.body, [secret])
