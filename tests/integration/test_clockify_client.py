"""The Clockify client against a real local HTTP server playing Clockify."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from addon_core.clockify.client import (
    ClockifyAPIError,
    ClockifyClient,
    ClockifyUnavailableError,
    InstallationContext,
)
from addon_core.clockify.hosts import HostAllowlist, HostNotAllowedError
from addon_core.clockify.pacing import Pacer
from addon_core.clockify.transport import create_http_client
from addon_core.metrics import Metrics

TOKEN = "installation-token-9f8e7d6c5b4a"  # not JWT-shaped: redaction would not mask it


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeClockify:
    """A loopback HTTP server answering from a script; the last answer repeats."""

    def __init__(self) -> None:
        self.answers: list[Answer] = [Answer()]
        self.requests: list[Seen] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_call(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                fake.requests.append(Seen(self.command, self.path, dict(self.headers)))
                answer = fake.answers.pop(0) if len(fake.answers) > 1 else fake.answers[0]
                if answer.delay:
                    fake.release.wait(answer.delay)
                payload = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up waiting (a timeout test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_call

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def answer(self, *answers: Answer) -> None:
        self.answers = list(answers)

    def __enter__(self) -> FakeClockify:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class RefusingOnceTransport(httpx.AsyncBaseTransport):
    """Fail the first request as if the connection were refused, then use the real transport."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.refused:
            self.refused += 1
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class SleepRecorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def clockify() -> Iterator[FakeClockify]:
    with FakeClockify() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[FakeClockify]:
    """A second server, outside the allowlist: it must never receive anything."""
    with FakeClockify() as server:
        yield server


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics("test-addon")


def build_client(
    clockify: FakeClockify,
    metrics: Metrics,
    sleep: SleepRecorder,
    *,
    http: httpx.AsyncClient | None = None,
    allow_insecure_http: bool = True,
    attempts: int = 4,
) -> ClockifyClient:
    allowlist = HostAllowlist.from_entries(
        [f"127.0.0.1:{clockify.port}"], allow_insecure_http=allow_insecure_http
    )
    return ClockifyClient(
        allowlist=allowlist,
        metrics=metrics,
        pacer=Pacer(rate=1000, burst=1000),
        http=http,
        attempts=attempts,
        backoff_base=0.2,
        backoff_max=5.0,
        max_retry_after=30.0,
        sleep=sleep,
    )


@pytest.fixture
async def client(
    clockify: FakeClockify, metrics: Metrics, sleep: SleepRecorder
) -> AsyncIterator[ClockifyClient]:
    client = build_client(clockify, metrics, sleep)
    yield client
    await client.aclose()


@pytest.fixture
def installation(clockify: FakeClockify) -> InstallationContext:
    return InstallationContext("ws-1", TOKEN, {"backendUrl": f"{clockify.url}/api"})


async def get_user(client: ClockifyClient, installation: InstallationContext, url: str) -> Any:
    return await client.call(installation, "GET", url, operation="getLoggedUser")


async def test_the_installation_token_is_sent_and_the_answer_returned(
    client: ClockifyClient, clockify: FakeClockify, installation: InstallationContext
) -> None:
    clockify.answer(Answer(body={"id": "user-1"}))

    response = await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert response.status == 200
    assert response.body == {"id": "user-1"}
    assert response.attempts == 1
    assert [r.path for r in clockify.requests] == ["/api/v1/user"]
    assert clockify.requests[0].headers["X-Addon-Token"] == TOKEN


async def test_a_429_with_retry_after_is_retried_after_the_wait_it_asks(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    sleep: SleepRecorder,
) -> None:
    clockify.answer(Answer(429, headers={"Retry-After": "2"}), Answer())

    response = await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert response.status == 200
    assert sleep.sleeps == [2.0]
    assert len(clockify.requests) == 2


async def test_a_retry_after_beyond_the_cap_waits_only_the_cap(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    sleep: SleepRecorder,
) -> None:
    clockify.answer(Answer(429, headers={"Retry-After": "3600"}), Answer())

    await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert sleep.sleeps == [30.0]


async def test_a_429_without_retry_after_is_retried_with_backoff(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    sleep: SleepRecorder,
) -> None:
    clockify.answer(Answer(429), Answer(429), Answer())

    response = await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert response.status == 200
    assert response.attempts == 3
    assert len(sleep.sleeps) == 2
    assert all(0.2 <= s <= 5.0 for s in sleep.sleeps)


async def test_a_503_is_retried_until_success_and_counted(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    metrics: Metrics,
) -> None:
    clockify.answer(Answer(503), Answer())

    response = await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert response.status == 200
    assert len(clockify.requests) == 2
    sample = metrics.registry.get_sample_value
    labels = {"addon": "test-addon", "operation": "getLoggedUser"}
    assert sample("addon_clockify_requests_total", {**labels, "status_class": "5xx"}) == 1
    assert sample("addon_clockify_requests_total", {**labels, "status_class": "2xx"}) == 1
    assert sample("addon_clockify_retries_total", {**labels, "reason": "server_error"}) == 1
    assert sample("addon_clockify_request_duration_seconds_count", labels) == 2
    wait_labels = {"addon": "test-addon", "lane": "interactive"}
    assert sample("addon_clockify_pacing_wait_seconds_count", wait_labels) == 2


