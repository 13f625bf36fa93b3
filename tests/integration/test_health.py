"""Probes, metrics and the served manifest, through the whole app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from addon_core.app import create_addon_app
from addon_core.storage.database import head_revision
from tests.fake_clockify import Clockify, Workspace
from universal_webhook.app import SPEC, UniversalWebhookSettings

#: A PostgreSQL URL that needs no server: nothing listens on port 1.
CLOSED_PORT_URL = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
#: What Prometheus 2.x sends when it scrapes a target.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture
def app_on(public_key_file: Path, encryption_key: str, tmp_path: Path) -> Callable[[str], Litestar]:
    """Build the Universal Webhook app on any database URL, without migrating it."""

    def build(database_url: str) -> Litestar:
        settings = UniversalWebhookSettings(
            environment="test",
            database_url=database_url,
            clockify_public_key_file=public_key_file,
            encryption_keys=(SecretStr(encryption_key),),
            base_url="https://addons.example.com/uw",
            data_dir=tmp_path / "data",
        )
        return create_addon_app(SPEC, settings)

    return build


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never answers (a hung database)."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` in a Prometheus text exposition, with its labels."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


# --- probes -----------------------------------------------------------------------------


async def test_livez_answers_ok(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/livez")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_ready_with_the_revision(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"]["status"] == "ok"
    assert body["database"]["revision"] == head_revision()


async def test_healthz_reports_the_database_ok(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["revision"] == head_revision()


async def test_readyz_is_503_until_the_database_is_migrated(
    empty_database_url: str, app_on: Callable[[str], Litestar]
) -> None:
    async with AsyncTestClient(app=app_on(empty_database_url)) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["database"]["status"] == "migration_pending"
    assert body["database"]["revision"] is None
    assert body["database"]["head"] == head_revision()


async def test_readyz_is_503_when_the_database_is_unreachable(
    app_on: Callable[[str], Litestar],
) -> None:
    async with AsyncTestClient(app=app_on(CLOSED_PORT_URL)) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["database"]["status"] == "unavailable"


async def test_healthz_is_503_and_degraded_when_the_database_is_unreachable(
    app_on: Callable[[str], Litestar],
) -> None:
    async with AsyncTestClient(app=app_on(CLOSED_PORT_URL)) as client:
        response = await client.get("/healthz")
        alive = await client.get("/livez")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "unavailable"
    assert alive.status_code == 200


async def test_readyz_gives_up_on_a_database_that_never_answers(
    silent_server: int, app_on: Callable[[str], Litestar]
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{silent_server}/x"
    async with AsyncTestClient(app=app_on(url)) as client:
        # The probe has a 2 s timeout; asyncpg alone would wait 60 s.
        response = await asyncio.wait_for(client.get("/readyz"), timeout=15)

    assert response.status_code == 503, response.text
    assert response.json()["database"]["status"] == "unavailable"


# --- metrics ----------------------------------------------------------------------------


EXPECTED_FAMILIES = {
    "addon_webhooks",
    "addon_lifecycle_events",
    "addon_flow_executions",
    "addon_clockify_requests",
    "addon_http_request_duration_seconds",
}


async def test_metrics_are_prometheus_text_by_default(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert families >= EXPECTED_FAMILIES


async def test_metrics_answer_prometheus_in_openmetrics_when_it_asks(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    families = {family.name for family in openmetrics_families(response.text)}
    assert families >= EXPECTED_FAMILIES


async def test_metrics_content_type_names_each_parameter_once(
    client: AsyncTestClient[Litestar],
) -> None:
    # Prometheus 3 parses it with Go's mime.ParseMediaType, which refuses a repeated parameter.
    response = await client.get("/metrics")

    media_type, *parameters = (part.strip() for part in response.headers["content-type"].split(";"))
    names = [parameter.split("=", 1)[0].lower() for parameter in parameters]
    assert media_type == "text/plain"
    assert sorted(names) == ["charset", "version"]


async def test_metrics_measure_request_duration_by_route(
    client: AsyncTestClient[Litestar],
) -> None:
    await client.get("/livez")

    response = await client.get("/metrics")

    counts = samples(response.text, "addon_http_request_duration_seconds_count")
    assert (
        {"addon": "universal-webhook", "method": "GET", "route": "/livez", "status_class": "2xx"},
        1.0,
    ) in counts


async def test_metrics_count_lifecycle_events(
    client: AsyncTestClient[Litestar], clockify: Clockify, workspace: Workspace
) -> None:
    before = await client.get("/metrics")
    assert samples(before.text, "addon_lifecycle_events_total") == []

    await clockify.install(workspace)

    after = await client.get("/metrics")
    assert samples(after.text, "addon_lifecycle_events_total") == [
        ({"addon": "universal-webhook", "type": "INSTALLED"}, 1.0)
    ]


# --- manifest ---------------------------------------------------------------------------


async def test_manifest_is_served_at_both_paths_with_base_url_and_key(
    make_app: Callable[..., Litestar],
) -> None:
    app = make_app("universal-webhook", base_url="https://hooks.example.org/addon/")
    async with AsyncTestClient(app=app) as client:
        plain = await client.get("/manifest")
        dotted = await client.get("/manifest.json")

    assert plain.status_code == 200, plain.text
    assert dotted.status_code == 200, dotted.text
    manifest: dict[str, Any] = plain.json()
    assert dotted.json() == manifest
    assert manifest["baseUrl"] == "https://hooks.example.org/addon"
    assert manifest["key"] == "universal-webhook"


async def test_manifest_key_is_the_configured_addon_key(
    make_app: Callable[..., Litestar],
) -> None:
    async with AsyncTestClient(app=make_app("api-studio", addon_key="my-key")) as client:
        response = await client.get("/manifest")

    assert response.status_code == 200, response.text
    assert response.json()["key"] == "my-key"
