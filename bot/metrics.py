"""Metrics: the Prometheus counters and histograms of one bot, on a registry of its own.

A registry per bot, not prometheus-client's global default, so that several bots in one process (the tests)
count separately and a test never sees another's figures. Services take a `Metrics` as a plain object and make
their own throwaway one when given none, so they work unchanged in unit tests.

The metric names are a contract (design.md, "Scale-out contract"): dashboards and alerts use them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds a due task waited before the poller took it (normally well under a second; minutes when overloaded).
POLL_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Seconds from the bot seeing the job end to the member being told (about a second; retries run to minutes).
NOTIFY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# What generate_latest() writes, whatever prometheus-client's newest format is called in the installed version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

FINAL_STATUSES = ("completed", "failed", "cancelled", "expired")
UPSTREAM_ENDPOINTS = ("submit", "query", "credits")
DELIVERY_KINDS = ("dm", "channel", "card_edit", "card_post")


class Metrics:
    """Every metric of one bot process. Counters are only ever incremented through the methods below."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.tasks_submitted = Counter(
            "upscale_tasks_submitted", "Tasks whose paid POST to Evolink succeeded.", registry=registry)
        self.tasks_finished = Counter(
            "upscale_tasks_finished", "Submitted tasks that reached a final status.", ["status"], registry=registry)
        self.upstream_requests = Counter(
            "upscale_upstream_requests", "HTTP exchanges with Evolink, by endpoint and outcome (ok or the error "
            "kind: rate_limited, server, timeout, malformed, ...).", ["endpoint", "outcome"], registry=registry)
        self.discord_deliveries = Counter(
            "upscale_discord_deliveries", "Sends and edits to Discord, by kind and outcome (ok, dm_closed, gone, "
            "retry).", ["kind", "outcome"], registry=registry)
        self.tasks_active = Gauge(
            "upscale_tasks_active", "Tasks not yet ended (submitting, pending, processing) in the database, counted "
            "when scraped; the same figure in every process of one database (aggregate with max, not sum).",
            registry=registry)
        self.poll_lag = Histogram(
            "upscale_poll_lag_seconds", "How late the poller took a due task (now - next_poll_at).",
            buckets=POLL_LAG_BUCKETS, registry=registry)
        self.notify_latency = Histogram(
            "upscale_notify_latency_seconds", "From the bot seeing a task end upstream to the member being told.",
            buckets=NOTIFY_BUCKETS, registry=registry)
        self.lease_takeovers = Counter(
            "upscale_lease_takeovers", "Due tasks this process took over from another process whose lease ran out.",
            registry=registry)
        # The usual series exist from the start, so rate() and dashboards see zeros instead of nothing.
        for status in FINAL_STATUSES:
            self.tasks_finished.labels(status)
        for endpoint in UPSTREAM_ENDPOINTS:
            self.upstream_requests.labels(endpoint, "ok")
        for kind in DELIVERY_KINDS:
            self.discord_deliveries.labels(kind, "ok")

    def task_submitted(self) -> None:
        self.tasks_submitted.inc()

    def task_finished(self, status: str) -> None:
        self.tasks_finished.labels(status).inc()

    def upstream_request(self, endpoint: str, outcome: str) -> None:
        self.upstream_requests.labels(endpoint, outcome).inc()

    def delivery(self, kind: str, outcome: str) -> None:
        self.discord_deliveries.labels(kind, outcome).inc()

    def poll_lagged(self, seconds: float) -> None:
        self.poll_lag.observe(max(0.0, seconds))

    def member_told(self, seconds: float) -> None:
        self.notify_latency.observe(max(0.0, seconds))

    def lease_taken_over(self, count: int = 1) -> None:
        """Count tasks taken over from a process whose lease expired (called by the poller's lease code)."""
        if count > 0:
            self.lease_takeovers.inc(count)

    def set_active(self, count: int) -> None:
        self.tasks_active.set(count)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything in this registry."""
        return generate_latest(self.registry)