async def test_a_500_on_get_is_retried(
    client: ClockifyClient, clockify: FakeClockify, installation: InstallationContext
) -> None:
    clockify.answer(Answer(500), Answer())

    response = await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert response.status == 200
    assert len(clockify.requests) == 2


async def test_a_post_answered_503_is_not_retried(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    sleep: SleepRecorder,
) -> None:
    clockify.answer(Answer(503), Answer(201))

    with pytest.raises(ClockifyUnavailableError, match="not retried") as raised:
        await client.call(
            installation,
            "POST",
            f"{clockify.url}/api/v1/workspaces/ws-1/clients",
            operation="createClient",
            json={"name": "Acme"},
        )

    assert raised.value.status == 503
    assert len(clockify.requests) == 1
    assert sleep.sleeps == []


async def test_a_post_whose_connection_was_refused_is_retried(
    clockify: FakeClockify,
    metrics: Metrics,
    sleep: SleepRecorder,
    installation: InstallationContext,
) -> None:
    transport = RefusingOnceTransport()
    client = build_client(clockify, metrics, sleep, http=create_http_client(transport))
    clockify.answer(Answer(201, body={"id": "client-1"}))

    async with client.http:
        response = await client.call(
            installation,
            "POST",
            f"{clockify.url}/api/v1/workspaces/ws-1/clients",
            operation="createClient",
            json={"name": "Acme"},
        )

    assert response.status == 201
    assert transport.refused == 1
    assert [r.method for r in clockify.requests] == ["POST"]
    assert len(sleep.sleeps) == 1


async def test_a_404_raises_clockifys_message_and_is_not_retried(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    sleep: SleepRecorder,
) -> None:
    clockify.answer(Answer(404, body={"message": "Project doesn't exist", "code": 501}))

    with pytest.raises(ClockifyAPIError) as raised:
        await get_user(client, installation, f"{clockify.url}/api/v1/projects/p-1")

    assert raised.value.status == 404
    assert raised.value.message == "Project doesn't exist"
    assert raised.value.status_code == 502
    assert len(clockify.requests) == 1
    assert sleep.sleeps == []


async def test_a_host_outside_the_allowlist_is_refused_before_any_request(
    client: ClockifyClient, elsewhere: FakeClockify, installation: InstallationContext
) -> None:
    with pytest.raises(HostNotAllowedError):
        await get_user(client, installation, f"{elsewhere.url}/api/v1/user")

    assert elsewhere.requests == []


async def test_plain_http_is_refused_unless_allowed(
    clockify: FakeClockify,
    metrics: Metrics,
    sleep: SleepRecorder,
    installation: InstallationContext,
) -> None:
    client = build_client(clockify, metrics, sleep, allow_insecure_http=False)

    with pytest.raises(HostNotAllowedError, match="plain http"):
        await get_user(client, installation, f"{clockify.url}/api/v1/user")
    await client.aclose()

    assert clockify.requests == []


async def test_a_redirect_is_not_followed(
    client: ClockifyClient,
    clockify: FakeClockify,
    elsewhere: FakeClockify,
    installation: InstallationContext,
) -> None:
    clockify.answer(Answer(302, headers={"Location": f"{elsewhere.url}/steal"}))

    with pytest.raises(ClockifyAPIError, match="not followed") as raised:
        await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert raised.value.status == 302
    assert len(clockify.requests) == 1
    assert elsewhere.requests == []


async def test_read_timeouts_on_get_are_retried_then_reported_unavailable(
    clockify: FakeClockify,
    metrics: Metrics,
    sleep: SleepRecorder,
    installation: InstallationContext,
) -> None:
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.1), follow_redirects=False)
    client = build_client(clockify, metrics, sleep, http=http, attempts=3)
    clockify.answer(Answer(delay=5.0))

    async with http:
        with pytest.raises(ClockifyUnavailableError, match="ReadTimeout"):
            await get_user(client, installation, f"{clockify.url}/api/v1/user")

    assert len(clockify.requests) == 3
    assert len(sleep.sleeps) == 2


async def test_a_post_that_timed_out_reading_is_not_retried(
    clockify: FakeClockify,
    metrics: Metrics,
    sleep: SleepRecorder,
    installation: InstallationContext,
) -> None:
    http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.1), follow_redirects=False)
    client = build_client(clockify, metrics, sleep, http=http)
    clockify.answer(Answer(delay=5.0))

    async with http:
        with pytest.raises(ClockifyUnavailableError, match="may have reached Clockify"):
            await client.call(
                installation, "POST", f"{clockify.url}/api/v1/x", operation="createClient"
            )

    assert len(clockify.requests) == 1
    assert sleep.sleeps == []


async def test_the_token_never_reaches_the_log(
    client: ClockifyClient,
    clockify: FakeClockify,
    installation: InstallationContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Clockify echoing the token back must not carry it into the log either.
    clockify.answer(
        Answer(503),
        Answer(400, body={"message": f"bad X-Addon-Token: {TOKEN}"}),
        Answer(503),
    )
    url = f"{clockify.url}/api/v1/user"

    with pytest.raises(ClockifyAPIError) as refused:
        await get_user(client, installation, url)
    with pytest.raises(ClockifyUnavailableError) as unavailable:
        await get_user(client, installation, url)

    assert any(r.name == "addon_core.clockify.client" for r in caplog.records)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(refused.value)
    assert TOKEN not in str(unavailable.value)
    assert TOKEN not in repr(installation)
