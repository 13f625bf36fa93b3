"""The alerts and the dashboard read series the app really exports.

The app runs, is installed, takes a webhook that runs a flow calling Clockify and a
forged one; then every `addon_*` series named by deploy/prometheus/alerts.yml and
deploy/grafana/clockify-addons.json must be in one scrape of `/metrics`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from addon_core.clockify.event_types import webhook_path
from tests.fake_clockify import Clockify, Workspace

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "clockify-addons.json"
SERIES = re.compile(r"\b(addon_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def named_series(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in SERIES.findall(expr)}


def exported_series(scrape: str) -> set[str]:
    """Every series name the scrape declares, samples or not (a labelled metric may have none)."""
    names = set()
    for family in text_string_to_metric_families(scrape):
        names.update(f"{family.name}{suffix}" for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_expressions_name_series_at_all() -> None:
    assert len(named_series(alert_expressions())) >= 8
    assert len(named_series(dashboard_expressions())) >= 12


async def test_every_series_the_alerts_and_dashboard_read_is_exported(
    client: AsyncTestClient[Litestar], clockify: Clockify, workspace: Workspace
) -> None:
    await clockify.install(workspace)
    accepted = await clockify.send_webhook(
        workspace, "NEW_PROJECT", {"id": "p1", "workspaceId": workspace.workspace_id}
    )
    assert accepted.status_code == 200, accepted.text
    forged = await client.post(webhook_path("NEW_PROJECT"), content=b"{}")
    assert forged.status_code == 401

    scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    exported = exported_series(scraped.text)
    wanted = named_series(alert_expressions()) | named_series(dashboard_expressions())
    assert sorted(wanted - exported) == []
    ready = [
        sample.value
        for family in text_string_to_metric_families(scraped.text)
        for sample in family.samples
        if sample.name == "addon_ready"
    ]
    assert ready == [1.0]


def test_a_misspelt_series_would_be_caught() -> None:
    exported = exported_series(
        "# HELP addon_jobs Jobs.\n# TYPE addon_jobs counter\n"
        'addon_jobs_total{addon="a",kind="k",outcome="done"} 1.0\n'
    )

    assert "addon_jobs_total" in exported
    assert named_series(["rate(addon_job_total[5m])"]) - exported == {"addon_job_total"}
