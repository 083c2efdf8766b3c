"""Prometheus metrics of one server, on a registry of its own (several apps can live in one test
process, and no global state survives an app). Request metrics are labelled by route *template*, never
by the raw path, so a scan of random URLs cannot blow up the number of series."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _FleetGauges:
    """Fleet sizes read from the database at scrape time."""

    def __init__(self, source: Callable[[], dict[str, int]]) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        try:
            values = self.source()
        except Exception:  # a scrape must not fail because the database is briefly busy
            return []
        gauge = GaugeMetricFamily("mcuota_fleet_objects", "Objects stored by the update service",
                                  labels=["kind"])
        for kind, value in sorted(values.items()):
            gauge.add_metric([kind], value)
        return [gauge]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mcuota_http_requests", "HTTP requests served",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("mcuota_http_request_duration_seconds", "HTTP request latency", ["route"],
                                 registry=r, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                      0.5, 1, 2.5, 5, 10))
        self.checkins = Counter("mcuota_checkins", "Device check-ins by outcome", ["protocol", "result"],
                                registry=r)
        self.reports = Counter("mcuota_device_reports", "Device progress and result reports",
                               ["state", "changed"], registry=r)
        self.bytes_served = Counter("mcuota_artifact_bytes_served", "Release bytes sent to devices",
                                    ["protocol"], registry=r)
        self.uploads = Counter("mcuota_release_uploads", "Release uploads by outcome", ["result"], registry=r)
        self.rate_limited = Counter("mcuota_rate_limited_requests", "Requests refused by the rate limit",
                                    registry=r)

    def watch_fleet(self, source: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_FleetGauges(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)
