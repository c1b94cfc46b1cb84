"""One metric naming scheme for every service: `phoihop_<service>_<what>_<unit>`.

Label sets are bounded: topics, outcomes, reasons, route templates, agency codes from config.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServiceMetrics:
    """The standard metrics of one service."""

    service: str
    consumed: Counter
    produced: Counter
    processing: Histogram
    dead_lettered: Counter
    lag: Gauge
    consumer_stuck: Gauge
    consumer_retries: Counter
    http_requests: Counter
    http_latency: Histogram

    @classmethod
    def create(cls, service: str) -> ServiceMetrics:
        """Register the standard metrics of `service` (call once per process)."""
        p = f"phoihop_{service}"
        return cls(
            service=service,
            consumed=Counter(
                f"{p}_events_consumed_total", "Records consumed", ["topic", "outcome"]
            ),
            produced=Counter(f"{p}_events_produced_total", "Records produced", ["topic"]),
            processing=Histogram(
                f"{p}_processing_seconds",
                "Time to process one record",
                ["topic"],
                buckets=LATENCY_BUCKETS,
            ),
            dead_lettered=Counter(
                f"{p}_dead_lettered_total",
                "Records sent to the dead-letter topic",
                ["topic", "reason"],
            ),
            lag=Gauge(
                f"{p}_consumer_lag_records",
                "Records behind the end of each partition",
                ["topic", "partition"],
            ),
            consumer_stuck=Gauge(
                f"{p}_consumer_stuck",
                "1 while a consumer retries the same records or commits nothing behind lag",
                ["consumer"],
            ),
            consumer_retries=Counter(
                f"{p}_consumer_retries_total",
                "Retries by the consumer kit: transient (whole batch), batch_split, record",
                ["consumer", "kind"],
            ),
            http_requests=Counter(
                f"{p}_http_requests_total", "HTTP requests", ["route", "method", "status"]
            ),
            http_latency=Histogram(
                f"{p}_http_request_duration_seconds",
                "HTTP request latency",
                ["route", "method"],
                buckets=LATENCY_BUCKETS,
            ),
        )

    async def http_middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Starlette/FastAPI middleware: count and time requests by route template."""
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.http_requests.labels(template, request.method, str(status)).inc()
            self.http_latency.labels(template, request.method).observe(time.perf_counter() - start)


def metrics_response() -> Response:
    """The Prometheus exposition of this process's registry."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def record_consumer_lag(metrics: ServiceMetrics, consumer: Any) -> int:
    """Set `<svc>_consumer_lag_records` for each assigned partition; return the total lag.

    Call after each `getmany` batch: lag = end offset (highwater) - the consumer's position.
    Partitions whose end offset is not known yet (no fetch so far) are left out.
    """
    total = 0
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        position = await consumer.position(tp)
        lag = max(0, end - position)
        metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        total += lag
    return total
