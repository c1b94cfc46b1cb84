"""Ingest's metrics: the standard set plus submissions by outcome (registered once per process)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phoihop_common.metrics import ServiceMetrics

OUTCOMES = ("accepted", "duplicate", "rejected", "unavailable")


@dataclass(frozen=True)
class IngestMetrics:
    """Standard service metrics and ingest's own."""

    service: ServiceMetrics
    submissions: Counter
    _by_outcome: dict[str, Any] = field(default_factory=dict, repr=False)
    _processing: dict[str, Any] = field(default_factory=dict, repr=False)

    def count(self, outcome: str, n: int = 1) -> None:
        """Count submissions by outcome (accepted, duplicate, rejected, unavailable)."""
        if n:
            child = self._by_outcome.get(outcome)
            if child is None:
                child = self._by_outcome[outcome] = self.submissions.labels(outcome)
            child.inc(n)

    def processing(self, topic: str) -> Any:
        """The `processing_seconds` histogram of `topic` (label lookup cached)."""
        child = self._processing.get(topic)
        if child is None:
            child = self._processing[topic] = self.service.processing.labels(topic)
        return child


@cache
def ingest_metrics() -> IngestMetrics:
    """The metrics of this process."""
    submissions = Counter("phoihop_ingest_submissions_total", "Submissions by outcome", ["outcome"])
    return IngestMetrics(
        service=ServiceMetrics.create("ingest"),
        submissions=submissions,
        _by_outcome={o: submissions.labels(o) for o in OUTCOMES},
    )


class HttpMetricsMiddleware:
    """Pure ASGI form of `ServiceMetrics.http_middleware`: same metrics and labels.

    Starlette's `BaseHTTPMiddleware` (what `app.middleware("http")` builds) runs every
    request through a task group and memory streams; on the submission path that was a
    sizeable share of ingest's CPU per request.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._requests: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count and time one HTTP request by route template."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        counter = self._requests.get((template, method, status))
        if counter is None:
            counter = self.metrics.http_requests.labels(template, method, str(status))
            self._requests[(template, method, status)] = counter
        counter.inc()
        histogram = self._latency.get((template, method))
        if histogram is None:
            histogram = self.metrics.http_latency.labels(template, method)
            self._latency[(template, method)] = histogram
        histogram.observe(seconds)
