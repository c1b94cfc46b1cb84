"""Notify's metrics: the standard set plus deliveries, latency, retry depth, disabled endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter, Gauge, Histogram

from phoihop_common.metrics import ServiceMetrics

DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)


@dataclass(frozen=True)
class NotifyMetrics:
    """Everything notify exports on /metrics."""

    service: ServiceMetrics
    deliveries: Counter
    duration: Histogram
    retry_queue_depth: Gauge
    endpoints_disabled: Gauge


@cache
def notify_metrics() -> NotifyMetrics:
    """The process's metrics (registered once, however many apps a test builds)."""
    return NotifyMetrics(
        service=ServiceMetrics.create("notify"),
        deliveries=Counter(
            "phoihop_notify_deliveries_total",
            "Delivery attempts by channel and outcome",
            ["channel", "outcome"],
        ),
        duration=Histogram(
            "phoihop_notify_delivery_duration_seconds",
            "Time of one delivery attempt",
            ["channel"],
            buckets=DELIVERY_BUCKETS,
        ),
        retry_queue_depth=Gauge(
            "phoihop_notify_retry_queue_depth", "Deliveries waiting for a retry"
        ),
        endpoints_disabled=Gauge(
            "phoihop_notify_endpoints_disabled", "Subscriptions disabled (410 or failing too long)"
        ),
    )
