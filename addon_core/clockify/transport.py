"""The HTTP engine under the Clockify client: one shared httpx client on aiohttp's pool.

`create_http_client` builds that client: explicit timeouts, no redirects, no cookies.
httpx keeps the client's API (requests, responses, `MockTransport` fakes); aiohttp moves
the bytes, at about half of httpcore's CPU per call (`benchmarks/pacing.py`). aiohttp's
errors become httpx's here, keeping the one distinction retries rest on: `ConnectError`
and `ConnectTimeout` only when no byte of the request can have left.

aiohttp and the default TLS context are loaded by the first request, not at import: a
serving process answers `/readyz` without them (about 0.2 s of its start-up).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp

_CHUNK = 64 * 1024

# Pacing already bounds what is in flight per workspace (50); the pool bounds the total. A
# call waiting for a connection is not sent yet, so it may wait as long as a call may last.
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
POOL_CONNECTIONS = 128
# An idle connection is dropped before servers commonly drop theirs (uvicorn: 5 s), so a
# request is not sent down a connection the server is closing at that moment.
KEEPALIVE_SECONDS = 4.0


def create_http_client(
    transport: httpx.AsyncBaseTransport | None = None, *, timeout_seconds: float | None = None
) -> httpx.AsyncClient:
    """Build the shared connection pool for Clockify: explicit timeouts, no redirects.

    `transport` replaces the pool (tests pass fakes); by default it is an `AiohttpTransport`
    of `POOL_CONNECTIONS` connections.
    """
    timeout = (
        DEFAULT_TIMEOUT
        if timeout_seconds is None
        else httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
    )
    if transport is None:
        transport = AiohttpTransport(
            max_connections=POOL_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
    return _CookielessClient(
        timeout=timeout, follow_redirects=False, transport=transport, trust_env=False
    )


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing a response sets."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    """An httpx client that neither keeps nor sends cookies.

    One pool serves every installation, so a cookie Clockify sets on a call for one
    workspace must not ride along on the next call, for another. Not reading them also
    saves httpx's per-response cookie parsing (about a tenth of the client's CPU per call).
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        if cookies:
            raise ValueError("the Clockify client sends no cookies")


_NO_COOKIES = _NoCookies()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests over one aiohttp session: no redirects, cookies or env proxies.

    The session is opened by the first request, inside the event loop that will use it.
    `max_connections` bounds the connections open at once; the pool timeout bounds the
    wait for one and connecting together, the connect timeout connecting alone.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 128,
        keepalive_expiry: float = 4.0,
    ) -> None:
        self._ssl = ssl_context
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        global aiohttp  # the module's name for it from now on (see the module docstring)
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
            # httpx's default: certifi's CA bundle, no SSL_CERT_* from the environment.
            ssl=self._ssl if self._ssl is not None else httpx.create_ssl_context(trust_env=False),
        )
        # One pool serves every installation: a cookie set for one must never reach another.
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,  # httpx decodes the body, as over its own transport
        )
        # aiohttp sends an idempotent request a second time, unasked, when a kept-alive
        # connection drops under it. The client's retry policy alone decides what is sent
        # again (and counts it); aiohttp's own test client turns it off the same way.
        self._session._retry_connection = False
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; answer with a response whose body streams from the connection."""
        session = self._session or self._open()
        timeout = request.extensions.get("timeout", {})
        # As written by the caller (httpx keeps the case; some servers read it).
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            body: bytes | httpx.AsyncByteStream | None = request.content or None
        except httpx.RequestNotRead:
            body = request.stream  # type: ignore[assignment]
            # aiohttp frames a streamed body itself.
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        try:
            answer = await session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    # aiohttp's `connect` spans the wait for a pool slot and connecting.
                    connect=timeout.get("pool"),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            )
        except (aiohttp.ClientError, TimeoutError) as error:
            raise translate_error(error, request) from error
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=_AiohttpBody(answer, request),
            request=request,
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (answer.reason or "").encode(),
            },
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _AiohttpBody(httpx.AsyncByteStream):
    """A response body read from its aiohttp connection; closing it frees the connection."""

    def __init__(self, answer: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._answer = answer
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_chunked(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise translate_error(error, self._request) from error

    async def aclose(self) -> None:
        self._answer.release()


def translate_error(error: BaseException, request: httpx.Request) -> httpx.TransportError:
    """Return the httpx error for an aiohttp one; only a failed connect says "never sent"."""
    message = str(error) or type(error).__name__
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        # Raised while waiting for a pool slot or connecting: nothing was written yet.
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(error, TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(error, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message, request=request)
    # Anything else (a reset, a truncated body) may have happened after the request left.
    return httpx.ReadError(message, request=request)
