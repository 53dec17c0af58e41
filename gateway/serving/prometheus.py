"""Prometheus metrics: requests, latency and errors per arm and model version, plus the log."""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

from gateway.exposure import ExposureWriter

LATENCY_BUCKETS = (0.002, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu, fds
        # Which worker answered a scrape (with --workers N each process has its own metrics).
        Gauge(
            "recsys_worker_pid", "Process id of the worker serving this scrape", registry=self.registry
        ).set(os.getpid())
        self.requests = Counter(
            "recsys_requests_total",
            "Requests served, by endpoint, arm, model version and status",
            ["endpoint", "arm", "model_version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "recsys_request_latency_seconds",
            "Recommendation latency inside the server",
            ["arm", "model_version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "recsys_errors_total",
            "Requests that ended in an error, by arm and model version",
            ["endpoint", "arm", "model_version", "status"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "recsys_reloads_total", "Model/config reloads by outcome", ["outcome"], registry=self.registry
        )
        self.online_store_errors = Counter(
            "recsys_online_store_errors_total",
            "Requests served from the local history because Redis failed",
            registry=self.registry,
        )

        self.online_store_skipped = Counter(
            "recsys_online_store_skipped_total",
            "Requests served from the local history without calling Redis (its circuit breaker was open)",
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "recsys_fallbacks_total",
            "Recommendation requests answered with the popularity fallback, by reason (shed, deadline)",
            ["reason"],
            registry=self.registry,
        )
        self.shed = Counter(
            "recsys_shed_total",
            "Recommendation requests turned away by admission control, by overflow policy (fallback, 503)",
            ["overflow"],
            registry=self.registry,
        )

    def watch_exposures(self, writer: ExposureWriter) -> None:
        self.registry.register(_ExposureCollector(writer))

    def watch(self, name: str, doc: str, read) -> None:
        """A gauge read from ``read()`` at each scrape."""
        self.registry.register(_Reading(name, doc, read))


class _Reading:
    def __init__(self, name: str, doc: str, read) -> None:
        self.name, self.doc, self.read = name, doc, read

    def collect(self):
        yield GaugeMetricFamily(self.name, self.doc, value=self.read())


class _ExposureCollector:
    def __init__(self, writer: ExposureWriter) -> None:
        self.writer = writer

    def collect(self):
        stats = self.writer.stats
        for name, value, doc in (
            ("recsys_exposures_enqueued", stats.enqueued, "Exposures accepted from requests"),
            ("recsys_exposures_written", stats.written, "Exposures written to the database"),
            ("recsys_exposures_spilled", stats.spilled, "Exposures written to the local spill file"),
            ("recsys_exposures_replayed", stats.replayed, "Spilled exposures replayed into the database"),
            ("recsys_exposure_queue", self.writer.queue.qsize(), "Exposures waiting in memory"),
            (
                "recsys_exposures_dropped",
                stats.dropped,
                "Exposures lost: the database and the spill both failed",
            ),
            ("recsys_exposure_journal_errors", stats.journal_errors, "Submissions the crash journal missed"),
            (
                "recsys_exposure_log_degraded",
                int(stats.unhealthy),
                "1 while the database or the spill directory is failing",
            ),
        ):
            yield GaugeMetricFamily(name, doc, value=value)
