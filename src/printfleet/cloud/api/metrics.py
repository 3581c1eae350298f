"""Prometheus metrics of one cloud process, in a registry of its own (not the global one), so
several apps in one process — tests, replicas in a benchmark — never collide.

Counts the cloud keeps anyway (link connects, publish outcomes, inbox drops) are read when
scraped rather than mirrored; events only this module sees (refused starts, job changes) are
counted here as they happen.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from printfleet.cloud.dispatch.core import CloudCore
from printfleet.cloud.notify import EventBus
from printfleet.cloud.store import JobRecord, StoreError
from printfleet.protocol.lifecycle import JobState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _CoreCollector:
    """Reads the link, dispatcher and inbox state at scrape time."""

    def __init__(self, core: CloudCore) -> None:
        self._core = core

    def collect(self) -> Iterable[Metric]:
        core = self._core
        state = core.link.state()
        yield GaugeMetricFamily(
            "printfleet_link_verified",
            "1 while a probe made the round trip through the broker within the probe interval.",
            value=int(state.verified),
        )
        yield GaugeMetricFamily(
            "printfleet_link_connected",
            "1 while the cloud's MQTT client holds a connection (not evidence by itself).",
            value=int(state.connected),
        )
        if state.evidence_age_s is not None:
            yield GaugeMetricFamily(
                "printfleet_link_evidence_age_seconds",
                "Seconds since the newest completed probe round trip.",
                value=state.evidence_age_s,
            )
        if state.last_rtt_s is not None:
            yield GaugeMetricFamily(
                "printfleet_link_round_trip_seconds",
                "The newest probe's round-trip time through the broker.",
                value=state.last_rtt_s,
            )
        yield CounterMetricFamily(
            "printfleet_link_connects", "Connections the link made.", value=state.connects
        )
        publishes = CounterMetricFamily(
            "printfleet_dispatch_publishes",
            "Commands the dispatcher published, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in core.dispatcher.publish_outcomes.items():
            publishes.add_metric([outcome.value], count)
        yield publishes
        dropped = CounterMetricFamily(
            "printfleet_inbox_dropped",
            "Printer messages dropped because the inbox was full.",
            labels=["kind"],
        )
        dropped.add_metric(["telemetry"], core.inbox_stats.dropped_telemetry)
        dropped.add_metric(["other"], core.inbox_stats.dropped_other)
        yield dropped
        views = core.fleet.views().values()
        yield GaugeMetricFamily(
            "printfleet_printers_online",
            "Printers whose latest presence or report says online.",
            value=sum(view.online for view in views),
        )


class _RefusedAccountsCollector:
    """Reads, when scraped, how many printer accounts the broker's files left out (S10)."""

    def __init__(self, refused: Callable[[], int]) -> None:
        self._refused = refused

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "printfleet_broker_accounts_refused",
            "Printer accounts left out of the broker's password file and ACL at its latest "
            "write, as they would collide with a service account or another printer's.",
            value=self._refused(),
        )


class OpenJobs(Protocol):
    """What the metrics read of the store: the jobs not yet ended (the store's ``jobs``)."""

    async def open(self) -> list[JobRecord]:
        """The open jobs."""
        ...


class CloudMetrics:
    """The cloud's metrics; :meth:`render` produces the exposition text."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rejected_starts = Counter(
            "printfleet_rejected_starts",
            "Start commands printers refused, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.job_changes = Counter(
            "printfleet_job_changes",
            "Job state changes the dispatcher recorded, by new state.",
            ["state"],
            registry=self.registry,
        )
        self._open_jobs = Gauge(
            "printfleet_jobs",
            "Jobs not yet ended, by state (read from the store when scraped).",
            ["state"],
            registry=self.registry,
        )
        self.dispatch_latency = Histogram(
            "printfleet_dispatch_latency_seconds",
            "From a job's creation to its printer accepting the start.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, float("inf")),
            registry=self.registry,
        )
        self.notifications = Counter(
            "printfleet_notifications",
            "Deliveries to people's channels, by channel kind and outcome (after retries).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.event_streams = Gauge(
            "printfleet_event_streams",
            "Server-sent-event streams open now.",
            registry=self.registry,
        )
        self._store_up = Gauge(
            "printfleet_store_up",
            "1 if the store answered when these metrics were scraped.",
            registry=self.registry,
        )

    def watch_streams(self, bus: EventBus) -> None:
        """Report how many event streams ``bus`` feeds."""
        self.event_streams.set_function(bus.subscriber_count)

    def watch_broker_accounts(self, refused: Callable[[], int]) -> None:
        """Report how many printer accounts the broker's files were last written without."""
        self.registry.register(_RefusedAccountsCollector(refused))

    def watch(self, core: CloudCore) -> None:
        """Report the link, dispatcher and inbox of ``core`` too."""
        self.registry.register(_CoreCollector(core))

    async def render(self, jobs: OpenJobs) -> bytes:
        """Read the job counts from the store, then every metric as Prometheus text."""
        try:
            open_jobs = await jobs.open()
        except StoreError:
            # Metrics matter most while something is wrong: report what is known.
            self._store_up.set(0)
        else:
            self._store_up.set(1)
            counts = collections.Counter(job.view.state for job in open_jobs)
            for state in JobState:
                if not state.terminal:
                    self._open_jobs.labels(state.value).set(counts.get(state, 0))
        return generate_latest(self.registry)
