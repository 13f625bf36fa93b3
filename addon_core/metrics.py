"""Prometheus metrics of one app, in a registry of its own, with bounded labels only.

With several worker processes (`serve --workers N`), the client library writes every
value to the pod's multiprocess directory and `render` reads all workers' files, so one
scrape sums counters and histograms; each gauge says how its per-process values combine.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from addon_core.settings import MULTIPROC_DIR_VARIABLE

# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_CLOCKIFY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_WAIT_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_USE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Every metric an app exports. Label values come from fixed sets, never raw input."""

    def __init__(self, addon: str) -> None:
        self.addon = addon
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter(
            "addon_webhooks", "Webhook deliveries by outcome: accepted, duplicate or rejected.",
            ["addon", "event_type", "outcome"], registry=r,
        )  # fmt: skip
        self.webhook_rejections = Counter(
            "addon_webhook_rejections", "Rejected webhook deliveries by reason.",
            ["addon", "reason"], registry=r,
        )  # fmt: skip
        self.verification_failures = Counter(
            "addon_token_verification_failures", "Clockify tokens refused, by kind and reason.",
            ["addon", "kind", "reason"], registry=r,
        )  # fmt: skip
        self.lifecycle_events = Counter(
            "addon_lifecycle_events", "Verified lifecycle calls by type.",
            ["addon", "type"], registry=r,
        )  # fmt: skip
        self.quota_refusals = Counter(
            "addon_quota_refusals", "Requests refused for a workspace quota, by quota.",
            ["addon", "quota"], registry=r,
        )  # fmt: skip
        self.flow_executions = Counter(
            "addon_flow_executions", "Flow executions by final status.",
            ["addon", "status"], registry=r,
        )  # fmt: skip
        self.clockify_requests = Counter(
            "addon_clockify_requests", "Requests to Clockify's API by operation and status class.",
            ["addon", "operation", "status_class"], registry=r,
        )  # fmt: skip
        self.clockify_retries = Counter(
            "addon_clockify_retries", "Retried Clockify calls by reason: rate_limited, "
            "server_error or transport.", ["addon", "operation", "reason"], registry=r,
        )  # fmt: skip
        self.clockify_duration = Histogram(
            "addon_clockify_request_duration_seconds", "Time of one attempt at a Clockify call.",
            ["addon", "operation"], buckets=_CLOCKIFY_BUCKETS, registry=r,
        )  # fmt: skip
        self.clockify_pacing_wait = Histogram(
            "addon_clockify_pacing_wait_seconds", "Time waited for the workspace's request budget.",
            ["addon", "lane"], buckets=_WAIT_BUCKETS, registry=r,
        )  # fmt: skip
        self.clockify_budget_use = Histogram(
            "addon_clockify_budget_use_ratio", "Share of the workspace's per-second Clockify "
            "budget in use as a call starts (a distribution over workspaces, no workspace label).",
            ["addon"], buckets=_USE_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_duration = Histogram(
            "addon_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["addon", "method", "route", "status_class"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.intake_batch_size = Histogram(
            "addon_intake_batch_size", "Webhook deliveries committed per database transaction.",
            ["addon"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r,
        )  # fmt: skip
        self.intake_queue = Gauge(
            "addon_intake_queue_depth", "Webhook deliveries waiting for their commit.",
            ["addon"], registry=r, multiprocess_mode="livesum",
        )  # fmt: skip
        self.jobs = Counter(
            "addon_jobs", "Background job attempts by kind and outcome: done, retry or dead.",
            ["addon", "kind", "outcome"], registry=r,
        )  # fmt: skip
        self.job_queue_depth = Gauge(
            "addon_job_queue_depth", "Background jobs waiting or running, by kind.",
            ["addon", "kind"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.job_oldest_age = Gauge(
            "addon_job_oldest_age_seconds", "Age of the oldest job waiting to run.",
            ["addon"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.jobs_dead = Gauge(
            "addon_jobs_dead", "Jobs that ran out of attempts and wait for a replay.",
            ["addon"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.database_errors = Counter(
            "addon_database_errors", "Database failures by where they were met: request or jobs.",
            ["addon", "where"], registry=r,
        )  # fmt: skip
        self.ready = Gauge(
            "addon_ready", "1 while the database answers at the latest migration and the "
            "intake runs (what /readyz checks), as of the last scrape.",
            ["addon"], registry=r, multiprocess_mode="livemostrecent",
        )  # fmt: skip
        self.bootstrap_items = Counter(
            "addon_bootstrap_items", "Entities stored by bootstrap, by list operation.",
            ["addon", "operation"], registry=r,
        )  # fmt: skip
        self.retention_deletions = Counter(
            "addon_retention_deletions", "Rows deleted by retention, by table.",
            ["addon", "table"], registry=r,
        )  # fmt: skip
        self.custom_webhooks = Counter(
            "addon_custom_webhooks", "Custom inbound webhook deliveries by outcome.",
            ["addon", "outcome"], registry=r,
        )  # fmt: skip
        self.outbound_requests = Counter(
            "addon_outbound_requests",
            "Outbound http actions by outcome: the answer's status class (2xx to 5xx), "
            "refused (nothing sent), timeout or unreachable.",
            ["addon", "outcome"], registry=r,
        )  # fmt: skip

        self._children: dict[tuple[str, ...], Any] = {}

    def count_webhook(self, addon: str, event_type: str, outcome: str) -> None:
        """Count a delivery; the label child is looked up once per label set."""
        self._child(self.webhooks, ("webhooks", addon, event_type, outcome)).inc()

    def count_rejection(self, addon: str, reason: str) -> None:
        self._child(self.webhook_rejections, ("rejections", addon, reason)).inc()

    def _child(self, metric: Any, key: tuple[str, ...]) -> Any:
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*key[1:])
        return child

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """Encode every metric as the `Accept` header asks (Prometheus text by default).

        In multiprocess mode the values of every worker of the pod are read and combined.
        """
        encoder, content_type = choose_encoder(accept)
        registry = self.registry
        if os.environ.get(MULTIPROC_DIR_VARIABLE):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type
